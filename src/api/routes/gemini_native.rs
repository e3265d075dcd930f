//! Google's own REST surface — `POST /{v1,v1beta}/models/{model}:generateContent`,
//! `:streamGenerateContent?alt=sse`, `:countTokens`, `GET /{v1,v1beta}/models[/{model}]` —
//! so the official `google-genai` SDKs work given imagegate's base URL and an imagegate
//! key (`x-goog-api-key` or `?key=`), whichever API version they default to (google-genai
//! 3.6 uses `v1`). With the gemini provider the request is relayed with the gateway's own
//! Google key and Google's answer comes back as it was, error envelopes included; images
//! and usage are kept for the caller. A model upstream answers 404 for is retired and the
//! same request relayed to its successor; one that stays overloaded hands over to its
//! fallback chain when `registry.fallback` is on. The offline provider answers in the
//! same wire format (src/generation/native_offline.rs).
//!
//! `generateContent` is a unit of work like every other generation
//! (`generation::native`): checked, charged and holding its key's slot as they are, run
//! in a tracked task a client's hang-up does not cancel, and queued for a worker when the
//! caller sends `Prefer: respond-async` (RFC 7240). Streams run synchronously.
//!
//! `GET /v1/models` is claimed by OpenAI's SDK too: it answers in OpenAI's shape unless
//! the caller authenticated Google's way.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::StreamExt as _;
use serde_json::{Value, json};

use crate::api::AppState;
use crate::api::extract::caller::Queueable;
use crate::api::extract::{gemini_intake, json};
use crate::api::middleware::auth::GoogleAuth;
use crate::api::routes::generate::{service_tier_header, substitution_headers};
use crate::api::submit::{self, Accepted, Submission};
use crate::caller::RequestContext;
use crate::error::{ApiError, ErrorKind};
use crate::generation::execute::Done;
use crate::generation::native::{self, with_service_tier};
use crate::generation::native_offline;
use crate::generation::work::{Plan, native_model_not_found};
use crate::models::{Reason, ResolvedModel, ServiceTier, Substitution};
use crate::provider::ServedAs;
use crate::provider::native::NativeUpstream;

/// A relayed stream is also kept to account for it afterwards; beyond this much, the
/// relay goes on but the accounting gives up (no image answer is anywhere near it).
const MAX_ACCOUNTED_STREAM_BYTES: usize = 128 * 1024 * 1024;

/// `v1` or `v1beta`, as the caller's path has it.
fn api_version(uri: &Uri) -> &str {
    uri.path()
        .trim_start_matches('/')
        .split('/')
        .next()
        .unwrap_or("v1beta")
}

fn json_response(status: u16, body: Bytes) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
    (
        status,
        [(header::CONTENT_TYPE, "application/json; charset=UTF-8")],
        body,
    )
        .into_response()
}

/// RFC 7240: `Prefer: respond-async` asks for a 202 and a request to poll, as
/// `"async": true` does on the guide's endpoints (Google's body has no such field).
fn prefers_async(headers: &HeaderMap) -> bool {
    headers
        .get_all("prefer")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|p| {
            p.split(';')
                .next()
                .is_some_and(|token| token.trim().eq_ignore_ascii_case("respond-async"))
        })
}

#[allow(clippy::too_many_arguments)]
pub async fn model_action(
    State(state): State<AppState>,
    Queueable { ctx, refused }: Queueable,
    uri: Uri,
    headers: HeaderMap,
    Path(target): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    request: Request,
) -> Result<Response, ApiError> {
    // A JSON surface: held to the JSON limit, not the multipart total the router allows.
    let body = json::read_limited(request.into_body(), state.limits.max_json_bytes).await?;
    let (model, action) = target
        .split_once(':')
        .ok_or_else(|| ApiError::new(ErrorKind::NotFound, "Method not found."))?;
    let model = model.strip_prefix("models/").unwrap_or(model);
    let resolved = state
        .models
        .resolve(model)
        .map_err(|_| native_model_not_found(model, api_version(&uri)))?;
    if action == "generateContent" || action == "streamGenerateContent" {
        let stream = action == "streamGenerateContent";
        if stream && query.get("alt").is_none_or(|a| a != "sse") {
            return Err(ApiError::invalid(
                "alt",
                "Only streaming with ?alt=sse is supported.",
            ));
        }
        let (body, tier) = enforce_tier(&state, &ctx, body)?;
        let call = gemini_intake::NativeCall {
            model,
            api_version: api_version(&uri),
            service_tier: tier,
            stream,
        };
        let (work, uploads) = gemini_intake::work(call, &body)?;
        // A stream is relayed as it arrives, so it only runs synchronously.
        let submission = Submission {
            run_async: !stream && prefers_async(&headers),
            webhook_url: None,
        };
        let accepted =
            submit::accept(&state, &ctx, refused, uri.path(), work, uploads, submission).await?;
        let (served, mut response) = match accepted {
            Accepted::Queued(mut response) => {
                response.headers_mut().insert(
                    "preference-applied",
                    header::HeaderValue::from_static("respond-async"),
                );
                return Ok(response);
            }
            Accepted::Run(plan, mut inputs) => match *plan {
                Plan::GeminiNative {
                    served,
                    request,
                    images,
                    stream: true,
                } => {
                    let body = native::body(request, &images, &mut inputs)?;
                    drop(inputs);
                    stream_relay(&state, &ctx, served, body).await?
                }
                plan => match submit::run(&state, &ctx, plan, inputs).await? {
                    Done::Native(answer) => {
                        let response = json_response(answer.status, answer.body);
                        (answer.served, response)
                    }
                    _ => return Err(ApiError::internal("native work ran as another kind")),
                },
            },
        };
        let substituted = served.model.substituted.as_ref();
        response.headers_mut().extend(substitution_headers(
            &served.model.entry.upstream_id,
            substituted,
        ));
        service_tier_header(response.headers_mut(), served.service_tier);
        return Ok(response);
    }
    if let Some(refusal) = refused {
        return Err(refusal);
    }
    let headers = substitution_headers(&resolved.entry.upstream_id, resolved.substituted.as_ref());
    let mut response = match action {
        "countTokens" => match &state.gemini {
            Some(gemini) => {
                let (status, bytes) = gemini
                    .forward(&resolved.entry.upstream_id, "countTokens", body)
                    .await?;
                json_response(status, bytes)
            }
            None => axum::Json(native_offline::count_tokens(&body)?).into_response(),
        },
        _ => {
            return Err(ApiError::new(
                ErrorKind::NotFound,
                format!("Method '{action}' not found."),
            ));
        }
    };
    response.headers_mut().extend(headers);
    Ok(response)
}

/// The body's `serviceTier` held to the caller's key tier: refused when not allowed,
/// rewritten when the key tier is held to another. Returns the body to relay and the
/// tier it asks for.
fn enforce_tier(
    state: &AppState,
    ctx: &RequestContext,
    body: Bytes,
) -> Result<(Bytes, Option<ServiceTier>), ApiError> {
    let Ok(json) = serde_json::from_slice::<Value>(&body) else {
        // Not JSON: upstream (or the offline reader) answers that in Google's words.
        return Ok((body, None));
    };
    let key = ["serviceTier", "service_tier"]
        .into_iter()
        .find(|k| json.get(*k).is_some());
    let asked = match key.and_then(|k| json[k].as_str()) {
        // google-genai's enum has `unspecified`, which is the upstream's default.
        Some(t) if t.eq_ignore_ascii_case("unspecified") => None,
        Some(t) => Some(ServiceTier::parse(t)?),
        None => None,
    };
    let tier = state.models.tier_policy().apply(&ctx.caller.tier, asked)?;
    match tier {
        Some(forced) if tier != asked => Ok((with_service_tier(&body, forced)?, tier)),
        _ => Ok((body, tier)),
    }
}

/// Relays `:streamGenerateContent?alt=sse` as it arrives; the relay task holds the
/// request's context (and so its in-flight slot) until upstream's stream ends.
async fn stream_relay(
    state: &AppState,
    ctx: &RequestContext,
    mut served: ServedAs,
    body: Bytes,
) -> Result<(ServedAs, Response), ApiError> {
    let Some(gemini) = &state.gemini else {
        let relay = state.executor.relay();
        let events = native_offline::stream(&relay, ctx, served.model.clone(), &body).await?;
        return Ok((served, sse_response(Body::from(events))));
    };
    let mut reservation = state.generator.reserve(ctx, &served, None).await?;
    let mut upstream = match gemini
        .forward_stream(&served.model.entry.upstream_id, body.clone())
        .await
    {
        Ok(upstream) => upstream,
        Err(e) => {
            state.generator.settle(reservation, 0.0).await;
            return Err(e.into());
        }
    };
    let name = served.model.entry.name.clone();
    // A 404 retires the model, and the stream is opened on its successor instead.
    if upstream.status() == StatusCode::NOT_FOUND
        && state.models.mark_retired(&name)
        && let Ok(next) = state.models.resolve(&name)
    {
        tracing::warn!(from = %name, to = %next.entry.name, "streaming from the successor");
        let requested = match &served.model.substituted {
            Some((requested, _)) => requested.clone(),
            None => name.clone(),
        };
        let shut_down = next.substituted.and_then(|(_, s)| s.shut_down);
        served.model = ResolvedModel {
            substituted: Some((
                requested,
                Substitution {
                    successor: next.entry.name.clone(),
                    reason: Reason::Retired,
                    shut_down,
                },
            )),
            entry: next.entry,
        };
        state.generator.settle(reservation, 0.0).await;
        reservation = state.generator.reserve(ctx, &served, None).await?;
        upstream = match gemini
            .forward_stream(&served.model.entry.upstream_id, body)
            .await
        {
            Ok(upstream) => upstream,
            Err(e) => {
                state.generator.settle(reservation, 0.0).await;
                return Err(e.into());
            }
        };
    }
    let status = upstream.status();
    if !status.is_success() {
        state.generator.settle(reservation, 0.0).await;
        let bytes = upstream.bytes().await.map_err(|e| {
            ApiError::new(ErrorKind::UpstreamError, "The upstream stream broke.").caused_by(e)
        })?;
        return Ok((served, json_response(status.as_u16(), bytes)));
    }
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(16);
    let (state, ctx, kept_as) = (state.clone(), ctx.clone(), served.clone());
    let relayed_by = Arc::clone(gemini);
    // Relayed chunk by chunk; read to the end even if the client leaves, so the call's
    // images and usage are still kept.
    crate::tasks::spawn(async move {
        let mut kept = Vec::new();
        let mut chunks = upstream.bytes_stream();
        let mut client_gone = false;
        while let Some(chunk) = chunks.next().await {
            match chunk {
                Ok(bytes) => {
                    if kept.len() + bytes.len() <= MAX_ACCOUNTED_STREAM_BYTES {
                        kept.extend_from_slice(&bytes);
                    }
                    if !client_gone && tx.send(Ok(bytes)).await.is_err() {
                        client_gone = true;
                    }
                }
                Err(e) => {
                    let _ = tx.send(Err(std::io::Error::other(e.without_url()))).await;
                    // What the broken stream cost is unknown: the reservation stands.
                    return;
                }
            }
        }
        drop(tx);
        let upstream: &dyn NativeUpstream = relayed_by.as_ref();
        let cost = native::keep(
            &state.generator,
            upstream,
            &ctx,
            &kept_as,
            &merge_events(&kept),
        )
        .await;
        state.generator.settle(reservation, cost).await;
    });
    let body = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    Ok((served, sse_response(Body::from_stream(body))))
}

fn sse_response(body: Body) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

/// One response object from an SSE stream: all parts in order, the last finish reason
/// and usage (streams carry running totals; the last is authoritative).
fn merge_events(stream: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(stream);
    let mut parts = Vec::new();
    let (mut finish, mut usage) = (Value::Null, Value::Null);
    for line in text.lines() {
        let Some(data) = line.strip_prefix("data:") else {
            continue;
        };
        let Ok(event) = serde_json::from_str::<Value>(data.trim()) else {
            continue;
        };
        let candidate = &event["candidates"][0];
        if let Some(p) = candidate["content"]["parts"].as_array() {
            parts.extend(p.iter().cloned());
        }
        if !candidate["finishReason"].is_null() {
            finish = candidate["finishReason"].clone();
        }
        if !event["usageMetadata"].is_null() {
            usage = event["usageMetadata"].clone();
        }
    }
    serde_json::to_vec(&json!({
        "candidates": [{"content": {"role": "model", "parts": parts}, "finishReason": finish}],
        "usageMetadata": usage,
    }))
    .unwrap_or_default()
}

/// Names that serve as themselves (retired ones are routed, not listed).
fn active_models(state: &AppState) -> Vec<ResolvedModel> {
    state
        .models
        .names()
        .into_iter()
        .filter_map(|name| state.models.resolve(&name).ok())
        .filter(|r| r.substituted.is_none())
        .collect()
}

/// An OpenAI client on `/v1/…`: it authenticated with a bearer key, not Google's way.
fn wants_openai_shape(uri: &Uri, google: Option<&axum::Extension<GoogleAuth>>) -> bool {
    api_version(uri) == "v1" && google.is_none()
}

/// `GET /{v1,v1beta}/models`: the active models in Google's `Model` shape, or in
/// OpenAI's list shape for an OpenAI client on `/v1`.
pub async fn list_models(
    State(state): State<AppState>,
    uri: Uri,
    google: Option<axum::Extension<GoogleAuth>>,
) -> Response {
    let models = active_models(&state);
    if wants_openai_shape(&uri, google.as_ref()) {
        let data: Vec<Value> = models.iter().map(openai_model).collect();
        return axum::Json(json!({"object": "list", "data": data})).into_response();
    }
    let models: Vec<Value> = models
        .iter()
        .map(|r| model_resource(&r.entry.name, r))
        .collect();
    axum::Json(json!({"models": models})).into_response()
}

pub async fn get_model(
    State(state): State<AppState>,
    uri: Uri,
    google: Option<axum::Extension<GoogleAuth>>,
    Path(model): Path<String>,
) -> Result<Response, ApiError> {
    let name = model.strip_prefix("models/").unwrap_or(&model);
    let resolved = state.models.resolve(name).map_err(|_| {
        if wants_openai_shape(&uri, google.as_ref()) {
            ApiError::new(
                ErrorKind::NotFound,
                format!("The model '{name}' does not exist."),
            )
        } else {
            native_model_not_found(name, api_version(&uri))
        }
    })?;
    if wants_openai_shape(&uri, google.as_ref()) {
        return Ok(axum::Json(openai_model(&resolved)).into_response());
    }
    Ok(axum::Json(model_resource(name, &resolved)).into_response())
}

fn openai_model(model: &ResolvedModel) -> Value {
    json!({
        "id": model.entry.name,
        "object": "model",
        "created": 0,
        "owned_by": "google",
    })
}

fn model_resource(name: &str, model: &ResolvedModel) -> Value {
    json!({
        "name": format!("models/{name}"),
        "baseModelId": model.entry.upstream_id,
        "version": "imagegate",
        "displayName": name,
        "description": format!("{} through imagegate", model.entry.upstream_id),
        "inputTokenLimit": 32768,
        "outputTokenLimit": 32768,
        "supportedGenerationMethods": ["generateContent", "streamGenerateContent", "countTokens"],
        "thinking": !model.entry.thinking_levels.is_empty(),
    })
}

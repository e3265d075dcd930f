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

use axum::extract::{Path, Query, Request, State};
use axum::http::Uri;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::{Value, json};

use crate::api::AppState;
use crate::api::extract::caller::Queueable;
use crate::api::extract::reply::Reply;
use crate::api::extract::work::{Submission, Submitted};
use crate::api::extract::{gemini_intake, json};
use crate::api::middleware::auth::GoogleAuth;
use crate::api::respond::{google_json, substitution_headers};
use crate::api::submit;
use crate::caller::RequestContext;
use crate::error::{ApiError, ErrorKind};
use crate::generation::native::with_service_tier;
use crate::generation::native_offline;
use crate::generation::work::native_model_not_found;
use crate::models::{ResolvedModel, ServiceTier};

/// `v1` or `v1beta`, as the caller's path has it.
fn api_version(uri: &Uri) -> &str {
    uri.path()
        .trim_start_matches('/')
        .split('/')
        .next()
        .unwrap_or("v1beta")
}

pub async fn model_action(
    State(state): State<AppState>,
    caller: Queueable,
    reply: Reply,
    uri: Uri,
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
    let stream = match action {
        "generateContent" => false,
        "streamGenerateContent" => true,
        _ => {
            if let Some(refusal) = caller.refused {
                return Err(refusal);
            }
            return other_action(&state, &resolved, action, body).await;
        }
    };
    if stream && query.get("alt").is_none_or(|a| a != "sse") {
        return Err(ApiError::invalid(
            "alt",
            "Only streaming with ?alt=sse is supported.",
        ));
    }
    let (body, service_tier) = enforce_tier(&state, &caller.ctx, body)?;
    let call = gemini_intake::NativeCall {
        model,
        api_version: api_version(&uri),
        service_tier,
        stream,
    };
    let (work, uploads) = gemini_intake::work(call, &body)?;
    // A stream is relayed as it arrives, so it only runs synchronously.
    let submission = Submission {
        run_async: !stream && reply.prefers_async,
        webhook_url: None,
    };
    let submitted = Submitted {
        work,
        uploads,
        submission,
    };
    submit::handle(&state, caller, reply, uri.path(), submitted).await
}

/// `:countTokens`, relayed (or answered offline); no other action exists.
async fn other_action(
    state: &AppState,
    resolved: &ResolvedModel,
    action: &str,
    body: Bytes,
) -> Result<Response, ApiError> {
    if action != "countTokens" {
        return Err(ApiError::new(
            ErrorKind::NotFound,
            format!("Method '{action}' not found."),
        ));
    }
    let upstream_id = &resolved.entry.upstream_id;
    let mut response = match &state.gemini {
        Some(gemini) => {
            let (status, bytes) = gemini.forward(upstream_id, "countTokens", body).await?;
            google_json(status, bytes)
        }
        None => axum::Json(native_offline::count_tokens(&body)?).into_response(),
    };
    let headers = substitution_headers(upstream_id, resolved.substituted.as_ref());
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
            native_model_not_found(name, api_version(&uri)).into()
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

//! Google's own REST surface — `POST /v1beta/models/{model}:generateContent`,
//! `:streamGenerateContent?alt=sse`, `:countTokens`, `GET /v1beta/models[/{model}]` — so
//! the official `google-genai` SDKs work given imagegate's base URL and an imagegate key
//! (`x-goog-api-key` or `?key=`). With the gemini provider the request is relayed with the
//! gateway's own Google key and Google's answer comes back as it was, error envelopes
//! included; images and usage are kept for the caller. The offline provider answers in
//! the same wire format (src/api/gemini_offline.rs).

use std::collections::HashMap;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::StreamExt as _;
use serde_json::{Value, json};

use crate::api::AppState;
use crate::api::gemini_offline;
use crate::api::generate::substitution_headers;
use crate::caller::RequestContext;
use crate::error::{ApiError, ErrorKind};
use crate::models::ResolvedModel;
use crate::provider::gemini::interpret;

/// A relayed stream is also kept to account for it afterwards; beyond this much, the
/// relay goes on but the accounting gives up (no image answer is anywhere near it).
const MAX_ACCOUNTED_STREAM_BYTES: usize = 128 * 1024 * 1024;

fn model_not_found(model: &str) -> ApiError {
    ApiError::new(
        ErrorKind::NotFound,
        format!(
            "models/{model} is not found for API version v1beta, or is not supported for generateContent. Call ListModels to see the list of available models and their supported methods."
        ),
    )
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

pub async fn model_action(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path(target): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let (model, action) = target
        .split_once(':')
        .ok_or_else(|| ApiError::new(ErrorKind::NotFound, "Method not found."))?;
    let model = model.strip_prefix("models/").unwrap_or(model);
    let resolved = state
        .models
        .resolve(model)
        .map_err(|_| model_not_found(model))?;
    let headers = substitution_headers(&resolved.entry.upstream_id, resolved.substituted.as_ref());
    let mut response = match action {
        "generateContent" => generate(&state, &ctx, resolved, body).await?,
        "streamGenerateContent" => {
            let sse = query.get("alt").is_some_and(|a| a == "sse");
            stream(&state, &ctx, resolved, body, sse).await?
        }
        "countTokens" => match &state.gemini {
            Some(gemini) => {
                let (status, bytes) = gemini
                    .forward(&resolved.entry.upstream_id, "countTokens", body)
                    .await?;
                json_response(status, bytes)
            }
            None => axum::Json(gemini_offline::count_tokens(&body)?).into_response(),
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

async fn generate(
    state: &AppState,
    ctx: &RequestContext,
    model: ResolvedModel,
    body: Bytes,
) -> Result<Response, ApiError> {
    let Some(gemini) = &state.gemini else {
        let answer = gemini_offline::generate(state, ctx, model, &body).await?;
        return Ok(axum::Json(answer).into_response());
    };
    let upstream = model.entry.upstream_id.clone();
    let (status, bytes) = gemini.forward(&upstream, "generateContent", body).await?;
    if status == 200 {
        keep(state, ctx, &model, &bytes).await;
    }
    Ok(json_response(status, bytes))
}

/// Keeps a relayed answer's images and usage for the caller. The client already has its
/// answer, so a failure here is logged rather than turned into an error.
async fn keep(state: &AppState, ctx: &RequestContext, model: &ResolvedModel, answer: &[u8]) {
    match interpret(answer, &model.entry.upstream_id) {
        Ok(generated) => {
            if let Err(e) = state
                .generator
                .keep(ctx, &generated, model.entry.prices)
                .await
            {
                tracing::warn!(error = %e, "could not keep a relayed answer");
            }
        }
        // Refusals and text-only answers carry no image to keep.
        Err(e) => tracing::debug!(outcome = %e, "relayed answer kept nothing"),
    }
}

async fn stream(
    state: &AppState,
    ctx: &RequestContext,
    model: ResolvedModel,
    body: Bytes,
    sse: bool,
) -> Result<Response, ApiError> {
    if !sse {
        return Err(ApiError::invalid(
            "alt",
            "Only streaming with ?alt=sse is supported.",
        ));
    }
    let Some(gemini) = &state.gemini else {
        let events = gemini_offline::stream(state, ctx, model, &body).await?;
        return Ok(sse_response(Body::from(events)));
    };
    let upstream = gemini
        .forward_stream(&model.entry.upstream_id, body)
        .await?;
    let status = upstream.status();
    if !status.is_success() {
        let bytes = upstream.bytes().await.map_err(|e| {
            ApiError::new(ErrorKind::UpstreamError, "The upstream stream broke.").caused_by(e)
        })?;
        return Ok(json_response(status.as_u16(), bytes));
    }
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(16);
    let (state, ctx) = (state.clone(), ctx.clone());
    // Relayed chunk by chunk; read to the end even if the client leaves, so the call's
    // images and usage are still kept.
    tokio::spawn(async move {
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
                    return;
                }
            }
        }
        drop(tx);
        keep(&state, &ctx, &model, &merge_events(&kept)).await;
    });
    let body = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    Ok(sse_response(Body::from_stream(body)))
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

/// `GET /v1beta/models`: the model table in Google's `Model` shape (active names only).
pub async fn list_models(State(state): State<AppState>) -> Response {
    let models: Vec<Value> = state
        .models
        .names()
        .into_iter()
        .filter_map(|name| {
            state
                .models
                .resolve(&name)
                .ok()
                .filter(|r| r.substituted.is_none())
                .map(|r| model_resource(&name, &r))
        })
        .collect();
    axum::Json(json!({"models": models})).into_response()
}

pub async fn get_model(
    State(state): State<AppState>,
    Path(model): Path<String>,
) -> Result<Response, ApiError> {
    let name = model.strip_prefix("models/").unwrap_or(&model);
    let resolved = state
        .models
        .resolve(name)
        .map_err(|_| model_not_found(name))?;
    Ok(axum::Json(model_resource(name, &resolved)).into_response())
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
    })
}

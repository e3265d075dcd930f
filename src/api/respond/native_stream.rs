//! Google's `:streamGenerateContent?alt=sse`, relayed as it arrives: the relay task
//! holds the request's context (and so its in-flight slot) until upstream's stream ends,
//! and keeps the call's images and usage even if the client leaves.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::StreamExt as _;
use serde_json::{Value, json};

use crate::api::AppState;
use crate::api::respond::google_json;
use crate::caller::RequestContext;
use crate::error::{ApiError, ErrorKind};
use crate::generation::native;
use crate::generation::native_offline;
use crate::models::{Reason, ResolvedModel, Substitution};
use crate::provider::ServedAs;
use crate::provider::native::NativeUpstream;

/// A relayed stream is also kept to account for it afterwards; beyond this much, the
/// relay goes on but the accounting gives up (no image answer is anywhere near it).
const MAX_ACCOUNTED_STREAM_BYTES: usize = 128 * 1024 * 1024;

/// Relays `:streamGenerateContent?alt=sse` as it arrives; the relay task holds the
/// request's context (and so its in-flight slot) until upstream's stream ends.
pub async fn relay(
    state: &AppState,
    ctx: &RequestContext,
    mut served: ServedAs,
    body: Bytes,
) -> Result<Response, ApiError> {
    let Some(gemini) = &state.gemini else {
        let relay = state.executor.relay();
        let events = native_offline::stream(&relay, ctx, served.model.clone(), &body).await?;
        return Ok(super::native(&served, sse_response(Body::from(events))));
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
        return Ok(super::native(&served, google_json(status.as_u16(), bytes)));
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
    Ok(super::native(
        &served,
        sse_response(Body::from_stream(body)),
    ))
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

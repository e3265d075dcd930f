//! `GET /ready`, `GET /metrics` and `GET /stats` (docs/api.md#monitoring). `/health` is in
//! the router: it answers as long as the process does.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::IntoResponse;
use serde_json::json;

use crate::api::AppState;
use crate::caller::Caller;
use crate::error::{ApiError, ErrorKind};
use crate::monitoring::stats::{MAX_WINDOW_MINUTES, Stats};

/// The guide's `APIMonitor` default.
const DEFAULT_WINDOW_MINUTES: u32 = 60;

pub async fn ready(State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    let report = state.monitoring.readiness.check().await;
    if report.ready() {
        return Ok(Json(json!({"status": "ready", "checks": report})));
    }
    Err(ApiError::new(
        ErrorKind::NotReady,
        "The service is not ready to serve requests.",
    )
    .detail("checks", json!(report))
    .caused_by(report.causes.join("; ")))
}

pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    // The queue is durable and shared, so no counter of ours could know what other
    // instances added or took: it is read from the store, but in the background, so a
    // scrape answers at once from what this process knows even when the database is down.
    let jobs = state.jobs.clone();
    state
        .monitoring
        .refresh_queue_depth(async move {
            jobs.queue_depth()
                .await
                .map_err(|e| crate::error::error_chain(&e))
        })
        .await;
    let monitoring = &state.monitoring;
    monitoring
        .metrics
        .set_limits_degraded(monitoring.readiness.limits_degraded());
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.monitoring.metrics.render(),
    )
}

pub async fn stats(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<BTreeMap<String, String>>,
) -> Result<Json<Stats>, ApiError> {
    if let Some(unknown) = query.keys().find(|k| *k != "window_minutes") {
        return Err(
            ApiError::invalid(unknown, format!("Unknown query parameter '{unknown}'."))
                .detail("reason", "unknown_field")
                .detail("allowed", vec!["window_minutes"]),
        );
    }
    let window = match query.get("window_minutes") {
        None => DEFAULT_WINDOW_MINUTES,
        Some(raw) => parse_window(raw)?,
    };
    let monitoring = &state.monitoring;
    Ok(Json(monitoring.recent.stats(
        &caller.key_id,
        monitoring.now_ms(),
        window,
    )))
}

fn parse_window(raw: &str) -> Result<u32, ApiError> {
    raw.trim()
        .parse::<u32>()
        .ok()
        .filter(|m| (1..=MAX_WINDOW_MINUTES).contains(m))
        .ok_or_else(|| {
            ApiError::invalid(
                "window_minutes",
                format!(
                    "The window_minutes must be a whole number from 1 to {MAX_WINDOW_MINUTES}."
                ),
            )
            .detail("min", 1)
            .detail("max", MAX_WINDOW_MINUTES)
        })
}

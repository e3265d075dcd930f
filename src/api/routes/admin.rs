//! The admin API (docs/keys.md): `/admin/keys` and `/admin/usage`, for the holder of the
//! configured admin token only. The authentication layer checks the token
//! (`middleware::auth::authorize_admin`); these handlers only manage keys.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::api::AppState;
use crate::api::extract::json::JsonBody;
use crate::auth::manage::{self, Known};
use crate::auth::settings::KeySettingsInput;
use crate::caller::Caller;
use crate::error::ApiError;
use crate::store::usage::utc_day;

pub async fn create(
    State(state): State<AppState>,
    JsonBody(input): JsonBody<KeySettingsInput>,
) -> Result<Response, ApiError> {
    let now = state.access.clock.now_ms();
    let tiers = state.access.tiers.names();
    let model = |name: &str| state.models.resolve(name).is_ok();
    let known = Known {
        tiers: &tiers,
        model: &model,
    };
    let issued = manage::create(state.access.keys.as_ref(), input, &known, now).await?;
    Ok((StatusCode::CREATED, Json(manage::issued_view(&issued))).into_response())
}

pub async fn list(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let keys = state.access.keys.list().await?;
    Ok(Json(
        json!({"keys": keys.iter().map(manage::view).collect::<Vec<_>>()}),
    ))
}

pub async fn get(
    State(state): State<AppState>,
    Path(key_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let key = manage::get(state.access.keys.as_ref(), &key_id).await?;
    Ok(Json(manage::view(&key)))
}

pub async fn update(
    State(state): State<AppState>,
    Path(key_id): Path<String>,
    JsonBody(input): JsonBody<KeySettingsInput>,
) -> Result<Json<Value>, ApiError> {
    let tiers = state.access.tiers.names();
    let model = |name: &str| state.models.resolve(name).is_ok();
    let known = Known {
        tiers: &tiers,
        model: &model,
    };
    let key = manage::update(state.access.keys.as_ref(), &key_id, input, &known).await?;
    Ok(Json(manage::view(&key)))
}

pub async fn revoke(
    State(state): State<AppState>,
    Path(key_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let now = state.access.clock.now_ms();
    if !state.access.keys.revoke(&key_id, now).await? {
        return Err(ApiError::not_found("An unrevoked key with this id"));
    }
    let key = manage::get(state.access.keys.as_ref(), &key_id).await?;
    Ok(Json(manage::view(&key)))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RotateBody {
    /// How long the old key keeps working; default 0 (at once).
    #[serde(default)]
    pub grace_secs: u64,
}

pub async fn rotate(
    State(state): State<AppState>,
    Path(key_id): Path<String>,
    JsonBody(body): JsonBody<RotateBody>,
) -> Result<Response, ApiError> {
    let now = state.access.clock.now_ms();
    let issued = manage::rotate(state.access.keys.as_ref(), &key_id, body.grace_secs, now).await?;
    Ok((StatusCode::CREATED, Json(manage::issued_view(&issued))).into_response())
}

/// Usage and cost across keys by key, UTC day and model; `key_id` narrows it to one.
pub async fn usage(
    State(state): State<AppState>,
    Query(mut query): Query<BTreeMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let key_id = query.remove("key_id");
    let today = utc_day(state.access.clock.now_ms());
    let (from, to) = crate::api::routes::usage::range(&query, today)?;
    let rows = state
        .access
        .usage
        .across_keys(key_id.as_deref(), from, to)
        .await?;
    let micro: i64 = rows
        .iter()
        .map(|r| (r.usage.cost_usd * 1e6).round() as i64)
        .sum();
    Ok(Json(json!({
        "from": from.to_string(),
        "to": to.to_string(),
        "rows": rows,
        "total_cost_usd": micro as f64 / 1e6,
    })))
}

/// `GET /keys/me`: the calling key's scopes, models, limits and what is left of its
/// budget (the playground shows it).
pub async fn me(State(state): State<AppState>, caller: Caller) -> Result<Json<Value>, ApiError> {
    let tier = state.access.tiers.for_tier(&caller.tier);
    let budget = match state.generator.spending() {
        Some(spending) => spending.report(&caller.key_id).await?,
        None => Value::Null,
    };
    Ok(Json(json!({
        "key_id": caller.key_id,
        "tier": caller.tier,
        "scopes": caller.settings.scopes,
        "models": caller.settings.models,
        "requests_per_minute": caller.settings.requests_per_minute.unwrap_or(tier.requests_per_minute),
        "max_concurrent": caller.settings.max_concurrent.unwrap_or(tier.max_concurrent),
        "metadata": caller.settings.metadata,
        "budget": budget,
    })))
}

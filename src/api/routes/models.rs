//! `GET /models`: the merged model registry as it stands for the calling key — every
//! name with its status (active, deprecated since a date, retired and served by its
//! successor), what it accepts, its prices, the service tiers this key may use, and
//! what upstream last listed (docs/models.md).

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use crate::api::AppState;
use crate::caller::RequestContext;
use crate::models::registry::Status;
use crate::models::{ModelEntry, ServiceTier};

pub async fn list(State(state): State<AppState>, ctx: RequestContext) -> Json<Value> {
    let table = &state.models;
    let (allowed, forced) = table.tier_policy().for_key_tier(&ctx.caller.tier);
    let models: Vec<Value> = table
        .names()
        .into_iter()
        .filter_map(|name| {
            let entry = table.entry(&name)?;
            let status = table.status(&name)?;
            Some(describe(entry, &status, &allowed))
        })
        .collect();
    let (refreshed, not_in_table) = table.upstream_view();
    Json(json!({
        "default_model": state.default_model,
        "models": models,
        "service_tiers": {
            "allowed": allowed.iter().map(|t| t.as_str()).collect::<Vec<_>>(),
            "forced": forced.map(ServiceTier::as_str),
        },
        "fallback_by_default": table.fallback_by_default(),
        "upstream": {
            "last_refresh": refreshed,
            // Listed by Google but not in the table: `[[models]]` can enable them.
            "not_in_table": not_in_table.iter().map(|m| json!({
                "id": m.id,
                "display_name": m.display_name,
            })).collect::<Vec<_>>(),
        },
    }))
}

fn describe(entry: &ModelEntry, status: &Status, tiers: &[ServiceTier]) -> Value {
    let status = match status {
        Status::Active => json!({"status": "active"}),
        Status::Deprecated { since } => json!({
            "status": "deprecated",
            "deprecated_since": since,
            "successor": entry.lifecycle.successor,
        }),
        Status::Retired {
            shut_down,
            served_by,
        } => json!({
            "status": "retired",
            "shut_down": shut_down,
            "successor": entry.lifecycle.successor,
            "served_by": served_by,
        }),
    };
    let prices_by_tier: serde_json::Map<String, Value> = tiers
        .iter()
        .map(|tier| {
            let prices = entry.prices.scaled(entry.tier_multipliers.of(*tier));
            (tier.as_str().to_owned(), json!(prices))
        })
        .collect();
    let mut out = json!({
        "name": entry.name,
        "upstream_id": entry.upstream_id,
        "image_sizes": entry.image_sizes,
        "aspect_ratios": entry.aspect_ratios,
        "max_input_images": entry.max_input_images,
        "thinking_levels": entry.thinking_levels,
        "fallback": entry.fallback,
        // USD per million tokens.
        "prices": entry.prices,
        "prices_by_service_tier": prices_by_tier,
    });
    if let (Some(out), Some(status)) = (out.as_object_mut(), status.as_object()) {
        out.extend(status.clone());
    }
    out
}

//! `GET /usage` (docs/api.md#usage): the calling key's requests, images, tokens and cost by
//! UTC day and model. `?days=N` (default 30) ends today; `from`/`to` (`YYYY-MM-DD`)
//! choose any range up to a year.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Query, State};
use serde_json::{Value, json};
use time::{Date, Duration, Month};

use crate::api::AppState;
use crate::caller::Caller;
use crate::error::ApiError;
use crate::store::usage::{UsageRow, utc_day};

const DEFAULT_DAYS: i64 = 30;
const MAX_DAYS: i64 = 366;

pub async fn get_usage(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<BTreeMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let today = utc_day(state.access.clock.now_ms());
    let (from, to) = range(&query, today)?;
    let rows = state.access.usage.by_day(&caller.key_id, from, to).await?;
    let totals = rows.iter().fold(UsageRow::default(), |mut t, r| {
        t.requests += r.requests;
        t.upstream_calls += r.upstream_calls;
        t.images += r.images;
        t.input_tokens += r.input_tokens;
        t.output_tokens += r.output_tokens;
        t.image_tokens += r.image_tokens;
        t.thought_tokens += r.thought_tokens;
        t.cost_usd += r.cost_usd;
        t
    });
    let mut totals = serde_json::to_value(&totals).map_err(ApiError::internal)?;
    if let Some(totals) = totals.as_object_mut() {
        totals.remove("date");
        totals.remove("model");
        // Summed per row in micro-dollars; rounding again drops float noise.
        let cost = totals
            .get("cost_usd")
            .and_then(Value::as_f64)
            .unwrap_or(0.0);
        totals.insert("cost_usd".into(), json!((cost * 1e6).round() / 1e6));
    }
    Ok(Json(json!({
        "key_id": caller.key_id,
        "from": from.to_string(),
        "to": to.to_string(),
        "days": rows.iter().map(with_rate).collect::<Vec<_>>(),
        "totals": totals,
    })))
}

pub(crate) fn range(
    query: &BTreeMap<String, String>,
    today: Date,
) -> Result<(Date, Date), ApiError> {
    if let Some(unknown) = query
        .keys()
        .find(|k| !matches!(k.as_str(), "days" | "from" | "to"))
    {
        return Err(ApiError::invalid(
            unknown,
            format!("Unknown parameter '{unknown}'. Use days, or from and to."),
        ));
    }
    let to = query
        .get("to")
        .map(|v| date("to", v))
        .transpose()?
        .unwrap_or(today);
    let from = match (query.get("from"), query.get("days")) {
        (Some(_), Some(_)) => {
            return Err(ApiError::invalid(
                "days",
                "Give either days or from, not both.",
            ));
        }
        (Some(v), None) => date("from", v)?,
        (None, days) => {
            let days = days
                .map(|v| {
                    v.trim()
                        .parse::<i64>()
                        .ok()
                        .filter(|d| (1..=MAX_DAYS).contains(d))
                })
                .unwrap_or(Some(DEFAULT_DAYS))
                .ok_or_else(|| {
                    ApiError::invalid(
                        "days",
                        format!("days must be a whole number from 1 to {MAX_DAYS}."),
                    )
                })?;
            to - Duration::days(days - 1)
        }
    };
    if from > to {
        return Err(ApiError::invalid("from", "from must not be after to."));
    }
    if (to - from).whole_days() >= MAX_DAYS {
        return Err(ApiError::invalid(
            "from",
            format!("A range covers at most {MAX_DAYS} days."),
        ));
    }
    Ok((from, to))
}

fn date(field: &str, value: &str) -> Result<Date, ApiError> {
    let parse = || {
        let mut parts = value.trim().splitn(3, '-');
        let year = parts.next()?.parse().ok()?;
        let month = Month::try_from(parts.next()?.parse::<u8>().ok()?).ok()?;
        let day = parts.next()?.parse().ok()?;
        Date::from_calendar_date(year, month, day).ok()
    };
    parse().ok_or_else(|| {
        ApiError::invalid(field, format!("{field} must be a date written YYYY-MM-DD."))
    })
}

/// A row with its `rate`: usage through the Batch API is recorded under the model's name
/// with a suffix, and shown as the model with `"rate": "batch"` (docs/batches.md).
fn with_rate(row: &UsageRow) -> Value {
    let mut value = json!(row);
    let (model, rate) = match row.model.strip_suffix(crate::models::BATCH_USAGE_SUFFIX) {
        Some(model) => (model, "batch"),
        None => (row.model.as_str(), "standard"),
    };
    value["model"] = json!(model);
    value["rate"] = json!(rate);
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn ranges_default_to_thirty_days_ending_today_and_refuse_nonsense() {
        let today = Date::from_calendar_date(2026, Month::March, 2).unwrap();
        let (from, to) = range(&query(&[]), today).unwrap();
        assert_eq!(
            (from.to_string(), to.to_string()),
            ("2026-02-01".into(), "2026-03-02".into())
        );
        let (from, _) = range(&query(&[("days", "1")]), today).unwrap();
        assert_eq!(from, today);
        let (from, to) = range(
            &query(&[("from", "2026-01-01"), ("to", "2026-01-31")]),
            today,
        )
        .unwrap();
        assert_eq!((from.day(), to.day()), (1, 31));
        for bad in [
            &[("days", "0")][..],
            &[("days", "x")],
            &[("from", "2026-02-30")],
            &[("from", "2026-03-05")],
            &[("since", "1")],
        ] {
            assert!(range(&query(bad), today).is_err(), "{bad:?}");
        }
    }
}

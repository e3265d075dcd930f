//! Usage and cost per key (docs/api.md#usage): one row per upstream result, priced by the model
//! table when it is recorded, summed by UTC day and model when asked for.

use std::sync::Arc;

use async_trait::async_trait;
use sqlx::Row as _;

use crate::caller::RequestContext;
use crate::clock::Clock;
use crate::generation::{Usage, UsageSink};
use crate::store::StoreError;
use crate::store::db::Db;

#[derive(Debug, Clone, PartialEq)]
pub struct UsageEvent {
    pub key_id: String,
    pub request_id: String,
    pub model: String,
    pub at_ms: i64,
    pub images: u64,
    pub usage: Usage,
}

/// One key's usage of one model on one UTC day.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct UsageRow {
    pub date: String,
    pub model: String,
    /// API requests that reached the model (a story or a quality retry makes several calls).
    pub requests: u64,
    pub upstream_calls: u64,
    pub images: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub image_tokens: u64,
    pub thought_tokens: u64,
    pub cost_usd: f64,
}

/// One key's row of a report across keys (`GET /admin/usage`).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct KeyUsageRow {
    pub key_id: String,
    #[serde(flatten)]
    pub usage: UsageRow,
}

/// The UTC calendar day of an instant (`YYYY-MM-DD`).
pub fn utc_day(ms: i64) -> time::Date {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .map_or(time::Date::MIN, |t| t.date())
}

/// Sums stay exact in integer micro-dollars; `Usage::priced` already rounds to them.
pub(crate) fn micro_usd(cost_usd: f64) -> i64 {
    (cost_usd * 1e6).round() as i64
}

pub struct UsageStore {
    db: Db,
}

impl UsageStore {
    pub fn new(db: Db) -> Self {
        Self { db }
    }

    /// Usage of every key (or of `key_id`) from `first_day` to `last_day`, by key, day
    /// and model.
    pub async fn across_keys(
        &self,
        key_id: Option<&str>,
        first_day: time::Date,
        last_day: time::Date,
    ) -> Result<Vec<KeyUsageRow>, StoreError> {
        let rows = sqlx::query(
            // SUM of BIGINT is NUMERIC in PostgreSQL; the casts keep every sum a BIGINT.
            "SELECT key_id, day, model, COUNT(DISTINCT request_id) AS requests, COUNT(*) AS calls, \
             CAST(SUM(images) AS BIGINT) AS images, \
             CAST(SUM(input_tokens) AS BIGINT) AS input_tokens, \
             CAST(SUM(output_tokens) AS BIGINT) AS output_tokens, \
             CAST(SUM(image_tokens) AS BIGINT) AS image_tokens, \
             CAST(SUM(thought_tokens) AS BIGINT) AS thought_tokens, \
             CAST(SUM(cost_micro_usd) AS BIGINT) AS cost \
             FROM usage_events WHERE (CAST($1 AS TEXT) IS NULL OR key_id = $1) \
             AND day >= $2 AND day <= $3 \
             GROUP BY key_id, day, model ORDER BY key_id, day, model",
        )
        .bind(key_id)
        .bind(first_day.to_string())
        .bind(last_day.to_string())
        .fetch_all(&self.db.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let cost: i64 = row.try_get("cost")?;
                Ok(KeyUsageRow {
                    key_id: row.try_get("key_id")?,
                    usage: UsageRow {
                        date: row.try_get("day")?,
                        model: row.try_get("model")?,
                        requests: count(row, "requests")?,
                        upstream_calls: count(row, "calls")?,
                        images: count(row, "images")?,
                        input_tokens: count(row, "input_tokens")?,
                        output_tokens: count(row, "output_tokens")?,
                        image_tokens: count(row, "image_tokens")?,
                        thought_tokens: count(row, "thought_tokens")?,
                        cost_usd: cost as f64 / 1e6,
                    },
                })
            })
            .collect()
    }

    pub async fn record(&self, event: &UsageEvent) -> Result<(), StoreError> {
        let u = &event.usage;
        sqlx::query(
            "INSERT INTO usage_events (key_id, request_id, model, day, created_at_ms, images, \
             input_tokens, output_tokens, image_tokens, thought_tokens, cost_micro_usd) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(&event.key_id)
        .bind(&event.request_id)
        .bind(&event.model)
        .bind(utc_day(event.at_ms).to_string())
        .bind(event.at_ms)
        .bind(stored(event.images))
        .bind(stored(u.input_tokens))
        .bind(stored(u.output_tokens))
        .bind(stored(u.image_tokens))
        .bind(stored(u.thought_tokens))
        .bind(micro_usd(u.cost_usd))
        .execute(&self.db.pool)
        .await?;
        Ok(())
    }

    /// `key_id`'s usage from `first_day` to `last_day` (UTC, inclusive), by day then model.
    pub async fn by_day(
        &self,
        key_id: &str,
        first_day: time::Date,
        last_day: time::Date,
    ) -> Result<Vec<UsageRow>, StoreError> {
        // One key's rows across keys are its rows by day and model, in that order.
        let rows = self.across_keys(Some(key_id), first_day, last_day).await?;
        Ok(rows.into_iter().map(|row| row.usage).collect())
    }
}

fn count(row: &sqlx::any::AnyRow, column: &str) -> Result<u64, StoreError> {
    let value: i64 = row.try_get(column)?;
    Ok(u64::try_from(value).unwrap_or(0))
}

pub(crate) fn stored(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// The generation pipeline's [`UsageSink`], writing to a [`UsageStore`] at the clock's time.
pub struct UsageRecorder {
    store: Arc<UsageStore>,
    clock: Arc<dyn Clock>,
}

impl UsageRecorder {
    pub fn new(store: Arc<UsageStore>, clock: Arc<dyn Clock>) -> Self {
        Self { store, clock }
    }
}

#[async_trait]
impl UsageSink for UsageRecorder {
    async fn record(
        &self,
        ctx: &RequestContext,
        model: &str,
        usage: &Usage,
        images: usize,
    ) -> Result<(), StoreError> {
        self.store
            .record(&UsageEvent {
                key_id: ctx.caller.key_id.clone(),
                request_id: ctx.request_id.clone(),
                model: model.to_owned(),
                at_ms: self.clock.now_ms(),
                images: images as u64,
                usage: *usage,
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_are_utc_calendar_dates() {
        // 2026-03-01T23:59:59.999Z and one millisecond later.
        let ms = 1_772_409_599_999;
        assert_eq!(utc_day(ms).to_string(), "2026-03-01");
        assert_eq!(utc_day(ms + 1).to_string(), "2026-03-02");
    }
}

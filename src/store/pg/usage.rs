//! Usage events in PostgreSQL, summed by UTC day and model as the embedded store does.

use async_trait::async_trait;
use sqlx::Row as _;
use sqlx::postgres::PgRow;

use super::PgDb;
use crate::store::StoreError;
use crate::store::usage::{
    KeyUsageRow, UsageEvent, UsageRow, UsageStore, micro_usd, stored, utc_day,
};

pub struct PgUsageStore {
    db: PgDb,
}

impl PgUsageStore {
    pub fn new(db: PgDb) -> Self {
        Self { db }
    }
}

fn count(row: &PgRow, column: &str) -> Result<u64, StoreError> {
    let value: i64 = row.try_get(column)?;
    Ok(u64::try_from(value).unwrap_or(0))
}

#[async_trait]
impl UsageStore for PgUsageStore {
    async fn across_keys(
        &self,
        key_id: Option<&str>,
        first_day: time::Date,
        last_day: time::Date,
    ) -> Result<Vec<KeyUsageRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT key_id, day, model, COUNT(DISTINCT request_id) AS requests, COUNT(*) AS calls, \
             SUM(images)::BIGINT AS images, SUM(input_tokens)::BIGINT AS input_tokens, \
             SUM(output_tokens)::BIGINT AS output_tokens, SUM(image_tokens)::BIGINT AS image_tokens, \
             SUM(thought_tokens)::BIGINT AS thought_tokens, SUM(cost_micro_usd)::BIGINT AS cost \
             FROM usage_events WHERE ($1::TEXT IS NULL OR key_id = $1) AND day >= $2 AND day <= $3 \
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

    async fn record(&self, event: &UsageEvent) -> Result<(), StoreError> {
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

    async fn by_day(
        &self,
        key_id: &str,
        first_day: time::Date,
        last_day: time::Date,
    ) -> Result<Vec<UsageRow>, StoreError> {
        // SUM of BIGINT is NUMERIC in PostgreSQL; the casts bring the sums back to BIGINT.
        let rows = sqlx::query(
            "SELECT day, model, COUNT(DISTINCT request_id) AS requests, COUNT(*) AS calls, \
             SUM(images)::BIGINT AS images, SUM(input_tokens)::BIGINT AS input_tokens, \
             SUM(output_tokens)::BIGINT AS output_tokens, SUM(image_tokens)::BIGINT AS image_tokens, \
             SUM(thought_tokens)::BIGINT AS thought_tokens, SUM(cost_micro_usd)::BIGINT AS cost \
             FROM usage_events WHERE key_id = $1 AND day >= $2 AND day <= $3 \
             GROUP BY day, model ORDER BY day, model",
        )
        .bind(key_id)
        .bind(first_day.to_string())
        .bind(last_day.to_string())
        .fetch_all(&self.db.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let cost: i64 = row.try_get("cost")?;
                Ok(UsageRow {
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
                })
            })
            .collect()
    }
}

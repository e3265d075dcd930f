//! Idempotent results in PostgreSQL, so a repeat sent to another instance still gets
//! the first answer.

use async_trait::async_trait;
use bytes::Bytes;
use sqlx::Row as _;

use super::PgDb;
use crate::store::StoreError;
use crate::store::idempotency::{Claim, IdempotencyStore, IdempotentResult, StoredResponse};

pub struct PgIdempotencyStore {
    db: PgDb,
}

impl PgIdempotencyStore {
    pub fn new(db: PgDb) -> Self {
        Self { db }
    }
}

#[async_trait]
impl IdempotencyStore for PgIdempotencyStore {
    async fn get(
        &self,
        key_id: &str,
        idempotency_key: &str,
        now_ms: i64,
    ) -> Result<Option<IdempotentResult>, StoreError> {
        let row = sqlx::query(
            "SELECT fingerprint, status, headers, body, created_at_ms, expires_at_ms FROM idempotency \
             WHERE key_id = $1 AND idempotency_key = $2 AND expires_at_ms > $3",
        )
        .bind(key_id)
        .bind(idempotency_key)
        .bind(now_ms)
        .fetch_optional(&self.db.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let headers: String = row.try_get("headers")?;
        let status: i64 = row.try_get("status")?;
        let body: Vec<u8> = row.try_get("body")?;
        Ok(Some(IdempotentResult {
            fingerprint: row.try_get("fingerprint")?,
            response: StoredResponse {
                status: u16::try_from(status)
                    .map_err(|_| StoreError::new("stored status out of range"))?,
                headers: serde_json::from_str(&headers)
                    .map_err(|e| StoreError::new(format!("stored headers: {e}")))?,
                body: Bytes::from(body),
            },
            created_at_ms: row.try_get("created_at_ms")?,
            expires_at_ms: row.try_get("expires_at_ms")?,
        }))
    }

    async fn put(
        &self,
        key_id: &str,
        idempotency_key: &str,
        result: &IdempotentResult,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let headers = serde_json::to_string(&result.response.headers)
            .map_err(|e| StoreError::new(e.to_string()))?;
        let mut tx = self.db.pool.begin().await?;
        sqlx::query("DELETE FROM idempotency WHERE expires_at_ms <= $1")
            .bind(now_ms)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO idempotency (key_id, idempotency_key, fingerprint, status, headers, body, created_at_ms, expires_at_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
             ON CONFLICT (key_id, idempotency_key) DO UPDATE SET fingerprint = excluded.fingerprint, \
             status = excluded.status, headers = excluded.headers, body = excluded.body, \
             created_at_ms = excluded.created_at_ms, expires_at_ms = excluded.expires_at_ms",
        )
        .bind(key_id)
        .bind(idempotency_key)
        .bind(&result.fingerprint)
        .bind(i64::from(result.response.status))
        .bind(headers)
        .bind(result.response.body.as_ref())
        .bind(result.created_at_ms)
        .bind(result.expires_at_ms)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn claim(
        &self,
        key_id: &str,
        idempotency_key: &str,
        fingerprint: &str,
        owner: &str,
        now_ms: i64,
        until_ms: i64,
    ) -> Result<Claim, StoreError> {
        let won = sqlx::query(
            "INSERT INTO idempotency_claims (key_id, idempotency_key, fingerprint, owner, claimed_until_ms) \
             VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (key_id, idempotency_key) DO UPDATE SET fingerprint = excluded.fingerprint, \
             owner = excluded.owner, claimed_until_ms = excluded.claimed_until_ms \
             WHERE idempotency_claims.claimed_until_ms <= $6",
        )
        .bind(key_id)
        .bind(idempotency_key)
        .bind(fingerprint)
        .bind(owner)
        .bind(until_ms)
        .bind(now_ms)
        .execute(&self.db.pool)
        .await?
        .rows_affected()
            == 1;
        if won {
            return Ok(Claim::Won);
        }
        let fingerprint = sqlx::query_scalar(
            "SELECT fingerprint FROM idempotency_claims WHERE key_id = $1 AND idempotency_key = $2",
        )
        .bind(key_id)
        .bind(idempotency_key)
        .fetch_optional(&self.db.pool)
        .await?;
        Ok(Claim::Held { fingerprint })
    }

    async fn renew(
        &self,
        key_id: &str,
        idempotency_key: &str,
        owner: &str,
        until_ms: i64,
    ) -> Result<bool, StoreError> {
        let renewed = sqlx::query(
            "UPDATE idempotency_claims SET claimed_until_ms = $1 \
             WHERE key_id = $2 AND idempotency_key = $3 AND owner = $4",
        )
        .bind(until_ms)
        .bind(key_id)
        .bind(idempotency_key)
        .bind(owner)
        .execute(&self.db.pool)
        .await?
        .rows_affected();
        Ok(renewed == 1)
    }

    async fn release(
        &self,
        key_id: &str,
        idempotency_key: &str,
        owner: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "DELETE FROM idempotency_claims WHERE key_id = $1 AND idempotency_key = $2 AND owner = $3",
        )
        .bind(key_id)
        .bind(idempotency_key)
        .bind(owner)
        .execute(&self.db.pool)
        .await?;
        Ok(())
    }
}

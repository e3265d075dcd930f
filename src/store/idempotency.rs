//! Results of POSTs sent with an `Idempotency-Key` (contract §5), kept for a while so a
//! repeat gets the first answer instead of a second, charged, upstream call.

use async_trait::async_trait;
use bytes::Bytes;
use sqlx::Row as _;

use crate::store::db::{Db, StoreError};

/// A finished response as it will be replayed.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
}

#[derive(Debug, Clone, PartialEq)]
pub struct IdempotentResult {
    /// Digest of the request the result answers; a repeat must match it.
    pub fingerprint: String,
    pub response: StoredResponse,
    pub created_at_ms: i64,
    pub expires_at_ms: i64,
}

#[async_trait]
pub trait IdempotencyStore: Send + Sync + 'static {
    /// The unexpired result stored under `key_id` and `idempotency_key`.
    async fn get(
        &self,
        key_id: &str,
        idempotency_key: &str,
        now_ms: i64,
    ) -> Result<Option<IdempotentResult>, StoreError>;
    /// Stores a result (replacing an expired one) and drops results expired at `now_ms`.
    async fn put(
        &self,
        key_id: &str,
        idempotency_key: &str,
        result: &IdempotentResult,
        now_ms: i64,
    ) -> Result<(), StoreError>;
}

pub struct SqlIdempotencyStore {
    db: Db,
}

impl SqlIdempotencyStore {
    pub fn new(db: Db) -> Self {
        Self { db }
    }
}

#[async_trait]
impl IdempotencyStore for SqlIdempotencyStore {
    async fn get(
        &self,
        key_id: &str,
        idempotency_key: &str,
        now_ms: i64,
    ) -> Result<Option<IdempotentResult>, StoreError> {
        let row = sqlx::query(
            "SELECT fingerprint, status, headers, body, created_at_ms, expires_at_ms FROM idempotency \
             WHERE key_id = ? AND idempotency_key = ? AND expires_at_ms > ?",
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
        sqlx::query("DELETE FROM idempotency WHERE expires_at_ms <= ?")
            .bind(now_ms)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO idempotency (key_id, idempotency_key, fingerprint, status, headers, body, created_at_ms, expires_at_ms) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?) \
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
}

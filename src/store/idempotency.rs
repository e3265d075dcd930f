//! Results of POSTs sent with an `Idempotency-Key` (docs/api.md#idempotency), kept for a while so a
//! repeat gets the first answer instead of a second, charged, upstream call.

use bytes::Bytes;
use sqlx::Row as _;

use crate::store::StoreError;
use crate::store::db::Db;

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

/// What trying to claim a key found.
#[derive(Debug, Clone, PartialEq)]
pub enum Claim {
    /// This runner holds the key until its lease ends.
    Won,
    /// Another runner holds it, for the request with this fingerprint (`None`: its claim
    /// was released between the two looks, so trying again may win).
    Held { fingerprint: Option<String> },
}

pub struct IdempotencyStore {
    db: Db,
}

impl IdempotencyStore {
    pub fn new(db: Db) -> Self {
        Self { db }
    }

    /// The unexpired result stored under `key_id` and `idempotency_key`.
    pub async fn get(
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
                    .map_err(|e| StoreError::malformed("stored status", e))?,
                headers: serde_json::from_str(&headers)
                    .map_err(|e| StoreError::malformed("stored headers", e))?,
                body: Bytes::from(body),
            },
            created_at_ms: row.try_get("created_at_ms")?,
            expires_at_ms: row.try_get("expires_at_ms")?,
        }))
    }

    /// Stores a result (replacing an expired one) and drops results expired at `now_ms`.
    pub async fn put(
        &self,
        key_id: &str,
        idempotency_key: &str,
        result: &IdempotentResult,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let headers = serde_json::to_string(&result.response.headers)
            .map_err(|e| StoreError::malformed("response headers", e))?;
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

    /// Claims the key for `owner` until `until_ms` unless a live claim (one whose lease
    /// has not ended at `now_ms`) holds it: one atomic insert, so among runners sharing
    /// the database exactly one wins.
    pub async fn claim(
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

    /// Extends `owner`'s claim; false when it is no longer `owner`'s.
    pub async fn renew(
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

    /// Gives `owner`'s claim up (its result is stored, or was not worth storing).
    pub async fn release(
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn one_of_two_pools_on_one_file_wins_a_claim_until_its_lease_lapses() {
        let dir = tempfile::tempdir().unwrap();
        // Two pools on one file stand for two processes sharing it.
        let a = IdempotencyStore::new(Db::open(dir.path()).await.unwrap());
        let b = IdempotencyStore::new(Db::open(dir.path()).await.unwrap());
        assert_eq!(
            a.claim("k", "idem", "fp", "a", 0, 100).await.unwrap(),
            Claim::Won
        );
        assert_eq!(
            b.claim("k", "idem", "fp", "b", 50, 150).await.unwrap(),
            Claim::Held {
                fingerprint: Some("fp".into())
            }
        );
        // Renewed while running: still held past the first lease.
        assert!(a.renew("k", "idem", "a", 200).await.unwrap());
        assert!(matches!(
            b.claim("k", "idem", "fp", "b", 150, 250).await.unwrap(),
            Claim::Held { .. }
        ));
        // The runner stopped renewing (crashed): at the end of its lease the claim is taken.
        assert_eq!(
            b.claim("k", "idem", "fp", "b", 200, 300).await.unwrap(),
            Claim::Won
        );
        assert!(!a.renew("k", "idem", "a", 400).await.unwrap(), "taken over");
        // Only the owner's release lets go.
        a.release("k", "idem", "a").await.unwrap();
        assert!(matches!(
            a.claim("k", "idem", "fp", "a", 250, 350).await.unwrap(),
            Claim::Held { .. }
        ));
        b.release("k", "idem", "b").await.unwrap();
        assert_eq!(
            a.claim("k", "idem", "fp", "a", 250, 350).await.unwrap(),
            Claim::Won
        );
    }
}

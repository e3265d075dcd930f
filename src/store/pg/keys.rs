//! API keys in PostgreSQL: digests only, as in the embedded store.

use async_trait::async_trait;
use sqlx::Row as _;
use sqlx::postgres::PgRow;

use super::PgDb;
use crate::auth::keys::KeyDigest;
use crate::store::StoreError;
use crate::store::keys::{KeyRecord, KeyStore};

pub struct PgKeyStore {
    db: PgDb,
}

impl PgKeyStore {
    pub fn new(db: PgDb) -> Self {
        Self { db }
    }
}

fn record(row: &PgRow) -> Result<KeyRecord, StoreError> {
    let digest: String = row.try_get("key_hash")?;
    Ok(KeyRecord {
        key_id: row.try_get("key_id")?,
        name: row.try_get("name")?,
        tier: row.try_get("tier")?,
        digest: KeyDigest::from_hex(&digest)
            .ok_or_else(|| StoreError::new("malformed key digest"))?,
        shown: row.try_get("shown")?,
        created_at_ms: row.try_get("created_at_ms")?,
        revoked_at_ms: row.try_get("revoked_at_ms")?,
    })
}

#[async_trait]
impl KeyStore for PgKeyStore {
    async fn insert(&self, key: &KeyRecord) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO api_keys (key_id, name, tier, key_hash, shown, created_at_ms, revoked_at_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&key.key_id)
        .bind(&key.name)
        .bind(&key.tier)
        .bind(key.digest.to_hex())
        .bind(&key.shown)
        .bind(key.created_at_ms)
        .bind(key.revoked_at_ms)
        .execute(&self.db.pool)
        .await?;
        Ok(())
    }

    async fn find_active(&self, digest: &KeyDigest) -> Result<Option<KeyRecord>, StoreError> {
        let row = sqlx::query(
            "SELECT key_id, name, tier, key_hash, shown, created_at_ms, revoked_at_ms \
             FROM api_keys WHERE key_hash = $1 AND revoked_at_ms IS NULL",
        )
        .bind(digest.to_hex())
        .fetch_optional(&self.db.pool)
        .await?;
        row.as_ref().map(record).transpose()
    }

    async fn list(&self) -> Result<Vec<KeyRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT key_id, name, tier, key_hash, shown, created_at_ms, revoked_at_ms \
             FROM api_keys ORDER BY created_at_ms, key_id",
        )
        .fetch_all(&self.db.pool)
        .await?;
        rows.iter().map(record).collect()
    }

    async fn revoke(&self, key_id: &str, now_ms: i64) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE api_keys SET revoked_at_ms = $1 WHERE key_id = $2 AND revoked_at_ms IS NULL",
        )
        .bind(now_ms)
        .bind(key_id)
        .execute(&self.db.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }
}

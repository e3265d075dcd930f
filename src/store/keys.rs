//! API keys: one row per key issued, holding its digest (never the key), tier and
//! whether it was revoked. Revoked rows stay, so ids in usage records keep a meaning.

use async_trait::async_trait;
use sqlx::Row as _;

use crate::auth::keys::KeyDigest;
use crate::store::db::{Db, StoreError};

#[derive(Debug, Clone, PartialEq)]
pub struct KeyRecord {
    /// `key_01…`: the non-secret id that sessions, images and usage belong to.
    pub key_id: String,
    pub name: Option<String>,
    pub tier: String,
    pub digest: KeyDigest,
    /// The first characters of the key, to tell keys apart in listings.
    pub shown: String,
    pub created_at_ms: i64,
    pub revoked_at_ms: Option<i64>,
}

#[async_trait]
pub trait KeyStore: Send + Sync + 'static {
    async fn insert(&self, key: &KeyRecord) -> Result<(), StoreError>;
    /// The unrevoked key with this digest.
    async fn find_active(&self, digest: &KeyDigest) -> Result<Option<KeyRecord>, StoreError>;
    /// Every key ever issued, oldest first, revoked ones included.
    async fn list(&self) -> Result<Vec<KeyRecord>, StoreError>;
    /// `false` when no unrevoked key has this id.
    async fn revoke(&self, key_id: &str, now_ms: i64) -> Result<bool, StoreError>;
}

pub struct SqlKeyStore {
    db: Db,
}

impl SqlKeyStore {
    pub fn new(db: Db) -> Self {
        Self { db }
    }
}

fn record(row: &sqlx::sqlite::SqliteRow) -> Result<KeyRecord, StoreError> {
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
impl KeyStore for SqlKeyStore {
    async fn insert(&self, key: &KeyRecord) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO api_keys (key_id, name, tier, key_hash, shown, created_at_ms, revoked_at_ms) \
             VALUES (?, ?, ?, ?, ?, ?, ?)",
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
             FROM api_keys WHERE key_hash = ? AND revoked_at_ms IS NULL",
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
            "UPDATE api_keys SET revoked_at_ms = ? WHERE key_id = ? AND revoked_at_ms IS NULL",
        )
        .bind(now_ms)
        .bind(key_id)
        .execute(&self.db.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }
}

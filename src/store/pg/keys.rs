//! API keys in PostgreSQL: digests only, the same statements as the embedded store.

use async_trait::async_trait;
use sqlx::Row as _;
use sqlx::postgres::PgRow;

use super::PgDb;
use crate::auth::keys::KeyDigest;
use crate::auth::settings::{KeySettings, SpendLimits};
use crate::store::StoreError;
use crate::store::keys::{
    INSERT, KeyRecord, KeyStore, RESERVE, SAVE, SETTLE, SPEND, Spend, SpendPeriod, columns,
    key_record, pg, spend_of,
};

pub struct PgKeyStore {
    db: PgDb,
}

impl PgKeyStore {
    pub fn new(db: PgDb) -> Self {
        Self { db }
    }
}

fn record(row: &PgRow) -> Result<KeyRecord, StoreError> {
    key_record!(row)
}

#[async_trait]
impl KeyStore for PgKeyStore {
    async fn insert(&self, key: &KeyRecord) -> Result<(), StoreError> {
        sqlx::query(sqlx::AssertSqlSafe(pg(INSERT)))
            .bind(&key.key_id)
            .bind(&key.name)
            .bind(&key.tier)
            .bind(key.digest.to_hex())
            .bind(&key.shown)
            .bind(key.created_at_ms)
            .bind(key.revoked_at_ms)
            .bind(key.settings.to_stored())
            .bind(key.expires_at_ms)
            .bind(&key.rotated_to)
            .bind(key.grace_until_ms)
            .bind(key.limits.daily_micro)
            .bind(key.limits.monthly_micro)
            .execute(&self.db.pool)
            .await?;
        Ok(())
    }

    async fn find_active(&self, digest: &KeyDigest) -> Result<Option<KeyRecord>, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(pg(concat!(
            "SELECT ",
            columns!(),
            " FROM api_keys WHERE key_hash = ?1 AND revoked_at_ms IS NULL"
        ))))
        .bind(digest.to_hex())
        .fetch_optional(&self.db.pool)
        .await?;
        row.as_ref().map(record).transpose()
    }

    async fn get(&self, key_id: &str) -> Result<Option<KeyRecord>, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(pg(concat!(
            "SELECT ",
            columns!(),
            " FROM api_keys WHERE key_id = ?1"
        ))))
        .bind(key_id)
        .fetch_optional(&self.db.pool)
        .await?;
        row.as_ref().map(record).transpose()
    }

    async fn list(&self) -> Result<Vec<KeyRecord>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(pg(concat!(
            "SELECT ",
            columns!(),
            " FROM api_keys ORDER BY created_at_ms, key_id"
        ))))
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

    async fn save(&self, key: &KeyRecord) -> Result<bool, StoreError> {
        let done = sqlx::query(sqlx::AssertSqlSafe(pg(SAVE)))
            .bind(&key.key_id)
            .bind(&key.name)
            .bind(&key.tier)
            .bind(key.settings.to_stored())
            .bind(key.expires_at_ms)
            .bind(&key.rotated_to)
            .bind(key.grace_until_ms)
            .bind(key.limits.daily_micro)
            .bind(key.limits.monthly_micro)
            .execute(&self.db.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn reserve(
        &self,
        key_id: &str,
        period: &SpendPeriod,
        micro: i64,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(sqlx::AssertSqlSafe(pg(RESERVE)))
            .bind(key_id)
            .bind(&period.day)
            .bind(&period.month)
            .bind(micro)
            .execute(&self.db.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn settle(
        &self,
        key_id: &str,
        period: &SpendPeriod,
        delta_micro: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(sqlx::AssertSqlSafe(pg(SETTLE)))
            .bind(key_id)
            .bind(&period.day)
            .bind(&period.month)
            .bind(delta_micro)
            .execute(&self.db.pool)
            .await?;
        Ok(())
    }

    async fn spend(&self, key_id: &str, period: &SpendPeriod) -> Result<Option<Spend>, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(pg(SPEND)))
            .bind(key_id)
            .bind(&period.day)
            .bind(&period.month)
            .fetch_optional(&self.db.pool)
            .await?;
        row.as_ref()
            .map(|row| -> Result<Spend, StoreError> { spend_of!(row) })
            .transpose()
    }
}

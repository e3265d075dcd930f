//! API keys: one row per key issued, holding its digest (never the key), tier, settings
//! (docs/keys.md), and the day's and month's spend its budgets are checked against.
//! Revoked rows stay, so ids in usage records keep a meaning.
//!

use sqlx::Row as _;
use sqlx::any::AnyRow;

use crate::auth::keys::KeyDigest;
use crate::auth::settings::{KeySettings, SpendLimits};
use crate::store::StoreError;
use crate::store::db::Db;

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
    pub settings: KeySettings,
    pub limits: SpendLimits,
    pub expires_at_ms: Option<i64>,
    /// Set once the key was rotated: its successor, and when the old key stops working.
    pub rotated_to: Option<String>,
    pub grace_until_ms: Option<i64>,
}

/// A key's spending limits and what was spent (reservations included) in the current
/// UTC day and month.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Spend {
    pub limits: SpendLimits,
    pub day_micro: i64,
    pub month_micro: i64,
}

/// The UTC day (`YYYY-MM-DD`) and month (`YYYY-MM`) a spend is counted in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpendPeriod {
    pub day: String,
    pub month: String,
}

/// The columns a [`KeyRecord`] is read from.
macro_rules! columns {
    () => {
        "key_id, name, tier, key_hash, shown, created_at_ms, revoked_at_ms, settings, \
         expires_at_ms, rotated_to, grace_until_ms, daily_budget_micro, monthly_budget_micro"
    };
}

const INSERT: &str = "INSERT INTO api_keys (key_id, name, tier, key_hash, shown, created_at_ms, \
     revoked_at_ms, settings, expires_at_ms, rotated_to, grace_until_ms, daily_budget_micro, \
     monthly_budget_micro) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)";

const SAVE: &str = "UPDATE api_keys SET name = $2, tier = $3, settings = $4, expires_at_ms = $5, \
     rotated_to = $6, grace_until_ms = $7, daily_budget_micro = $8, monthly_budget_micro = $9 \
     WHERE key_id = $1 AND revoked_at_ms IS NULL";

/// One statement, so the check and the addition cannot be separated by another
/// instance's: PostgreSQL re-evaluates the WHERE clause on the row it waited for, and
/// SQLite runs one writer at a time. A new day or month starts its counter at zero.
pub(crate) const RESERVE: &str = "UPDATE api_keys SET \
     spend_day_micro = (CASE WHEN spend_day = $2 THEN spend_day_micro ELSE 0 END) + $4, \
     spend_month_micro = (CASE WHEN spend_month = $3 THEN spend_month_micro ELSE 0 END) + $4, \
     spend_day = $2, spend_month = $3 \
     WHERE key_id = $1 AND rotated_to IS NULL \
     AND (daily_budget_micro IS NULL OR \
          (CASE WHEN spend_day = $2 THEN spend_day_micro ELSE 0 END) + $4 <= daily_budget_micro) \
     AND (monthly_budget_micro IS NULL OR \
          (CASE WHEN spend_month = $3 THEN spend_month_micro ELSE 0 END) + $4 <= monthly_budget_micro)";

pub(crate) const SETTLE: &str = "UPDATE api_keys SET \
     spend_day_micro = CASE WHEN spend_day = $2 THEN spend_day_micro + $4 ELSE spend_day_micro END, \
     spend_month_micro = CASE WHEN spend_month = $3 THEN spend_month_micro + $4 ELSE spend_month_micro END \
     WHERE key_id = $1";

const SPEND: &str = "SELECT daily_budget_micro, monthly_budget_micro, \
     CASE WHEN spend_day = $2 THEN spend_day_micro ELSE 0 END AS day_micro, \
     CASE WHEN spend_month = $3 THEN spend_month_micro ELSE 0 END AS month_micro \
     FROM api_keys WHERE key_id = $1";

/// Marks a key rotated; the first half of [`KeyStore::hand_over`].
const HAND_OVER: &str = "UPDATE api_keys SET rotated_to = $2, grace_until_ms = $3 \
     WHERE key_id = $1 AND rotated_to IS NULL AND revoked_at_ms IS NULL";

/// The second half: the successor takes over what was spent, so both credentials of
/// the key spend against one budget.
const CARRY_SPEND: &str = "UPDATE api_keys SET \
     (spend_day, spend_day_micro, spend_month, spend_month_micro) = \
     (SELECT spend_day, spend_day_micro, spend_month, spend_month_micro FROM api_keys WHERE key_id = $1) \
     WHERE key_id = $2";

pub struct KeyStore {
    db: Db,
}

impl KeyStore {
    pub fn new(db: Db) -> Self {
        Self { db }
    }

    pub async fn insert(&self, key: &KeyRecord) -> Result<(), StoreError> {
        sqlx::query(INSERT)
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

    /// The unrevoked key with this digest (expired and rotated ones included).
    pub async fn find_active(&self, digest: &KeyDigest) -> Result<Option<KeyRecord>, StoreError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            columns!(),
            " FROM api_keys WHERE key_hash = $1 AND revoked_at_ms IS NULL"
        ))
        .bind(digest.to_hex())
        .fetch_optional(&self.db.pool)
        .await?;
        row.as_ref().map(record).transpose()
    }

    pub async fn get(&self, key_id: &str) -> Result<Option<KeyRecord>, StoreError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            columns!(),
            " FROM api_keys WHERE key_id = $1"
        ))
        .bind(key_id)
        .fetch_optional(&self.db.pool)
        .await?;
        row.as_ref().map(record).transpose()
    }

    /// Every key ever issued, oldest first, revoked ones included.
    pub async fn list(&self) -> Result<Vec<KeyRecord>, StoreError> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            columns!(),
            " FROM api_keys ORDER BY created_at_ms, key_id"
        ))
        .fetch_all(&self.db.pool)
        .await?;
        rows.iter().map(record).collect()
    }

    /// `false` when no unrevoked key has this id.
    pub async fn revoke(&self, key_id: &str, now_ms: i64) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE api_keys SET revoked_at_ms = $1 WHERE key_id = $2 AND revoked_at_ms IS NULL",
        )
        .bind(now_ms)
        .bind(key_id)
        .execute(&self.db.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Writes a key's changeable fields (name, tier, settings, limits, expiry, rotation);
    /// `false` when no unrevoked key has this id.
    pub async fn save(&self, key: &KeyRecord) -> Result<bool, StoreError> {
        let done = sqlx::query(SAVE)
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

    /// Adds `micro` to the period's spend if it fits both limits, in one conditional
    /// statement (atomic on either database, across instances). `false`: it did not fit.
    pub async fn reserve(
        &self,
        key_id: &str,
        period: &SpendPeriod,
        micro: i64,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(RESERVE)
            .bind(key_id)
            .bind(&period.day)
            .bind(&period.month)
            .bind(micro)
            .execute(&self.db.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Adds `delta_micro` (negative to give back) to the period's spend, if the period
    /// is still the current one.
    pub async fn settle(
        &self,
        key_id: &str,
        period: &SpendPeriod,
        delta_micro: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(SETTLE)
            .bind(key_id)
            .bind(&period.day)
            .bind(&period.month)
            .bind(delta_micro)
            .execute(&self.db.pool)
            .await?;
        Ok(())
    }

    /// Rotates `key_id` to `successor` (already inserted): marks it rotated with its
    /// grace period and carries its spend over to the successor, in one transaction, so
    /// the key's budget is one across its two credentials. From then on the old key's
    /// reservations are refused by its own row (`RESERVE` requires it unrotated) and go to
    /// the successor's. `false` when the key was already rotated or revoked.
    pub async fn hand_over(
        &self,
        key_id: &str,
        successor: &str,
        grace_until_ms: i64,
    ) -> Result<bool, StoreError> {
        let mut tx = self.db.pool.begin().await?;
        let marked = sqlx::query(HAND_OVER)
            .bind(key_id)
            .bind(successor)
            .bind(grace_until_ms)
            .execute(&mut *tx)
            .await?;
        if marked.rows_affected() == 0 {
            return Ok(false);
        }
        sqlx::query(CARRY_SPEND)
            .bind(key_id)
            .bind(successor)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// The key's limits and spend in `period`; `None` for an unknown key.
    pub async fn spend(
        &self,
        key_id: &str,
        period: &SpendPeriod,
    ) -> Result<Option<Spend>, StoreError> {
        let row = sqlx::query(SPEND)
            .bind(key_id)
            .bind(&period.day)
            .bind(&period.month)
            .fetch_optional(&self.db.pool)
            .await?;
        row.as_ref()
            .map(|row| {
                Ok(Spend {
                    limits: limits(row)?,
                    day_micro: row.try_get("day_micro")?,
                    month_micro: row.try_get("month_micro")?,
                })
            })
            .transpose()
    }
}

fn record(row: &AnyRow) -> Result<KeyRecord, StoreError> {
    let digest: String = row.try_get("key_hash")?;
    let settings: String = row.try_get("settings")?;
    Ok(KeyRecord {
        key_id: row.try_get("key_id")?,
        name: row.try_get("name")?,
        tier: row.try_get("tier")?,
        digest: KeyDigest::from_hex(&digest).ok_or(StoreError::Malformed {
            what: "key digest",
            source: None,
        })?,
        shown: row.try_get("shown")?,
        created_at_ms: row.try_get("created_at_ms")?,
        revoked_at_ms: row.try_get("revoked_at_ms")?,
        settings: KeySettings::from_stored(&settings),
        limits: limits(row)?,
        expires_at_ms: row.try_get("expires_at_ms")?,
        rotated_to: row.try_get("rotated_to")?,
        grace_until_ms: row.try_get("grace_until_ms")?,
    })
}

fn limits(row: &AnyRow) -> Result<SpendLimits, StoreError> {
    Ok(SpendLimits {
        daily_micro: row.try_get("daily_budget_micro")?,
        monthly_micro: row.try_get("monthly_budget_micro")?,
    })
}

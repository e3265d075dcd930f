//! Batches (docs/batches.md): one row per submission. A worker claims a batch that is due
//! under a lease and takes one step (submit it upstream, poll it, or collect its results);
//! the attempt number fences every write, so a worker that lost its lease cannot overwrite
//! what the one that took over did.
//!
//! A batch reserves its items' worst-case cost against the key's budget in the transaction
//! that inserts it, and settles it (the real cost replaces the reservation) in the one that
//! records its end, so neither is lost or counted twice by a crash or a takeover.

use sqlx::AssertSqlSafe;
use sqlx::Row as _;
use sqlx::any::AnyRow;

use crate::store::StoreError;
use crate::store::db::{Db, Dialect};
use crate::store::keys::{RESERVE, SETTLE, SpendPeriod};
use crate::store::requests::{NewDelivery, insert_delivery};

#[derive(Debug, Clone, PartialEq)]
pub struct BatchRecord {
    pub id: String,
    pub owner: String,
    pub tier: String,
    pub model: String,
    pub display_name: Option<String>,
    pub webhook_url: Option<String>,
    pub state: String,
    pub item_count: i64,
    pub upstream_name: Option<String>,
    pub cancel_requested: bool,
    pub attempts: i64,
    pub polls: i64,
    pub next_poll_ms: i64,
    pub items: Option<String>,
    pub error: Option<String>,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
    pub finished_at_ms: Option<i64>,
    /// The items' worst case held against the owner's budget while the batch is open, and
    /// the UTC day and month it was held in (`None`: nothing was reserved).
    pub reserved: Option<Reserved>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reserved {
    pub micro: i64,
    pub period: SpendPeriod,
}

/// What [`BatchStore::insert`] did.
#[derive(Debug, PartialEq, Eq)]
pub enum Inserted {
    Inserted,
    /// The owner's items pending would exceed the cap: nothing was stored or reserved.
    OverCap,
    /// The reservation does not fit the owner's budget: nothing was stored or reserved.
    OverBudget,
}

#[derive(Debug, PartialEq, Eq)]
pub enum CancelBatch {
    /// It had not gone upstream yet: cancelled at once.
    Cancelled,
    /// It is upstream: a worker cancels it there and records the outcome.
    Requested,
    /// Already final; its state.
    Final(String),
    NotFound,
}

pub struct BatchStore {
    db: Db,
}

impl BatchStore {
    pub fn new(db: Db) -> Self {
        Self { db }
    }

    fn reserved(row: &AnyRow) -> Result<Option<Reserved>, sqlx::Error> {
        let day: String = row.try_get("reserved_day")?;
        Ok((!day.is_empty()).then_some(Reserved {
            micro: row.try_get("reserved_micro")?,
            period: SpendPeriod {
                day,
                month: row.try_get("reserved_month")?,
            },
        }))
    }

    /// Adds `delta_micro` to the key's spend in the period the batch reserved in.
    async fn settle_in(
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        owner: &str,
        reserved: &Reserved,
        delta_micro: i64,
    ) -> Result<(), sqlx::Error> {
        if delta_micro != 0 {
            sqlx::query(SETTLE)
                .bind(owner)
                .bind(&reserved.period.day)
                .bind(&reserved.period.month)
                .bind(delta_micro)
                .execute(&mut **tx)
                .await?;
        }
        Ok(())
    }

    /// [`BatchStore::insert`]'s statements inside `tx`, which the caller commits only on
    /// [`Inserted::Inserted`] (public so that a test can hold one insert open while another
    /// runs).
    pub async fn insert_in(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        b: &BatchRecord,
        max_pending: i64,
    ) -> Result<Inserted, StoreError> {
        if self.db.dialect() == Dialect::Postgres {
            sqlx::query(LOCK_OWNER_PG)
                .bind(&b.owner)
                .execute(&mut **tx)
                .await?;
        }
        if let Some(r) = &b.reserved {
            let reserved = sqlx::query(RESERVE)
                .bind(&b.owner)
                .bind(&r.period.day)
                .bind(&r.period.month)
                .bind(r.micro)
                .execute(&mut **tx)
                .await?;
            if reserved.rows_affected() != 1 {
                return Ok(Inserted::OverBudget);
            }
        }
        let (micro, day, month) = b.reserved.as_ref().map_or((0, "", ""), |r| {
            (r.micro, r.period.day.as_str(), r.period.month.as_str())
        });
        let done = sqlx::query(INSERT)
            .bind(&b.id)
            .bind(&b.owner)
            .bind(&b.tier)
            .bind(&b.model)
            .bind(&b.display_name)
            .bind(&b.webhook_url)
            .bind(b.item_count)
            .bind(b.created_at_ms)
            .bind(max_pending)
            .bind(micro)
            .bind(day)
            .bind(month)
            .execute(&mut **tx)
            .await?;
        Ok(if done.rows_affected() == 1 {
            Inserted::Inserted
        } else {
            Inserted::OverCap
        })
    }

    fn record(row: &AnyRow) -> Result<BatchRecord, sqlx::Error> {
        let cancel: i64 = row.try_get("cancel_requested")?;
        Ok(BatchRecord {
            id: row.try_get("id")?,
            owner: row.try_get("owner")?,
            tier: row.try_get("tier")?,
            model: row.try_get("model")?,
            display_name: row.try_get("display_name")?,
            webhook_url: row.try_get("webhook_url")?,
            state: row.try_get("state")?,
            item_count: row.try_get("item_count")?,
            upstream_name: row.try_get("upstream_name")?,
            cancel_requested: cancel != 0,
            attempts: row.try_get("attempts")?,
            polls: row.try_get("polls")?,
            next_poll_ms: row.try_get("next_poll_ms")?,
            items: row.try_get("items")?,
            error: row.try_get("error")?,
            created_at_ms: row.try_get("created_at_ms")?,
            updated_at_ms: row.try_get("updated_at_ms")?,
            finished_at_ms: row.try_get("finished_at_ms")?,
            reserved: Self::reserved(row)?,
        })
    }

    /// Inserts the batch and reserves `batch.reserved` against its owner's budget, in one
    /// transaction, unless the owner's items pending would then exceed `max_pending` or the
    /// reservation does not fit. Inserts for one owner are serialised, so two instances
    /// submitting at the same instant cannot both pass the cap.
    pub async fn insert(&self, b: &BatchRecord, max_pending: i64) -> Result<Inserted, StoreError> {
        let mut tx = self.db.pool.begin().await?;
        let inserted = self.insert_in(&mut tx, b, max_pending).await?;
        // Otherwise dropping the transaction rolls the reservation back.
        if inserted == Inserted::Inserted {
            tx.commit().await?;
        }
        Ok(inserted)
    }

    pub async fn get(&self, id: &str, owner: &str) -> Result<Option<BatchRecord>, StoreError> {
        let row = sqlx::query("SELECT * FROM batches WHERE id = $1 AND owner = $2")
            .bind(id)
            .bind(owner)
            .fetch_optional(&self.db.pool)
            .await?;
        Ok(row.as_ref().map(Self::record).transpose()?)
    }

    /// The owner's batches, newest first, created before `before_ms`.
    pub async fn list(
        &self,
        owner: &str,
        before_ms: i64,
        limit: i64,
    ) -> Result<Vec<BatchRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT * FROM batches WHERE owner = $1 AND created_at_ms < $2
                     ORDER BY created_at_ms DESC, id DESC LIMIT $3",
        )
        .bind(owner)
        .bind(before_ms)
        .bind(limit)
        .fetch_all(&self.db.pool)
        .await?;
        Ok(rows.iter().map(Self::record).collect::<Result<_, _>>()?)
    }

    pub async fn pending_items(&self, owner: &str) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT CAST(COALESCE(SUM(item_count), 0) AS BIGINT) FROM batches
                     WHERE owner = $1 AND state IN ('queued', 'running')",
        )
        .bind(owner)
        .fetch_one(&self.db.pool)
        .await?)
    }

    /// Takes the open batch that has been due longest, unless another worker holds it,
    /// and leases it until `now + lease_ms`; its attempt count goes up by one.
    pub async fn claim(
        &self,
        now_ms: i64,
        lease_ms: i64,
    ) -> Result<Option<BatchRecord>, StoreError> {
        // The SQL is made of constants only.
        let row = sqlx::query(AssertSqlSafe(CLAIM.replace("{}", self.db.skip_locked())))
            .bind(now_ms + lease_ms)
            .bind(now_ms)
            .fetch_optional(&self.db.pool)
            .await?;
        Ok(row.as_ref().map(Self::record).transpose()?)
    }

    /// Extends the lease of attempt `attempt` to `lease_until_ms` while its step runs;
    /// `false` once another worker took the batch over (or it ended).
    pub async fn renew(
        &self,
        id: &str,
        attempt: i64,
        lease_until_ms: i64,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(RENEW)
            .bind(lease_until_ms)
            .bind(id)
            .bind(attempt)
            .execute(&self.db.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Records the step's result and lets the lease go: `state`, the upstream name once
    /// known, and when it is next due. `false` if fenced off.
    pub async fn step(
        &self,
        id: &str,
        attempt: i64,
        state: &str,
        upstream_name: Option<&str>,
        next_poll_ms: i64,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(STEP)
            .bind(state)
            .bind(upstream_name)
            .bind(next_poll_ms)
            .bind(now_ms)
            .bind(id)
            .bind(attempt)
            .execute(&self.db.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Records the final state and per-item outcomes, queues the caller's webhook and
    /// settles the batch's reservation to `spent_micro` (what its items really cost), in
    /// one transaction. `false` if fenced off.
    #[allow(clippy::too_many_arguments)]
    pub async fn finish(
        &self,
        id: &str,
        attempt: i64,
        state: &str,
        items: &str,
        error: Option<&str>,
        now_ms: i64,
        delivery: Option<&NewDelivery>,
        spent_micro: i64,
    ) -> Result<bool, StoreError> {
        let mut tx = self.db.pool.begin().await?;
        let done = sqlx::query(FINISH)
            .bind(state)
            .bind(items)
            .bind(error)
            .bind(now_ms)
            .bind(id)
            .bind(attempt)
            .fetch_optional(&mut *tx)
            .await?;
        let Some(row) = done else {
            return Ok(false);
        };
        let owner: String = row.try_get("owner")?;
        if let Some(reserved) = Self::reserved(&row)? {
            let delta = spent_micro - reserved.micro;
            Self::settle_in(&mut tx, &owner, &reserved, delta).await?;
        }
        if let Some(d) = delivery {
            insert_delivery(&mut tx, id, &owner, d, now_ms).await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    /// Cancels a batch not yet upstream at once (giving its reservation back), or asks
    /// the worker to cancel it upstream.
    pub async fn cancel(
        &self,
        id: &str,
        owner: &str,
        now_ms: i64,
        delivery: Option<&NewDelivery>,
    ) -> Result<CancelBatch, StoreError> {
        let mut tx = self.db.pool.begin().await?;
        let cancelled = sqlx::query(
            "UPDATE batches SET state = 'cancelled', items = '[]', finished_at_ms = $1,
                     updated_at_ms = $1, lease_until_ms = NULL
                     WHERE id = $2 AND owner = $3 AND state = 'queued' AND lease_until_ms IS NULL
                     RETURNING reserved_micro, reserved_day, reserved_month",
        )
        .bind(now_ms)
        .bind(id)
        .bind(owner)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(row) = cancelled {
            // Nothing went upstream: the whole reservation is given back.
            if let Some(reserved) = Self::reserved(&row)? {
                Self::settle_in(&mut tx, owner, &reserved, -reserved.micro).await?;
            }
            if let Some(d) = delivery {
                insert_delivery(&mut tx, id, owner, d, now_ms).await?;
            }
            tx.commit().await?;
            return Ok(CancelBatch::Cancelled);
        }
        // Upstream already (or being sent there): the worker cancels it there.
        let requested = sqlx::query(
            "UPDATE batches SET cancel_requested = 1, next_poll_ms = $1, updated_at_ms = $1
                     WHERE id = $2 AND owner = $3 AND state IN ('queued', 'running')",
        )
        .bind(now_ms)
        .bind(id)
        .bind(owner)
        .execute(&mut *tx)
        .await?;
        if requested.rows_affected() == 1 {
            tx.commit().await?;
            return Ok(CancelBatch::Requested);
        }
        let state: Option<String> =
            sqlx::query_scalar("SELECT state FROM batches WHERE id = $1 AND owner = $2")
                .bind(id)
                .bind(owner)
                .fetch_optional(&mut *tx)
                .await?;
        Ok(state.map_or(CancelBatch::NotFound, CancelBatch::Final))
    }

    /// Makes the open batch known upstream as `upstream_name` due now (the upstream said it
    /// ended). `false` when no open batch has that name.
    pub async fn due_now(&self, upstream_name: &str, now_ms: i64) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE batches SET next_poll_ms = $1
                     WHERE upstream_name = $2 AND state IN ('queued', 'running')",
        )
        .bind(now_ms)
        .bind(upstream_name)
        .execute(&self.db.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }
}

const INSERT: &str =
    "INSERT INTO batches (id, owner, tier, model, display_name, webhook_url, state, item_count,
     next_poll_ms, created_at_ms, updated_at_ms, reserved_micro, reserved_day, reserved_month)
     SELECT $1, $2, $3, $4, $5, $6, 'queued', $7, $8, $8, $8, $10, $11, $12
     WHERE (SELECT COALESCE(SUM(item_count), 0) FROM batches
            WHERE owner = $2 AND state IN ('queued', 'running')) + $7 <= $9";

/// PostgreSQL's READ COMMITTED would let two transactions each count the other's batch
/// out of the cap; this lock, held to the end of the insert's transaction, makes the second
/// wait for the first and then count it. (SQLite runs one writer at a time already.)
const LOCK_OWNER_PG: &str = "SELECT pg_advisory_xact_lock(
     hashtextextended('imagegate.batches.' || current_schema() || '.' || $1, 0))";

const RENEW: &str = "UPDATE batches SET lease_until_ms = $1
     WHERE id = $2 AND attempts = $3 AND state IN ('queued', 'running')";

const STEP: &str = "UPDATE batches SET state = $1, upstream_name = COALESCE($2, upstream_name),
     next_poll_ms = $3, updated_at_ms = $4, lease_until_ms = NULL,
     polls = CASE WHEN $1 = 'running' THEN polls + 1 ELSE polls END
     WHERE id = $5 AND attempts = $6 AND state IN ('queued', 'running')";

const FINISH: &str = "UPDATE batches SET state = $1, items = $2, error = $3, finished_at_ms = $4,
     updated_at_ms = $4, lease_until_ms = NULL
     WHERE id = $5 AND attempts = $6 AND state IN ('queued', 'running')
     RETURNING owner, reserved_micro, reserved_day, reserved_month";

/// The claim, with the dialect's locking clause after `LIMIT 1` ([`Db::skip_locked`]).
const CLAIM: &str = "UPDATE batches SET attempts = attempts + 1, lease_until_ms = $1
     WHERE id = (SELECT id FROM batches
                 WHERE state IN ('queued', 'running') AND next_poll_ms <= $2
                   AND (lease_until_ms IS NULL OR lease_until_ms < $2)
                 ORDER BY next_poll_ms LIMIT 1{})
     RETURNING *";

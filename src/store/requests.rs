//! Async requests and their webhook deliveries. A request is claimed under a lease; the
//! attempt number fences every later write, so a worker that lost its lease (or died and
//! came back) cannot overwrite the outcome of the one that took over.

use sqlx::AssertSqlSafe;
use sqlx::Row as _;
use sqlx::any::AnyRow;

use crate::store::StoreError;
use crate::store::db::Db;
use crate::store::session_order as order;

#[derive(Debug, Clone, PartialEq)]
pub struct RequestRecord {
    pub id: String,
    pub owner: String,
    pub tier: String,
    pub path: String,
    pub content_type: String,
    /// Where the request body is kept (a blob id).
    pub body_ref: String,
    pub webhook_url: Option<String>,
    pub status: String,
    pub attempts: i64,
    pub result: Option<String>,
    pub error: Option<String>,
    pub created_at_ms: i64,
    pub finished_at_ms: Option<i64>,
}

#[derive(Debug, Clone)]
pub struct NewDelivery {
    pub id: String,
    pub url: String,
    pub payload: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    pub id: String,
    pub request_id: String,
    pub owner: String,
    pub url: String,
    pub payload: String,
    pub attempts: i64,
    pub created_at_ms: i64,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Cancel {
    Canceled,
    /// Not queued any more (running or finished); its current status.
    TooLate(String),
    NotFound,
}

pub struct RequestStore {
    db: Db,
}

impl RequestStore {
    pub fn new(db: Db) -> Self {
        Self { db }
    }

    pub async fn insert(&self, r: &RequestRecord) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO requests (id, owner, tier, path, content_type, body_ref, webhook_url, status, attempts, created_at_ms)
             VALUES ($1, $2, $3, $4, $5, $6, $7, 'queued', 0, $8)",
        )
        .bind(&r.id)
        .bind(&r.owner)
        .bind(&r.tier)
        .bind(&r.path)
        .bind(&r.content_type)
        .bind(&r.body_ref)
        .bind(&r.webhook_url)
        .bind(r.created_at_ms)
        .execute(&self.db.pool)
        .await?;
        Ok(())
    }

    pub async fn get(&self, id: &str, owner: &str) -> Result<Option<RequestRecord>, StoreError> {
        // A synchronous chat message's row only holds its place; it is no async request.
        let row =
            sqlx::query("SELECT * FROM requests WHERE id = $1 AND owner = $2 AND status <> 'sync'")
                .bind(id)
                .bind(owner)
                .fetch_optional(&self.db.pool)
                .await?;
        Ok(row.as_ref().map(record).transpose()?)
    }

    /// Takes the oldest queued request, or a running one whose lease has expired, and
    /// leases it until `now + lease_ms`; its attempt count goes up by one.
    pub async fn claim(
        &self,
        now_ms: i64,
        lease_ms: i64,
    ) -> Result<Option<RequestRecord>, StoreError> {
        // One statement: SQLite runs it as a single write, so two workers never claim
        // the same request; PostgreSQL's workers skip the rows others have locked. A
        // queued row's `lease_until_ms` is when it may run again (see `defer`). A chat
        // message waits for the earlier messages of its session (never claimed before they
        // finish), so a worker never sits waiting for its turn.
        // The SQL is made of constants only.
        let row = sqlx::query(AssertSqlSafe(format!(
            "UPDATE requests SET status = 'running', attempts = attempts + 1, lease_until_ms = $1
             WHERE id = (SELECT id FROM requests r
                         WHERE ((r.status = 'queued' AND (r.lease_until_ms IS NULL OR r.lease_until_ms <= $2))
                                OR (r.status = 'running' AND r.lease_until_ms < $3))
                         AND (r.session_id IS NULL OR NOT EXISTS (
                             SELECT 1 FROM requests e WHERE e.session_id = r.session_id AND e.session_seq < r.session_seq
                             AND (e.status IN ('queued', 'running') OR (e.status = 'sync' AND e.lease_until_ms >= $2))))
                         ORDER BY r.created_at_ms LIMIT 1{})
             RETURNING *",
            self.db.skip_locked()
        )))
        .bind(now_ms + lease_ms)
        .bind(now_ms)
        .bind(now_ms)
        .fetch_optional(&self.db.pool)
        .await?;
        Ok(row.as_ref().map(record).transpose()?)
    }

    /// Extends the lease while the attempt still holds it.
    pub async fn renew(
        &self,
        id: &str,
        attempt: i64,
        lease_until_ms: i64,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query("UPDATE requests SET lease_until_ms = $1 WHERE id = $2 AND attempts = $3 AND status = 'running'")
            .bind(lease_until_ms)
            .bind(id)
            .bind(attempt)
            .execute(&self.db.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Hands a request this attempt still holds back to the queue (a stopping worker
    /// that could not finish it); the attempt does not count against its budget.
    pub async fn release(&self, id: &str, attempt: i64) -> Result<bool, StoreError> {
        let done = sqlx::query("UPDATE requests SET status = 'queued', attempts = attempts - 1, lease_until_ms = NULL WHERE id = $1 AND attempts = $2 AND status = 'running'")
            .bind(id)
            .bind(attempt)
            .execute(&self.db.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// As [`RequestStore::release`], but not claimable again before `not_before_ms` (a
    /// queued row's `lease_until_ms`): a worker that cannot run it yet (its key has no
    /// free slot) lets other work through instead of holding it.
    pub async fn defer(
        &self,
        id: &str,
        attempt: i64,
        not_before_ms: i64,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query("UPDATE requests SET status = 'queued', attempts = attempts - 1, lease_until_ms = $1 WHERE id = $2 AND attempts = $3 AND status = 'running'")
            .bind(not_before_ms)
            .bind(id)
            .bind(attempt)
            .execute(&self.db.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Records the outcome of an attempt that still holds the request, and queues its
    /// webhook in the same transaction (so a crash cannot lose it). `false` if fenced off.
    #[allow(clippy::too_many_arguments)]
    pub async fn finish(
        &self,
        id: &str,
        attempt: i64,
        status: &str,
        result: Option<&str>,
        error: Option<&str>,
        now_ms: i64,
        delivery: Option<&NewDelivery>,
    ) -> Result<bool, StoreError> {
        let mut tx = self.db.pool.begin().await?;
        let done = sqlx::query(
            "UPDATE requests SET status = $1, result = $2, error = $3, finished_at_ms = $4, lease_until_ms = NULL
             WHERE id = $5 AND attempts = $6 AND status = 'running' RETURNING owner",
        )
        .bind(status)
        .bind(result)
        .bind(error)
        .bind(now_ms)
        .bind(id)
        .bind(attempt)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = done else {
            return Ok(false);
        };
        if let Some(d) = delivery {
            let owner: String = row.try_get("owner")?;
            insert_delivery(&mut tx, id, &owner, d, now_ms).await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    pub async fn cancel(
        &self,
        id: &str,
        owner: &str,
        now_ms: i64,
        delivery: Option<&NewDelivery>,
    ) -> Result<Cancel, StoreError> {
        let mut tx = self.db.pool.begin().await?;
        let done = sqlx::query(
            "UPDATE requests SET status = 'canceled', finished_at_ms = $1 WHERE id = $2 AND owner = $3 AND status = 'queued'",
        )
        .bind(now_ms)
        .bind(id)
        .bind(owner)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 1 {
            if let Some(d) = delivery {
                insert_delivery(&mut tx, id, owner, d, now_ms).await?;
            }
            tx.commit().await?;
            return Ok(Cancel::Canceled);
        }
        let status: Option<String> = sqlx::query_scalar(
            "SELECT status FROM requests WHERE id = $1 AND owner = $2 AND status <> 'sync'",
        )
        .bind(id)
        .bind(owner)
        .fetch_optional(&mut *tx)
        .await?;
        Ok(status.map_or(Cancel::NotFound, Cancel::TooLate))
    }

    pub async fn queue_depth(&self) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT COUNT(*) FROM requests WHERE status IN ('queued', 'running')",
        )
        .fetch_one(&self.db.pool)
        .await?)
    }

    /// Inserts a chat message's row at the next place of `session_id`'s order
    /// (`store::session_order`): `queued` for a worker, or — with `held_until_ms` — held
    /// by a synchronous request (status `sync`) until then unless renewed.
    pub async fn insert_message(
        &self,
        r: &RequestRecord,
        session_id: &str,
        held_until_ms: Option<i64>,
    ) -> Result<(), StoreError> {
        let status = if held_until_ms.is_some() {
            order::SYNC
        } else {
            "queued"
        };
        sqlx::query(order::PRUNE)
            .bind(session_id)
            .bind(r.created_at_ms)
            .execute(&self.db.pool)
            .await?;
        let mut attempt = 0;
        loop {
            let inserted = sqlx::query(order::INSERT)
                .bind(&r.id)
                .bind(&r.owner)
                .bind(&r.tier)
                .bind(&r.path)
                .bind(&r.content_type)
                .bind(&r.body_ref)
                .bind(&r.webhook_url)
                .bind(status)
                .bind(held_until_ms)
                .bind(r.created_at_ms)
                .bind(session_id)
                .execute(&self.db.pool)
                .await;
            attempt += 1;
            match inserted {
                Err(e) if order::is_taken(&e) && attempt < order::INSERT_ATTEMPTS => continue,
                other => return Ok(other.map(drop)?),
            }
        }
    }

    /// Extends a synchronous message's hold; `false` if its row is gone.
    pub async fn hold_message(&self, id: &str, held_until_ms: i64) -> Result<bool, StoreError> {
        let done = sqlx::query(order::HOLD)
            .bind(id)
            .bind(held_until_ms)
            .execute(&self.db.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Removes a synchronous message's row once it has run (or given up).
    pub async fn leave_message(&self, id: &str) -> Result<(), StoreError> {
        sqlx::query(order::LEAVE)
            .bind(id)
            .execute(&self.db.pool)
            .await?;
        Ok(())
    }

    /// Messages of `id`'s session accepted before it that have not finished.
    pub async fn earlier_messages(&self, id: &str, now_ms: i64) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar(order::EARLIER)
            .bind(id)
            .bind(now_ms)
            .fetch_one(&self.db.pool)
            .await?)
    }

    /// Messages of `session_id` that have not finished.
    pub async fn pending_messages(&self, session_id: &str, now_ms: i64) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar(order::PENDING)
            .bind(session_id)
            .bind(now_ms)
            .fetch_one(&self.db.pool)
            .await?)
    }

    pub async fn claim_delivery(
        &self,
        now_ms: i64,
        lease_ms: i64,
    ) -> Result<Option<Delivery>, StoreError> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "UPDATE webhook_deliveries SET attempts = attempts + 1, lease_until_ms = $1
             WHERE id = (SELECT id FROM webhook_deliveries WHERE status = 'pending' AND next_attempt_ms <= $2
             AND (lease_until_ms IS NULL OR lease_until_ms < $2) ORDER BY next_attempt_ms LIMIT 1{})
             RETURNING *",
            self.db.skip_locked()
        )))
        .bind(now_ms + lease_ms)
        .bind(now_ms)
        .fetch_optional(&self.db.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        Ok(Some(Delivery {
            id: row.try_get("id")?,
            request_id: row.try_get("request_id")?,
            owner: row.try_get("owner")?,
            url: row.try_get("url")?,
            payload: row.try_get("payload")?,
            attempts: row.try_get("attempts")?,
            created_at_ms: row.try_get("created_at_ms")?,
        }))
    }

    /// `Some(next_attempt_ms)` schedules another try; `None` settles it as `status`.
    pub async fn delivery_attempted(
        &self,
        id: &str,
        http_status: Option<u16>,
        status: &str,
        next_attempt_ms: Option<i64>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE webhook_deliveries SET status = $1, last_status = $2, next_attempt_ms = COALESCE($3, next_attempt_ms), lease_until_ms = NULL
             WHERE id = $4",
        )
        .bind(if next_attempt_ms.is_some() { "pending" } else { status })
        .bind(http_status.map(i64::from))
        .bind(next_attempt_ms)
        .bind(id)
        .execute(&self.db.pool)
        .await?;
        Ok(())
    }

    pub async fn pending_deliveries(&self) -> Result<i64, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT COUNT(*) FROM webhook_deliveries WHERE status = 'pending'")
                .fetch_one(&self.db.pool)
                .await?,
        )
    }

    /// The owner's webhook secret, created with `make` on first use.
    pub async fn webhook_secret(
        &self,
        owner: &str,
        make: &(dyn Fn() -> String + Send + Sync),
        now_ms: i64,
    ) -> Result<String, StoreError> {
        // Two instances making the first secret at once: one insert wins, both read it.
        sqlx::query("INSERT INTO webhook_secrets (owner, secret, created_at_ms) VALUES ($1, $2, $3) ON CONFLICT (owner) DO NOTHING")
            .bind(owner)
            .bind(make())
            .bind(now_ms)
            .execute(&self.db.pool)
            .await?;
        Ok(
            sqlx::query_scalar("SELECT secret FROM webhook_secrets WHERE owner = $1")
                .bind(owner)
                .fetch_one(&self.db.pool)
                .await?,
        )
    }
}

fn record(row: &AnyRow) -> Result<RequestRecord, sqlx::Error> {
    Ok(RequestRecord {
        id: row.try_get("id")?,
        owner: row.try_get("owner")?,
        tier: row.try_get("tier")?,
        path: row.try_get("path")?,
        content_type: row.try_get("content_type")?,
        body_ref: row.try_get("body_ref")?,
        webhook_url: row.try_get("webhook_url")?,
        status: row.try_get("status")?,
        attempts: row.try_get("attempts")?,
        result: row.try_get("result")?,
        error: row.try_get("error")?,
        created_at_ms: row.try_get("created_at_ms")?,
        finished_at_ms: row.try_get("finished_at_ms")?,
    })
}

/// A webhook delivery due now, written in the transaction that records the outcome it
/// reports (batches too).
pub(crate) async fn insert_delivery(
    tx: &mut sqlx::AnyConnection,
    request: &str,
    owner: &str,
    delivery: &NewDelivery,
    now_ms: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO webhook_deliveries (id, request_id, owner, url, payload, status, next_attempt_ms, created_at_ms)
         VALUES ($1, $2, $3, $4, $5, 'pending', $6, $6)",
    )
    .bind(&delivery.id)
    .bind(request)
    .bind(owner)
    .bind(&delivery.url)
    .bind(&delivery.payload)
    .bind(now_ms)
    .execute(tx)
    .await?;
    Ok(())
}

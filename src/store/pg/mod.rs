//! PostgreSQL, for several instances sharing one state (docs/scale-out.md). The same traits as
//! the embedded SQLite stores, the same tables (BIGINT unix-milliseconds, JSON as TEXT),
//! and migrations embedded in the binary, applied at start and by `imagegate migrate`.

mod idempotency;
mod images;
mod keys;
mod requests;
mod sessions;
mod usage;

use std::str::FromStr as _;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::Connection as _;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions};

pub use idempotency::PgIdempotencyStore;
pub use images::PgImageIndex;
pub use keys::PgKeyStore;
pub use requests::PgRequestStore;
pub use sessions::PgSessionStore;
pub use usage::PgUsageStore;

use crate::clock::{Clock as _, SystemClock};
use crate::store::{DatabaseHealth, StoreError};

/// (version, name, SQL). Append only: a released migration is never edited. The
/// versions match the SQLite ones, so both backends describe the same schema.
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "sessions",
        include_str!("../../../migrations/postgres/0001_sessions.sql"),
    ),
    (
        2,
        "images",
        include_str!("../../../migrations/postgres/0002_images.sql"),
    ),
    (
        3,
        "api_keys",
        include_str!("../../../migrations/postgres/0003_api_keys.sql"),
    ),
    (
        4,
        "usage",
        include_str!("../../../migrations/postgres/0004_usage.sql"),
    ),
    (
        5,
        "idempotency",
        include_str!("../../../migrations/postgres/0005_idempotency.sql"),
    ),
    (
        6,
        "requests",
        include_str!("../../../migrations/postgres/0006_requests.sql"),
    ),
    (
        7,
        "batches",
        include_str!("../../../migrations/postgres/0007_batches.sql"),
    ),
    (
        8,
        "key_settings",
        include_str!("../../../migrations/postgres/0008_key_settings.sql"),
    ),
    (
        9,
        "idempotency_claims",
        include_str!("../../../migrations/postgres/0009_idempotency_claims.sql"),
    ),
];

#[derive(Clone)]
pub struct PgDb {
    pub pool: PgPool,
}

impl PgDb {
    /// Connects (the URL may set `options=-c search_path=…` to use a schema) and applies
    /// the migrations that are missing. A request waits at most `acquire_timeout` for a
    /// connection, then is answered 503 `storage_unavailable`.
    pub async fn connect(url: &str, acquire_timeout: Duration) -> Result<Self, StoreError> {
        let options = PgConnectOptions::from_str(url)?;
        // One direct connection first: the pool's own failure at start is "pool timed
        // out", which hides whether the server refused, was unknown or rejected us.
        let first = tokio::time::timeout(
            acquire_timeout.max(Duration::from_secs(5)),
            PgConnection::connect_with(&options),
        )
        .await;
        let where_ = format!("{}:{}", options.get_host(), options.get_port());
        match first {
            Ok(Ok(connection)) => {
                let _ = connection.close().await;
            }
            Ok(Err(e)) => {
                return Err(StoreError::unavailable(format!(
                    "cannot connect to PostgreSQL at {where_}: {e}"
                )));
            }
            Err(_) => {
                return Err(StoreError::unavailable(format!(
                    "cannot connect to PostgreSQL at {where_}: no answer within {:?}",
                    acquire_timeout.max(Duration::from_secs(5))
                )));
            }
        }
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(acquire_timeout)
            .connect_with(options)
            .await?;
        let db = Self { pool };
        db.migrate().await?;
        Ok(db)
    }

    /// Whether imagegate's tables exist where `url` points (its `search_path` included),
    /// without creating anything.
    pub async fn has_schema(url: &str) -> Result<bool, StoreError> {
        let options = PgConnectOptions::from_str(url)?;
        let mut connection = PgConnection::connect_with(&options).await.map_err(|e| {
            StoreError::unavailable(format!(
                "cannot connect to PostgreSQL at {}:{}: {e}",
                options.get_host(),
                options.get_port()
            ))
        })?;
        let exists: bool =
            sqlx::query_scalar("SELECT to_regclass('schema_migrations') IS NOT NULL")
                .fetch_one(&mut connection)
                .await?;
        let _ = connection.close().await;
        Ok(exists)
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        // One transaction under an advisory lock (per schema): instances starting
        // together apply each migration once, and a failed one leaves nothing behind.
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "SELECT pg_advisory_xact_lock(hashtext('imagegate.migrate.' || current_schema()))",
        )
        .execute(&mut *tx)
        .await?;
        sqlx::raw_sql(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at_ms BIGINT NOT NULL)",
        )
        .execute(&mut *tx)
        .await?;
        for (version, name, sql) in MIGRATIONS {
            let applied: Option<i64> =
                sqlx::query_scalar("SELECT version FROM schema_migrations WHERE version = $1")
                    .bind(version)
                    .fetch_optional(&mut *tx)
                    .await?;
            if applied.is_some() {
                continue;
            }
            sqlx::raw_sql(*sql).execute(&mut *tx).await?;
            sqlx::query(
                "INSERT INTO schema_migrations (version, name, applied_at_ms) VALUES ($1, $2, $3)",
            )
            .bind(version)
            .bind(name)
            .bind(SystemClock.now_ms())
            .execute(&mut *tx)
            .await?;
            tracing::info!(version, name, "applied migration");
        }
        tx.commit().await?;
        Ok(())
    }
}

#[async_trait]
impl DatabaseHealth for PgDb {
    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn schema_version(&self) -> Result<i64, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT COALESCE(MAX(version), 0) FROM schema_migrations")
                .fetch_one(&self.pool)
                .await?,
        )
    }
}

//! The embedded SQL database (SQLite under the data directory) and its migrations,
//! embedded in the binary and applied in order at start.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

/// (version, name, SQL). Append only: a released migration is never edited.
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "sessions",
        include_str!("../../migrations/sqlite/0001_sessions.sql"),
    ),
    (
        2,
        "images",
        include_str!("../../migrations/sqlite/0002_images.sql"),
    ),
    (
        3,
        "api_keys",
        include_str!("../../migrations/sqlite/0003_api_keys.sql"),
    ),
    (
        4,
        "usage",
        include_str!("../../migrations/sqlite/0004_usage.sql"),
    ),
    (
        5,
        "idempotency",
        include_str!("../../migrations/sqlite/0005_idempotency.sql"),
    ),
    (
        6,
        "requests",
        include_str!("../../migrations/sqlite/0006_requests.sql"),
    ),
    (
        7,
        "batches",
        include_str!("../../migrations/sqlite/0007_batches.sql"),
    ),
    (
        8,
        "key_settings",
        include_str!("../../migrations/sqlite/0008_key_settings.sql"),
    ),
    (
        9,
        "idempotency_claims",
        include_str!("../../migrations/sqlite/0009_idempotency_claims.sql"),
    ),
];

#[derive(Clone)]
pub struct Db {
    pub pool: SqlitePool,
}

/// A storage failure, with what the caller can do about it.
#[derive(Debug, thiserror::Error)]
#[error("storage: {message}")]
pub struct StoreError {
    pub kind: StoreErrorKind,
    message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreErrorKind {
    /// The database could not be reached in time (refused, down, pool exhausted): the
    /// request may succeed later, so clients get 503 with `Retry-After`.
    Unavailable,
    /// The database lists an image whose bytes the blob store does not have: instances
    /// that share a database but not image storage (docs/operations.md).
    MissingBytes,
    Other,
}

/// Seconds a client is asked to wait when storage is unreachable: long enough for a
/// database failover or restart, short enough that a blip costs little.
const STORAGE_RETRY_AFTER_SECS: u64 = 5;

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        // Connection-level failures say nothing about the request; everything else
        // (constraint, decode, SQL) is a fault of ours.
        let kind = match &e {
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            // A connection cut mid-message reads as a protocol error.
            | sqlx::Error::Protocol(_)
            | sqlx::Error::WorkerCrashed => StoreErrorKind::Unavailable,
            // PostgreSQL's connection exceptions (class 08), shutdown and start-up
            // (57P01–57P03) and "too many connections" (53300).
            sqlx::Error::Database(db)
                if db.code().is_some_and(|c| {
                    c.starts_with("08") || c.starts_with("57P0") || c == "53300"
                }) =>
            {
                StoreErrorKind::Unavailable
            }
            _ => StoreErrorKind::Other,
        };
        Self {
            kind,
            message: e.to_string(),
        }
    }
}

impl StoreError {
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            kind: StoreErrorKind::Other,
            message: message.into(),
        }
    }

    pub fn unavailable(message: impl Into<String>) -> Self {
        Self {
            kind: StoreErrorKind::Unavailable,
            message: message.into(),
        }
    }

    pub fn missing_bytes(message: impl Into<String>) -> Self {
        Self {
            kind: StoreErrorKind::MissingBytes,
            message: message.into(),
        }
    }

    pub fn is_unavailable(&self) -> bool {
        self.kind == StoreErrorKind::Unavailable
    }
}

impl From<StoreError> for crate::error::ApiError {
    fn from(e: StoreError) -> Self {
        use crate::error::{ApiError, ErrorKind};
        match e.kind {
            StoreErrorKind::Unavailable => ApiError::new(
                ErrorKind::StorageUnavailable,
                "The service's storage is unreachable right now. Please retry shortly.",
            )
            .retry_after(STORAGE_RETRY_AFTER_SECS)
            .caused_by(e),
            StoreErrorKind::MissingBytes => ApiError::new(
                ErrorKind::ServerError,
                "The image is recorded but its bytes are missing from this server's image \
                 storage. The operator must give every instance the same image storage \
                 (object_store_url).",
            )
            .caused_by(e),
            StoreErrorKind::Other => ApiError::internal(e),
        }
    }
}

impl Db {
    pub async fn open(data_dir: &Path) -> Result<Self, StoreError> {
        let path = data_dir.join("imagegate.db");
        Self::open_with(SqliteConnectOptions::new().filename(path)).await
    }

    /// A database named by a `sqlite://FILE` URL (`database_url`).
    pub async fn open_url(url: &str) -> Result<Self, StoreError> {
        Self::open_with(SqliteConnectOptions::from_str(url)?).await
    }

    async fn open_with(options: SqliteConnectOptions) -> Result<Self, StoreError> {
        let options = options
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // WAL + NORMAL is durable across process crashes (not power loss of the host).
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(5));
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .connect_with(options)
            .await?;
        let db = Self { pool };
        db.migrate().await?;
        Ok(db)
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        sqlx::raw_sql(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at_ms INTEGER NOT NULL)",
        )
        .execute(&self.pool)
        .await?;
        for (version, name, sql) in MIGRATIONS {
            let mut tx = self.pool.begin().await?;
            let applied: Option<i64> =
                sqlx::query_scalar("SELECT version FROM schema_migrations WHERE version = ?")
                    .bind(version)
                    .fetch_optional(&mut *tx)
                    .await?;
            if applied.is_some() {
                continue;
            }
            sqlx::raw_sql(*sql).execute(&mut *tx).await?;
            sqlx::query(
                "INSERT INTO schema_migrations (version, name, applied_at_ms) VALUES (?, ?, ?)",
            )
            .bind(version)
            .bind(name)
            .bind(crate::clock::Clock::now_ms(&crate::clock::SystemClock))
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            tracing::info!(version, name, "applied migration");
        }
        Ok(())
    }
}

//! The SQL database behind every store: SQLite under the data directory (the default) or
//! PostgreSQL (several instances sharing one state, docs/scale-out.md), both reached through
//! sqlx's `Any` driver so each statement is written once (docs/architecture.md,
//! "Storage"). Statements use `$N` parameters, which both databases read; the few
//! places where the two differ ask [`Db::dialect`].

use std::path::Path;
use std::str::FromStr as _;
use std::time::Duration;

use sqlx::AnyPool;
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions as _, Connection as _};

use crate::store::StoreError;
use crate::store::migrate;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

#[derive(Clone)]
pub struct Db {
    pub pool: AnyPool,
    dialect: Dialect,
}

/// Set on every SQLite connection (`Any` connects by URL, which cannot carry them).
/// WAL + NORMAL is durable across process crashes (not power loss of the host).
const SQLITE_PRAGMAS: &str = "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
     PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 5000;";

impl Db {
    /// `imagegate.db` under the data directory, created if missing.
    pub async fn open(data_dir: &Path) -> Result<Self, StoreError> {
        let path = std::path::absolute(data_dir.join("imagegate.db"))
            .map_err(|e| StoreError::malformed("data directory", e))?;
        Self::open_sqlite(SqliteConnectOptions::new().filename(path)).await
    }

    /// A database named by a `sqlite://FILE` URL (`database_url`).
    pub async fn open_url(url: &str) -> Result<Self, StoreError> {
        Self::open_sqlite(SqliteConnectOptions::from_str(url)?).await
    }

    async fn open_sqlite(mut options: SqliteConnectOptions) -> Result<Self, StoreError> {
        sqlx::any::install_default_drivers();
        // `Any` connects by URL: sqlx decodes `%XX` in it but does not encode `%` into it,
        // so a `%` in the path is escaped here, or another file would be opened.
        let escaped = options.get_filename().to_string_lossy().replace('%', "%25");
        if escaped.contains("%25") {
            options = options.filename(escaped);
        }
        let url = options.create_if_missing(true).to_url_lossy();
        let pool = AnyPoolOptions::new()
            .max_connections(8)
            .after_connect(|conn, _| {
                Box::pin(async move {
                    sqlx::raw_sql(SQLITE_PRAGMAS).execute(&mut *conn).await?;
                    Ok(())
                })
            })
            .connect_with(AnyConnectOptions::from_url(&url)?)
            .await?;
        let db = Self {
            pool,
            dialect: Dialect::Sqlite,
        };
        migrate::run(&db).await?;
        Ok(db)
    }

    /// Connects (the URL may set `options=-c search_path=…` to use a schema) and applies
    /// the migrations that are missing. A request waits at most `acquire_timeout` for a
    /// connection, then is answered 503 `storage_unavailable`.
    pub async fn connect_postgres(
        url: &str,
        acquire_timeout: Duration,
    ) -> Result<Self, StoreError> {
        sqlx::any::install_default_drivers();
        // One direct connection first: the pool's own failure at start is "pool timed
        // out", which hides whether the server refused, was unknown or rejected us.
        let waited = acquire_timeout.max(Duration::from_secs(5));
        let connection = tokio::time::timeout(waited, pg_connect(url)).await;
        match connection {
            Ok(connection) => {
                let _ = connection?.close().await;
            }
            Err(_) => {
                return Err(StoreError::ConnectTimedOut {
                    database: "PostgreSQL",
                    at: pg_address(&PgConnectOptions::from_str(url)?),
                    waited,
                });
            }
        }
        let pool = AnyPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(acquire_timeout)
            .connect_with(AnyConnectOptions::from_str(url)?)
            .await?;
        let db = Self {
            pool,
            dialect: Dialect::Postgres,
        };
        migrate::run(&db).await?;
        Ok(db)
    }

    /// Whether imagegate's tables exist where `url` points (its `search_path` included),
    /// without creating anything.
    pub async fn has_postgres_schema(url: &str) -> Result<bool, StoreError> {
        let mut connection = pg_connect(url).await?;
        let exists = migrate::has_bookkeeping(&mut connection).await?;
        let _ = connection.close().await;
        Ok(exists)
    }

    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// What a claim's subquery adds so that workers of several instances each take a
    /// different row without waiting on each other. SQLite runs one writer at a time,
    /// so the plain subquery is already exclusive there.
    pub(crate) fn skip_locked(&self) -> &'static str {
        match self.dialect {
            Dialect::Sqlite => "",
            Dialect::Postgres => " FOR UPDATE SKIP LOCKED",
        }
    }
}

fn pg_address(options: &PgConnectOptions) -> String {
    format!("{}:{}", options.get_host(), options.get_port())
}

async fn pg_connect(url: &str) -> Result<PgConnection, StoreError> {
    let options = PgConnectOptions::from_str(url)?;
    PgConnection::connect_with(&options)
        .await
        .map_err(|source| StoreError::Connect {
            database: "PostgreSQL",
            at: pg_address(&options),
            source,
        })
}

/// Is the database answering, and which migrations has it got?
impl Db {
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// The highest applied migration.
    pub async fn schema_version(&self) -> Result<i64, StoreError> {
        migrate::version(self).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_database_is_the_file_in_the_data_directory_whatever_its_name() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("state %41 #1?");
        std::fs::create_dir(&dir).unwrap();
        let db = Db::open(&dir).await.unwrap();
        assert!(dir.join("imagegate.db").exists());
        assert!(!root.path().join("state A #1?").exists());
        assert!(db.schema_version().await.unwrap() > 0, "migrated");
    }
}

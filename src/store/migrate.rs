//! The schema's migrations, embedded in the binary and applied at start (and by
//! `imagegate migrate`) by sqlx's migrator, which keeps its bookkeeping in
//! `_sqlx_migrations`. Each migration is one file per backend, listed once below, so a
//! version cannot exist for one database and not the other.
//!
//! Databases made before this migrator kept their bookkeeping in `schema_migrations`
//! (version, name, applied_at_ms), written by a runner of our own. [`run`] adopts it once:
//! the versions it lists are recorded as applied in `_sqlx_migrations`, with the
//! checksums of today's files, and the old table is dropped (so an older binary started
//! on an upgraded database fails on its first migration instead of running on a schema
//! it does not know).

use std::borrow::Cow;
use std::sync::LazyLock;

use sqlx::migrate::{Migrate as _, Migration, MigrationType, Migrator};
use sqlx::postgres::PgConnection;

use crate::store::StoreError;
use crate::store::db::{Db, Dialect};

const TABLE: &str = "_sqlx_migrations";

/// (version, file stem, name). Append only: a released migration is never edited (its
/// checksum is checked at every start).
macro_rules! migrations {
    ($dir:literal: $(($version:literal, $file:literal, $name:literal)),* $(,)?) => {
        vec![$(Migration::new(
            $version,
            Cow::Borrowed($name),
            MigrationType::Simple,
            sqlx::AssertSqlSafe(include_str!(concat!("../../migrations/", $dir, "/", $file, ".sql")))
                .into_sql_str(),
            false,
        )),*]
    };
}

macro_rules! both {
    ($($m:tt)*) => {
        (migrations!("sqlite": $($m)*), migrations!("postgres": $($m)*))
    };
}

static MIGRATORS: LazyLock<(Migrator, Migrator)> = LazyLock::new(|| {
    use sqlx::SqlSafeStr as _;
    let (sqlite, postgres) = both!(
        (1, "0001_sessions", "sessions"),
        (2, "0002_images", "images"),
        (3, "0003_api_keys", "api_keys"),
        (4, "0004_usage", "usage"),
        (5, "0005_idempotency", "idempotency"),
        (6, "0006_requests", "requests"),
        (7, "0007_batches", "batches"),
        (8, "0008_key_settings", "key_settings"),
        (9, "0009_idempotency_claims", "idempotency_claims"),
        (10, "0010_request_sessions", "request_sessions"),
        (11, "0011_batch_reservations", "batch_reservations"),
    );
    (
        Migrator::with_migrations(sqlite),
        Migrator::with_migrations(postgres),
    )
});

fn migrator(dialect: Dialect) -> &'static Migrator {
    match dialect {
        Dialect::Sqlite => &MIGRATORS.0,
        Dialect::Postgres => &MIGRATORS.1,
    }
}

/// Brings the schema up to date: adopts the old bookkeeping if there is one, then
/// applies what is missing (on PostgreSQL under sqlx's advisory lock, so instances
/// starting together apply each migration once).
pub(crate) async fn run(db: &Db) -> Result<(), StoreError> {
    let migrator = migrator(db.dialect());
    adopt_old_bookkeeping(db, migrator).await?;
    migrator.run(&db.pool).await?;
    Ok(())
}

/// The highest migration applied.
pub(crate) async fn version(db: &Db) -> Result<i64, StoreError> {
    Ok(sqlx::query_scalar(
        "SELECT CAST(COALESCE(MAX(version), 0) AS BIGINT) FROM _sqlx_migrations WHERE success",
    )
    .fetch_one(&db.pool)
    .await?)
}

/// Whether a PostgreSQL schema holds imagegate's bookkeeping, old or new.
pub(crate) async fn has_bookkeeping(connection: &mut PgConnection) -> Result<bool, StoreError> {
    Ok(sqlx::query_scalar(
        "SELECT to_regclass('_sqlx_migrations') IS NOT NULL \
         OR to_regclass('schema_migrations') IS NOT NULL",
    )
    .fetch_one(connection)
    .await?)
}

async fn adopt_old_bookkeeping(db: &Db, migrator: &Migrator) -> Result<(), StoreError> {
    let mut tx = db.pool.begin().await?;
    let exists = match db.dialect() {
        Dialect::Sqlite => {
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'"
        }
        Dialect::Postgres => {
            // The old runner's lock: an old and a new binary starting together do not
            // both migrate.
            sqlx::query(
                "SELECT pg_advisory_xact_lock(hashtext('imagegate.migrate.' || current_schema()))",
            )
            .execute(&mut *tx)
            .await?;
            "SELECT COUNT(*) FROM (SELECT to_regclass('schema_migrations') AS t) AS r WHERE t IS NOT NULL"
        }
    };
    let found: i64 = sqlx::query_scalar(exists).fetch_one(&mut *tx).await?;
    if found == 0 {
        return Ok(());
    }
    tx.ensure_migrations_table(TABLE).await?;
    let applied: Vec<(i64, String)> =
        sqlx::query_as("SELECT version, name FROM schema_migrations ORDER BY version")
            .fetch_all(&mut *tx)
            .await?;
    for (version, name) in &applied {
        // A version this binary does not know keeps an empty checksum: the migrator
        // then refuses to run on a schema newer than itself.
        let checksum = migrator
            .iter()
            .find(|m| m.version == *version)
            .map_or_else(Vec::new, |m| m.checksum.to_vec());
        sqlx::query(
            "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
             VALUES ($1, $2, $3, $4, 0) ON CONFLICT (version) DO NOTHING",
        )
        .bind(version)
        .bind(name)
        .bind(true)
        .bind(checksum)
        .execute(&mut *tx)
        .await?;
    }
    sqlx::query("DROP TABLE schema_migrations")
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    tracing::info!(
        versions = applied.len(),
        "adopted the previous migration bookkeeping"
    );
    Ok(())
}

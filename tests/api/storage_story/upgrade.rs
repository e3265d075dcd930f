//! Databases made before sqlx's migrator kept the schema (imagegate's own runner, its
//! bookkeeping in `schema_migrations`) upgrade in place. The fixtures are dumps of
//! databases that the binary of that release made: `imagegate migrate` then
//! `imagegate keys create --tier paid --name fixture` (how they were made:
//! tests/api/storage_story/fixtures/README.md).

use sqlx::Connection as _;

use imagegate::store::Storage;

use super::{SCHEMA_VERSION, config_in};
use crate::support::services::PgSchema;

const SQLITE_V9: &str = include_str!("fixtures/v9.sqlite.sql");
const POSTGRES_V9: &str = include_str!("fixtures/v9.postgres.sql");
/// The schema name the PostgreSQL dump was taken from; replaced by the test's own.
const DUMPED_SCHEMA: &str = "imagegate_v9";

/// What the old binary wrote is there, the schema is current, and every store works on it.
async fn upgraded(storage: &Storage) {
    assert_eq!(
        storage.database.schema_version().await.unwrap(),
        SCHEMA_VERSION
    );
    let keys = storage.keys.list().await.unwrap();
    assert_eq!(keys.len(), 1, "the key the old binary issued: {keys:?}");
    let key = &keys[0];
    assert_eq!(
        (key.tier.as_str(), key.name.as_deref()),
        ("paid", Some("fixture"))
    );
    assert_eq!(
        storage
            .keys
            .find_active(&key.digest)
            .await
            .unwrap()
            .as_ref(),
        Some(key)
    );
    super::sessions_are_owned_expire_and_never_interleave(storage).await;
    super::images_are_served_only_to_their_owner(storage).await;
    super::usage_sums_by_day_and_model(storage).await;
    super::idempotent_results_replay_until_they_expire(storage).await;
    super::queue::the_queue_leases_fences_cancels_and_delivers(storage).await;
}

/// (tables named `schema_migrations`, successful rows in `_sqlx_migrations`)
const BOOKKEEPING_SQLITE: &str = "SELECT \
     (SELECT COUNT(*) FROM sqlite_master WHERE name = 'schema_migrations'), \
     (SELECT COUNT(*) FROM _sqlx_migrations WHERE success)";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sqlite_database_of_the_old_runner_upgrades_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("imagegate.db");
    let options = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(&file)
        .create_if_missing(true);
    let mut old = sqlx::SqliteConnection::connect_with(&options)
        .await
        .unwrap();
    sqlx::raw_sql(SQLITE_V9).execute(&mut old).await.unwrap();
    old.close().await.unwrap();

    let storage = Storage::open(&config_in(&dir)).await.unwrap();
    upgraded(&storage).await;
    // Opening again (a restart) adopts nothing twice and applies nothing.
    let again = Storage::open(&config_in(&dir)).await.unwrap();
    assert_eq!(
        again.database.schema_version().await.unwrap(),
        SCHEMA_VERSION
    );

    let mut check = sqlx::SqliteConnection::connect_with(&options)
        .await
        .unwrap();
    let (old_tables, applied): (i64, i64) = sqlx::query_as(BOOKKEEPING_SQLITE)
        .fetch_one(&mut check)
        .await
        .unwrap();
    assert_eq!((old_tables, applied), (0, migrations_on_disk()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL"]
async fn a_postgres_database_of_the_old_runner_upgrades_in_place() {
    let schema = PgSchema::create().await;
    let dump = POSTGRES_V9.replace(DUMPED_SCHEMA, &schema.name);
    let mut old = sqlx::PgConnection::connect(&schema.url).await.unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(dump))
        .execute(&mut old)
        .await
        .unwrap();
    old.close().await.unwrap();

    let dir = tempfile::tempdir().unwrap();
    let mut config = config_in(&dir);
    config.database_url = Some(schema.database_url());
    let storage = Storage::open(&config).await.unwrap();
    upgraded(&storage).await;
    let again = Storage::open(&config).await.unwrap();
    assert_eq!(
        again.database.schema_version().await.unwrap(),
        SCHEMA_VERSION
    );

    let mut check = sqlx::PgConnection::connect(&schema.url).await.unwrap();
    let (old_table, applied): (bool, i64) = sqlx::query_as(
        "SELECT to_regclass('schema_migrations') IS NOT NULL, \
         (SELECT COUNT(*) FROM _sqlx_migrations WHERE success)",
    )
    .fetch_one(&mut check)
    .await
    .unwrap();
    assert_eq!((old_table, applied), (false, migrations_on_disk()));
}

/// A database whose bookkeeping lists a migration this binary does not have was made by
/// a newer release: it is refused, not run on.
#[tokio::test]
async fn a_database_newer_than_the_binary_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let options = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(dir.path().join("imagegate.db"))
        .create_if_missing(true);
    let mut old = sqlx::SqliteConnection::connect_with(&options)
        .await
        .unwrap();
    sqlx::raw_sql(SQLITE_V9).execute(&mut old).await.unwrap();
    sqlx::query(
        "INSERT INTO schema_migrations (version, name, applied_at_ms) \
         VALUES (999, 'from_the_future', 0)",
    )
    .execute(&mut old)
    .await
    .unwrap();
    old.close().await.unwrap();

    let Err(refused) = Storage::open(&config_in(&dir)).await else {
        panic!("a schema newer than the binary was accepted");
    };
    let message = imagegate::error::error_chain(&refused);
    assert!(message.contains("999"), "{message}");
    assert!(
        Storage::open(&config_in(&dir)).await.is_err(),
        "still refused on the next start"
    );
}

/// How many migrations there are (numbers may be skipped: one is reserved for work not yet
/// landed, so the latest version is not the count).
fn migrations_on_disk() -> i64 {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations/sqlite");
    std::fs::read_dir(dir).unwrap().count() as i64
}

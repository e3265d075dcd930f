//! The operator's commands against a shared database: `imagegate migrate` applies the
//! schema and says its version; `imagegate keys create` issues into the same database.

use imagegate::config::Config;
use imagegate::store::Storage;
use tokio::process::Command;

use crate::support::services::PgSchema;

async fn imagegate(args: &[&str], dir: &std::path::Path) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_imagegate"))
        .args(args)
        .arg("--data-dir")
        .arg(dir)
        .env_remove("IMAGEGATE_DATABASE_URL")
        .current_dir(dir)
        .output()
        .await
        .expect("the binary runs");
    assert!(
        output.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[tokio::test]
async fn migrate_and_keys_create_work_on_a_postgres_database_url() {
    let Some(schema) = PgSchema::create().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let url = schema.url.as_str();

    let migrated = imagegate(&["migrate", "--database-url", url], dir.path()).await;
    assert!(
        migrated.contains("database schema at version 7"),
        "{migrated}"
    );
    assert!(migrated.contains("PostgreSQL"), "{migrated}");
    let again = imagegate(&["migrate", "--database-url", url], dir.path()).await;
    assert!(
        again.contains("version 7"),
        "migrating twice is harmless: {again}"
    );

    let key = imagegate(
        &["keys", "create", "--tier", "free", "--database-url", url],
        dir.path(),
    )
    .await;
    let config = Config {
        data_dir: dir.path().to_owned(),
        database_url: Some(schema.database_url()),
        ..Config::default()
    };
    let keys = Storage::open(&config)
        .await
        .unwrap()
        .keys
        .list()
        .await
        .unwrap();
    assert_eq!(keys.len(), 1);
    assert!(
        key.trim().starts_with(&keys[0].shown),
        "the key went to PostgreSQL"
    );
    assert!(
        !dir.path().join("imagegate.db").exists(),
        "no SQLite file was made beside it"
    );
}

//! The operator's commands against a shared database: `imagegate migrate` applies the
//! schema and says its version; `imagegate keys create` issues into the same database.

use imagegate::config::Config;
use imagegate::store::Storage;
use tokio::process::Command;

use crate::support::services::PgSchema;

async fn imagegate(args: &[&str], dir: &std::path::Path) -> String {
    let output = run(args, dir).await;
    assert!(
        output.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

async fn run(args: &[&str], dir: &std::path::Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_imagegate"))
        .args(args)
        .arg("--data-dir")
        .arg(dir)
        .env_remove("IMAGEGATE_DATABASE_URL")
        .current_dir(dir)
        .output()
        .await
        .expect("the binary runs")
}

#[ignore = "needs PostgreSQL"]
#[tokio::test]
async fn migrate_and_keys_create_work_on_a_postgres_database_url() {
    let schema = PgSchema::create().await;
    let dir = tempfile::tempdir().unwrap();
    let url = schema.url.as_str();

    let migrated = imagegate(&["migrate", "--database-url", url], dir.path()).await;
    assert!(
        migrated.contains("database schema at version 11"),
        "{migrated}"
    );
    assert!(migrated.contains("PostgreSQL"), "{migrated}");
    let again = imagegate(&["migrate", "--database-url", url], dir.path()).await;
    assert!(
        again.contains("version 11"),
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

#[tokio::test]
async fn keys_are_created_with_settings_changed_rotated_and_reported_offline() {
    let dir = tempfile::tempdir().unwrap();
    let key = imagegate(
        &[
            "keys",
            "create",
            "--tier",
            "paid",
            "--name",
            "web",
            "--scopes",
            "generate,edit",
            "--daily-budget",
            "2.5",
            "--meta",
            "team=web",
            "--meta",
            "owner=ana",
        ],
        dir.path(),
    )
    .await;
    assert!(
        key.trim().starts_with("igk_"),
        "only the key on stdout: {key}"
    );
    let listed = imagegate(&["keys", "list"], dir.path()).await;
    let key_id = listed
        .lines()
        .find(|l| l.contains("web"))
        .and_then(|l| l.split_whitespace().next())
        .expect("the key is listed")
        .to_owned();
    let shown: serde_json::Value =
        serde_json::from_str(&imagegate(&["keys", "get", &key_id], dir.path()).await).unwrap();
    assert_eq!(shown["scopes"], serde_json::json!(["edit", "generate"]));
    assert_eq!(shown["daily_budget_usd"], 2.5);
    assert_eq!(shown["metadata"]["team"], "web");

    let updated: serde_json::Value = serde_json::from_str(
        &imagegate(
            &[
                "keys",
                "update",
                &key_id,
                "--daily-budget",
                "none",
                "--max-concurrent",
                "2",
            ],
            dir.path(),
        )
        .await,
    )
    .unwrap();
    assert!(updated["daily_budget_usd"].is_null(), "{updated}");
    assert_eq!(updated["max_concurrent"], 2);

    let successor = imagegate(
        &["keys", "rotate", &key_id, "--grace-secs", "60"],
        dir.path(),
    )
    .await;
    assert!(successor.trim().starts_with("igk_") && successor.trim() != key.trim());
    let old: serde_json::Value =
        serde_json::from_str(&imagegate(&["keys", "get", &key_id], dir.path()).await).unwrap();
    assert!(
        old["rotated_to"].is_string() && old["grace_until"].is_string(),
        "{old}"
    );
    let usage: serde_json::Value =
        serde_json::from_str(&imagegate(&["keys", "usage"], dir.path()).await).unwrap();
    assert!(usage["rows"].is_array());

    for bad in [
        &["keys", "create", "--scopes", "everything"][..],
        &["keys", "create", "--daily-budget=-1"],
        &["keys", "create", "--expires-at", "soon"],
        &["keys", "update", "key_missing", "--name", "x"],
    ] {
        let output = run(bad, dir.path()).await;
        assert!(!output.status.success(), "{bad:?} was refused");
        assert!(!String::from_utf8_lossy(&output.stderr).is_empty());
    }
}

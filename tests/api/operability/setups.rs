//! Setups that used to fail silently: a shared database with instance-local image bytes,
//! an image whose bytes are missing, and management commands on a mistyped directory.

use imagegate::app::App;
use imagegate::config::{Config, ProviderChoice, ServiceUrl};
use tokio::process::Command;

use crate::support::services::PgSchema;
use crate::support::{TestApp, json_of};

fn local_config(dir: &std::path::Path) -> Config {
    Config {
        host: "127.0.0.1".into(),
        port: 0,
        provider: ProviderChoice::Offline,
        data_dir: dir.to_owned(),
        ..Config::default()
    }
}

#[tokio::test]
async fn postgres_with_image_bytes_in_the_data_directory_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = local_config(dir.path());
    // Refused before any connection is made: the address need not answer.
    config.database_url = Some(ServiceUrl::new("postgres://db.invalid:5432/imagegate"));

    let err = App::build(config).await.err().expect("start is refused");

    let message = format!("{err:#}");
    assert!(message.contains("object_store_url"), "{message}");
    assert!(message.contains("single_instance"), "{message}");
    assert!(message.contains("IMAGEGATE_SINGLE_INSTANCE"), "{message}");
}

#[ignore = "needs PostgreSQL"]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_with_local_bytes_starts_when_the_operator_declares_one_instance() {
    let schema = PgSchema::create().await;
    let app = TestApp::spawn(|c| {
        c.provider = ProviderChoice::Offline;
        c.database_url = Some(schema.database_url());
        c.single_instance = true;
    })
    .await;
    let (status, _, body) = json_of(app.get("/health").await).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn an_image_whose_bytes_are_missing_is_an_explained_error_not_a_404() {
    let app = TestApp::offline().await;
    let (status, _, body) = json_of(
        app.post_json(
            "/generate-image",
            serde_json::json!({"prompt": "a lighthouse", "model": "gemini-3.1-flash-image", "image_size": "512"}),
        )
        .await,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let id = body["image_ids"][0].as_str().unwrap().to_owned();
    let dir = app.data_dir.as_ref().unwrap().path();
    std::fs::remove_file(dir.join("images").join(&id)).unwrap();

    let (status, _, listing) = json_of(app.get("/images").await).await;
    assert_eq!(status, 200);
    assert_eq!(listing["images"][0]["image_id"], id.as_str());
    let response = app.get(&format!("/images/{id}")).await;
    let (status, _, body) = json_of(response).await;

    assert_eq!(status, 500, "not a 404 contradicting the listing: {body}");
    assert_eq!(body["error"], "server_error");
    let message = body["message"].as_str().unwrap();
    assert!(message.contains("bytes are missing"), "{message}");
    assert!(message.contains("object_store_url"), "{message}");
}

#[tokio::test]
async fn keys_list_on_a_mistyped_data_directory_fails_and_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mistyped = dir.path().join("dta");

    for command in [&["keys", "list"][..], &["keys", "revoke", "key_x"][..]] {
        let output = Command::new(env!("CARGO_BIN_EXE_imagegate"))
            .args(command)
            .arg("--data-dir")
            .arg(&mistyped)
            .env_remove("IMAGEGATE_DATABASE_URL")
            .current_dir(dir.path())
            .output()
            .await
            .unwrap();

        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{command:?} fails");
        assert!(stderr.contains("no imagegate database at"), "{stderr}");
        assert!(
            stderr.contains("--data-dir"),
            "says what to check: {stderr}"
        );
        assert!(!mistyped.exists(), "{command:?} created {mistyped:?}");
    }
}

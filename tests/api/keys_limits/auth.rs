//! Who may call: 401 for missing, malformed, unknown and revoked keys; issued keys and
//! the server's own Google key are accepted; keys never come back in a response.

use serde_json::json;

use super::{gemini_at, header};
use crate::support::fake_gemini::{FAKE_API_KEY, FakeGemini};
use crate::support::{TestApp, client_with_key, expect_error, json_of};

#[tokio::test]
async fn a_request_without_a_key_is_refused_with_401_and_a_bearer_challenge() {
    let app = TestApp::offline().await;
    let anonymous = client_with_key(None);
    for (method, path) in [
        ("POST", "/generate-image"),
        ("GET", "/usage"),
        ("GET", "/images/img_01JF0000000000000000000000"),
        ("POST", "/chat/create"),
        ("GET", "/no-such-endpoint"),
    ] {
        let request = match method {
            "POST" => anonymous
                .post(app.url(path))
                .json(&json!({"prompt": "a fox"})),
            _ => anonymous.get(app.url(path)),
        };
        let response = request.send().await.unwrap();
        assert!(
            header(&response, "www-authenticate").starts_with("Bearer"),
            "{path}"
        );
        let body = expect_error(response, 401, "unauthorized").await;
        assert!(
            body["message"].as_str().unwrap().contains("Bearer"),
            "{body}"
        );
    }
}

#[tokio::test]
async fn malformed_authorization_headers_are_refused_with_401() {
    let app = TestApp::offline().await;
    let anonymous = client_with_key(None);
    for value in [
        "Basic dXNlcjpwYXNz",
        "Bearer",
        "Bearer    ",
        "Token igk_abc",
        "Bearer a b",
    ] {
        let response = anonymous
            .get(app.url("/usage"))
            .header("authorization", value)
            .send()
            .await
            .unwrap();
        expect_error(response, 401, "unauthorized").await;
    }
}

#[tokio::test]
async fn an_unknown_key_is_refused_and_never_echoed_back() {
    let app = TestApp::offline().await;
    let forged = format!("{}x", app.key);
    for key in [
        forged.as_str(),
        "igk_not-a-real-key-0123456789",
        "AIzaSyD-not-the-servers-key",
    ] {
        let response = client_with_key(Some(key))
            .post(app.url("/generate-image"))
            .json(&json!({"prompt": "a fox"}))
            .send()
            .await
            .unwrap();
        let headers = format!("{:?}", response.headers());
        let body = expect_error(response, 401, "unauthorized").await;
        assert!(!body.to_string().contains(key), "the key is not in {body}");
        assert!(!headers.contains(key), "the key is not in {headers}");
    }
}

#[tokio::test]
async fn health_answers_without_a_key() {
    let app = TestApp::offline().await;
    let response = app.get_anonymously("/health").await;
    assert_eq!(response.status(), 200);
    assert!(response.headers().get("x-ratelimit-limit").is_none());
}

#[tokio::test]
async fn the_servers_google_key_is_accepted_as_a_paid_key() {
    let fake = FakeGemini::start().await;
    let app = gemini_at(&imagegate::clock::ManualClock::starting_now(), &fake).await;
    let google = client_with_key(Some(FAKE_API_KEY));
    let response = app
        .post_json_as(
            &google,
            "/generate-image",
            json!({"prompt": "a fox", "response_modalities": ["IMAGE"]}),
        )
        .await;
    assert_eq!(
        header(&response, "x-ratelimit-limit"),
        "600",
        "the paid tier"
    );
    let (status, _, body) = json_of(response).await;
    assert_eq!(status, 200, "{body}");
    let usage = app.get_as(&google, "/usage").await;
    let (_, _, usage) = json_of(usage).await;
    assert_eq!(usage["key_id"], "key_google");
    assert_eq!(usage["totals"]["requests"], 1);
}

#[tokio::test]
async fn what_one_key_creates_another_key_cannot_fetch() {
    let app = TestApp::offline().await;
    let (_, _, body) = json_of(
        app.post_json("/generate-image", json!({"prompt": "a fox"}))
            .await,
    )
    .await;
    let path = format!("/images/{}", body["image_ids"][0].as_str().unwrap());
    assert_eq!(app.get(&path).await.status(), 200);
    let other = client_with_key(Some(&app.create_key("paid").await));
    let response = app.get_as(&other, &path).await;
    expect_error(response, 404, "not_found").await;
}

/// Runs the real binary's `keys` subcommand against the server's data directory.
/// Runs `imagegate keys …` on the app's data directory while the app keeps serving: the
/// wait is asynchronous, so the server's tasks on this test's runtime are not frozen
/// halfway through a write the command would then wait for.
async fn keys_cli(app: &TestApp, args: &[&str]) -> std::process::Output {
    let dir = app.data_dir.as_ref().unwrap().path();
    tokio::process::Command::new(env!("CARGO_BIN_EXE_imagegate"))
        .arg("keys")
        .args(args)
        .arg("--data-dir")
        .arg(dir)
        // Away from the repository's `.env`, and without a Google key in the environment.
        .current_dir(dir)
        .env_remove("GOOGLE_API_KEY")
        .env_remove("GEMINI_API_KEY")
        .env_remove("IMAGEGATE_CONFIG")
        .output()
        .await
        .expect("the binary runs")
}

#[tokio::test]
async fn the_keys_cli_prints_a_key_once_lists_it_without_the_secret_and_revokes_it() {
    let app = TestApp::offline().await;
    let created = keys_cli(&app, &["create", "--tier", "free", "--name", "laptop"]).await;
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    let key = String::from_utf8(created.stdout).unwrap().trim().to_owned();
    assert!(
        key.starts_with("igk_"),
        "stdout is exactly the key: {key:?}"
    );
    let stderr = String::from_utf8_lossy(&created.stderr);
    let key_id = stderr
        .split_whitespace()
        .find(|w| w.starts_with("key_"))
        .expect("stderr names the key id")
        .to_owned();

    let client = client_with_key(Some(&key));
    let response = app.get_as(&client, "/usage").await;
    assert_eq!(
        header(&response, "x-ratelimit-limit"),
        "15",
        "the free tier"
    );
    let (status, _, usage) = json_of(response).await;
    assert_eq!(
        (status, usage["key_id"].as_str()),
        (200, Some(key_id.as_str()))
    );

    let listed = keys_cli(&app, &["list"]).await;
    let listing = String::from_utf8(listed.stdout).unwrap();
    assert!(
        listing.contains(&key_id) && listing.contains("laptop"),
        "{listing}"
    );
    assert!(!listing.contains(&key), "the secret is never listed");

    let revoked = keys_cli(&app, &["revoke", &key_id]).await;
    assert!(
        revoked.status.success(),
        "{}",
        String::from_utf8_lossy(&revoked.stderr)
    );
    let response = app.get_as(&client, "/usage").await;
    expect_error(response, 401, "unauthorized").await;
    assert!(
        !keys_cli(&app, &["revoke", &key_id]).await.status.success(),
        "already revoked"
    );
    assert!(
        !keys_cli(&app, &["create", "--tier", "gold"])
            .await
            .status
            .success(),
        "unknown tier"
    );
}

#[tokio::test]
async fn keys_never_reach_the_log_even_at_debug_level() {
    use tokio::io::{AsyncBufReadExt as _, BufReader};

    let data = tempfile::tempdir().unwrap();
    let bin = env!("CARGO_BIN_EXE_imagegate");
    let created = std::process::Command::new(bin)
        .args(["keys", "create", "--tier", "paid", "--data-dir"])
        .arg(data.path())
        .current_dir(data.path())
        .env_remove("GOOGLE_API_KEY")
        .output()
        .unwrap();
    let key = String::from_utf8(created.stdout).unwrap().trim().to_owned();
    let mut server = tokio::process::Command::new(bin)
        .args([
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--provider",
            "offline",
        ])
        .args(["--log-format", "json", "--data-dir"])
        .arg(data.path())
        .current_dir(data.path())
        .env_remove("GOOGLE_API_KEY")
        .env("RUST_LOG", "debug")
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(server.stdout.take().unwrap()).lines();
    let mut log = Vec::new();
    let address = loop {
        let line = lines
            .next_line()
            .await
            .unwrap()
            .expect("the server is running");
        log.push(line.clone());
        let entry: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
        if entry["fields"]["message"] == "imagegate starting" {
            break entry["fields"]["address"].as_str().unwrap().to_owned();
        }
    };
    let url = format!("http://{address}/generate-image");
    let forged = format!("{key}0");
    for (authorization, idempotency) in [
        (format!("Bearer {key}"), "first"),
        (format!("Bearer {key}"), "first"),
        (format!("Bearer {forged}"), "second"),
        (format!("Basic {key}"), "third"),
    ] {
        reqwest::Client::new()
            .post(&url)
            .header("authorization", authorization)
            .header("idempotency-key", idempotency)
            .json(&json!({"prompt": "a fox"}))
            .send()
            .await
            .unwrap();
    }
    let pid = server.id().unwrap().to_string();
    std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    while let Ok(Some(line)) = lines.next_line().await {
        log.push(line);
    }
    let log = log.join("\n");
    assert!(log.contains("request finished"), "{log}");
    assert!(!log.contains(&key[4..]), "the key is not in the log");
    assert!(!log.contains(&forged[4..]));
}

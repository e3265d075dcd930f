//! Batches through the real binary: a server killed with SIGKILL while its batch runs
//! upstream loses nothing, and the results are downloaded once; the `batch` commands
//! submit, wait with progress, report and download.

use std::time::Duration;

use serde_json::{Value, json};

use crate::cli::imagegate_ok;
use crate::support::fake_gemini::FakeGemini;
use crate::support::process::{client, get_json, start_gemini};
use crate::support::{TestApp, poll};

async fn wait_for(base: &str, id: &str, check: impl Fn(&Value) -> bool) -> Value {
    let path = format!("/batches/{id}");
    let last = poll(|| get_json(base, &path), &check).await;
    assert!(check(&last), "batch {id} never got there: {last}");
    last
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_server_loses_no_batch_and_downloads_its_results_once() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let fake = FakeGemini::start().await;
    // The batch ends only when the test says so, after the kill.
    fake.batch_polls_to_finish(0);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("imagegate.toml"),
        "[batches]\nworkers = 1\nlease_secs = 1.0\npoll_initial_ms = 50\npoll_max_ms = 100\n\
         inline_limit_bytes = 1\n",
    )
    .unwrap();
    let (mut first, base) = start_gemini(dir.path(), &fake.base_url()).await;
    let items: Vec<Value> = (0..5)
        .map(|i| json!({"prompt": format!("shot {i}")}))
        .collect();
    let accepted: Value = client()
        .post(format!("{base}/batches"))
        .json(&json!({"items": items}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = accepted["batch_id"].as_str().unwrap().to_owned();
    wait_for(&base, &id, |b| b["state"] == "running").await;
    // Polled at least once more, so the kill lands among polls.
    tokio::time::sleep(Duration::from_millis(200)).await;
    first.start_kill().unwrap();
    first.wait().await.unwrap();
    fake.end_batches().await;

    let (mut second, base) = start_gemini(dir.path(), &fake.base_url()).await;
    let done = wait_for(&base, &id, |b| !b["finished_at"].is_null()).await;
    assert_eq!(done["state"], "succeeded", "{done}");
    assert_eq!(done["counts"]["succeeded"], 5, "{done}");
    assert_eq!(
        fake.batch_counts(),
        (1, 1),
        "one upstream batch, its results downloaded once"
    );
    let items = get_json(&base, &format!("/batches/{id}")).await["items"].clone();
    second.start_kill().unwrap();
    second.wait().await.unwrap();

    let (_third, base) = start_gemini(dir.path(), &fake.base_url()).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        get_json(&base, &format!("/batches/{id}")).await["items"],
        items
    );
    assert_eq!(
        fake.batch_counts(),
        (1, 1),
        "an ended batch is never collected again"
    );
    for item in items.as_array().unwrap() {
        let image = item["image_ids"][0].as_str().unwrap();
        let response = client()
            .get(format!("{base}/images/{image}"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn batch_commands_submit_wait_report_and_download() {
    let app = TestApp::spawn(|c| {
        c.provider = imagegate::config::ProviderChoice::Offline;
        c.batches.poll_initial_ms = 20;
        c.batches.poll_max_ms = 40;
        c.batches.offline_delay_ms = 200;
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("prompts.txt"),
        "# the spring catalogue\na teapot\n\na cup\na saucer\n",
    )
    .unwrap();
    let submitted = imagegate_ok(
        &app,
        &[
            "batch",
            "submit",
            "prompts.txt",
            "--wait",
            "--poll-secs",
            "0.1",
        ],
        dir.path(),
    );
    let stdout = String::from_utf8_lossy(&submitted.stdout).into_owned();
    let id = stdout.lines().next().unwrap().trim().to_owned();
    assert!(id.starts_with("batch_"), "{stdout}");
    let last = stdout.lines().last().unwrap();
    assert!(last.contains("succeeded total=3 succeeded=3"), "{stdout}");

    let status = imagegate_ok(&app, &["batch", "status", &id], dir.path());
    assert!(String::from_utf8_lossy(&status.stdout).contains("succeeded=3"));
    imagegate_ok(
        &app,
        &["batch", "results", &id, "--download", "out"],
        dir.path(),
    );
    let mut saved: Vec<String> = std::fs::read_dir(dir.path().join("out"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    saved.sort();
    assert_eq!(saved.len(), 3, "{saved:?}");
    assert!(saved[0].starts_with("0000-0."), "{saved:?}");
    image::open(dir.path().join("out").join(&saved[2])).expect("a real image");

    std::fs::write(
        dir.path().join("items.jsonl"),
        "{\"prompt\": \"a bowl\", \"aspect_ratio\": \"16:9\"}\n",
    )
    .unwrap();
    let submitted = imagegate_ok(
        &app,
        &["batch", "submit", "items.jsonl", "--display-name", "bowls"],
        dir.path(),
    );
    let id = String::from_utf8_lossy(&submitted.stdout).trim().to_owned();
    let (_, _, body) = crate::support::json_of(app.get(&format!("/batches/{id}")).await).await;
    assert_eq!(body["display_name"], "bowls");
    assert_eq!(body["counts"]["total"], 1);
}

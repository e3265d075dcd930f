//! Nothing is lost: the real binary is killed with SIGKILL while requests are queued and
//! running and a webhook is waiting for its retry; after a restart on the same data
//! directory every request reaches a final state and every webhook is delivered.

use std::time::Duration;

use serde_json::{Value, json};
use tokio::process::Child;

use crate::async_jobs::Receiver;
use crate::support::fake_gemini::{FAKE_API_KEY, FakeGemini};
use crate::support::process;

async fn start(dir: &std::path::Path, fake: &str) -> (Child, String) {
    let (child, base, _) = process::start(&mut process::serve_gemini(dir, fake)).await;
    (child, base)
}

async fn status(client: &reqwest::Client, base: &str, id: &str) -> Value {
    client
        .get(format!("{base}/requests/{id}"))
        .bearer_auth(FAKE_API_KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_server_loses_no_request_and_no_webhook() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let fake = FakeGemini::start().await;
    let (receiver, hook) = Receiver::start(&[500]).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("imagegate.toml"),
        "[jobs]\nworkers = 2\nlease_secs = 1.0\npoll_ms = 50\n[jobs.webhooks]\nallow_private = true\ninitial_backoff_ms = 1500\nmax_backoff_ms = 2000\n",
    )
    .unwrap();
    let (mut first, base) = start(dir.path(), &fake.base_url()).await;
    let client = reqwest::Client::new();
    let submit = |prompt: String| {
        let client = client.clone();
        let base = base.clone();
        let hook = hook.clone();
        async move {
            let r = client
                .post(format!("{base}/generate-image"))
                .bearer_auth(FAKE_API_KEY)
                .json(&json!({"prompt": prompt, "async": true, "webhook_url": hook}))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 202);
            r.json::<Value>().await.unwrap()["request_id"]
                .as_str()
                .unwrap()
                .to_owned()
        }
    };
    // One quick request whose first webhook attempt fails (500): its retry is pending.
    let quick = submit("a quick one".into()).await;
    for _ in 0..200 {
        if !receiver.calls().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(
        receiver.calls().len(),
        1,
        "the first webhook attempt was made and refused"
    );
    // Two held upstream (running on both workers) and two more waiting in the queue.
    let mut slow = Vec::new();
    for i in 0..4 {
        slow.push(submit(format!("slow {i} [[fake:slow_4000]]")).await);
    }
    for _ in 0..200 {
        if fake.calls_for("[[fake:slow_4000]]").len() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let states: Vec<String> =
        futures_util::future::join_all(slow.iter().map(|id| status(&client, &base, id)))
            .await
            .iter()
            .map(|s| s["status"].as_str().unwrap().to_owned())
            .collect();
    assert!(
        states.iter().any(|s| s == "running") && states.iter().any(|s| s == "queued"),
        "{states:?}"
    );

    first.start_kill().unwrap();
    first.wait().await.unwrap();

    let (_second, base) = start(dir.path(), &fake.base_url()).await;
    let mut all = slow.clone();
    all.push(quick.clone());
    for id in &all {
        let mut last = Value::Null;
        for _ in 0..1200 {
            last = status(&client, &base, id).await;
            if last["status"] == "succeeded" || last["status"] == "failed" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        assert_eq!(last["status"], "succeeded", "{id}: {}", last["error"]);
    }
    let delivered = |id: &str| {
        receiver.calls().iter().any(|(_, body)| {
            let v: Value = serde_json::from_str(body).unwrap_or_default();
            v["request_id"] == id && v["status"] == "succeeded"
        })
    };
    for _ in 0..1200 {
        if all.iter().all(|id| delivered(id)) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    for id in &all {
        assert!(
            delivered(id),
            "webhook for {id} delivered after the restart"
        );
    }
}

//! Nothing is lost: the real binary is killed with SIGKILL while requests are queued and
//! running and a webhook is waiting for its retry; after a restart on the same data
//! directory every request reaches a final state and every webhook is delivered.

use serde_json::{Value, json};

use crate::async_jobs::Receiver;
use crate::support::eventually;
use crate::support::fake_gemini::FakeGemini;
use crate::support::process::{finished_on, request_status, start_gemini, submit_async};

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
    let (mut first, base) = start_gemini(dir.path(), &fake.base_url()).await;
    let submit = |prompt: String| {
        submit_async(
            &base,
            json!({"prompt": prompt, "async": true, "webhook_url": hook}),
        )
    };
    // One quick request whose first webhook attempt fails (500): its retry is pending.
    let quick = submit("a quick one".into()).await;
    eventually("a first webhook attempt", || async {
        !receiver.calls().is_empty()
    })
    .await;
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
    fake.wait_for_calls("[[fake:slow_4000]]", 2).await;
    let states: Vec<String> =
        futures_util::future::join_all(slow.iter().map(|id| request_status(&base, id)))
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

    let (_second, base) = start_gemini(dir.path(), &fake.base_url()).await;
    let mut all = slow.clone();
    all.push(quick.clone());
    for id in &all {
        let last = finished_on(&base, id).await;
        assert_eq!(last["status"], "succeeded", "{id}: {}", last["error"]);
    }
    let delivered = |id: &str| {
        receiver.calls().iter().any(|(_, body)| {
            let v: Value = serde_json::from_str(body).unwrap_or_default();
            v["request_id"] == id && v["status"] == "succeeded"
        })
    };
    let _ = crate::support::poll(|| async { all.iter().all(|id| delivered(id)) }, |all| *all).await;
    for id in &all {
        assert!(
            delivered(id),
            "webhook for {id} delivered after the restart"
        );
    }
}

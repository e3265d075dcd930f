//! The real binary under process-level conditions. A graceful stop (SIGTERM): it claims
//! no queued async request while it drains, finishes what it can within the drain
//! deadline, and hands back the rest. A proxy in the environment: webhooks ignore it.

use std::time::Duration;

use serde_json::json;
use tokio::process::Child;

use crate::support::fake_gemini::{FAKE_API_KEY, FakeGemini};
use crate::support::process::{self, finished_on, request_status, start_gemini, submit_async};

async fn start(dir: &std::path::Path, fake: &str, workers: usize) -> (Child, String) {
    std::fs::write(
        dir.join("imagegate.toml"),
        format!(
            "[jobs]\nworkers = {workers}\npoll_ms = 50\n[server]\ndrain_secs = 10.0\n[gemini]\ndeadline_secs = 120.0\n"
        ),
    )
    .unwrap();
    start_gemini(dir, fake).await
}

async fn submit(base: &str, prompt: &str) -> String {
    submit_async(base, json!({"prompt": prompt, "async": true})).await
}

async fn status(base: &str, id: &str) -> String {
    let body = request_status(base, id).await;
    body["status"].as_str().unwrap_or_default().to_owned()
}

fn terminate(server: &Child) {
    let pid = server.id().unwrap().to_string();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(killed.success());
}

#[tokio::test(flavor = "multi_thread")]
async fn an_idempotent_run_whose_client_left_is_stored_before_the_process_exits() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let fake = FakeGemini::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (mut server, base) = start(dir.path(), &fake.base_url(), 0).await;
    let client = process::client();
    let send = |base: String| {
        client
            .post(format!("{base}/generate-image"))
            .header("Idempotency-Key", "shutdown-1")
            .json(&json!({"prompt": "paid for [[fake:slow_2000]]"}))
            .send()
    };
    // The client gives up while the upstream call runs, then the server is stopped.
    let left = tokio::spawn(send(base.clone()));
    fake.wait_for_calls("paid for", 1).await;
    left.abort();
    terminate(&server);
    let exit = tokio::time::timeout(Duration::from_secs(60), server.wait())
        .await
        .expect("it stops")
        .unwrap();
    assert!(exit.success(), "exit status {exit}");

    // The retry after the restart gets the stored answer instead of paying again.
    let (_again, base) = start(dir.path(), &fake.base_url(), 0).await;
    let replayed = send(base).await.unwrap();
    assert_eq!(replayed.status(), 200);
    assert_eq!(fake.calls_for("paid for").len(), 1, "one upstream call");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_draining_server_claims_no_queued_work_and_hands_back_what_it_cannot_finish() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let fake = FakeGemini::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (mut server, base) = start(dir.path(), &fake.base_url(), 2).await;

    // Both workers busy: one finishes within the drain deadline, one cannot (only its
    // first attempt is slow).
    let finishes = submit(&base, "short [[fake:slow_3000]]").await;
    let handed_back = submit(&base, "long [[fake:slow_60000:1]]").await;
    fake.wait_for_calls("short [[fake:slow_3000]]", 1).await;
    fake.wait_for_calls("long [[fake:slow_60000:1]]", 1).await;
    let mut queued = Vec::new();
    for i in 0..8 {
        queued.push(submit(&base, &format!("queued {i}")).await);
    }
    // A synchronous request in flight keeps the drain going after the first worker is
    // free again: that worker must not take up the queued requests meanwhile.
    let sync = {
        let url = format!("{base}/generate-image");
        tokio::spawn(async move {
            process::client()
                .post(url)
                .json(&json!({"prompt": "in flight [[fake:slow_6000]]"}))
                .send()
                .await
                .map(|r| r.status().as_u16())
        })
    };
    fake.wait_for_calls("in flight [[fake:slow_6000]]", 1).await;

    terminate(&server);
    let exit = tokio::time::timeout(Duration::from_secs(60), server.wait())
        .await
        .expect("it stops after the drain deadline")
        .unwrap();
    assert!(exit.success(), "exit status {exit}");
    assert_eq!(
        sync.await.unwrap().expect("answered"),
        200,
        "the in-flight request finished"
    );
    for i in 0..8 {
        assert!(
            fake.calls_for(&format!("queued {i}")).is_empty(),
            "queued {i} was not run by the draining server"
        );
    }

    // Back with no workers, to look at what the stopped server left.
    let (mut look, base) = start(dir.path(), &fake.base_url(), 0).await;
    assert_eq!(status(&base, &finishes).await, "succeeded");
    assert_eq!(
        status(&base, &handed_back).await,
        "queued",
        "the unfinished request was handed back"
    );
    for id in &queued {
        assert_eq!(status(&base, id).await, "queued");
    }
    look.start_kill().unwrap();
    look.wait().await.unwrap();

    // And a server with workers runs every one of them.
    let (_again, base) = start(dir.path(), &fake.base_url(), 2).await;
    let mut all = queued.clone();
    all.push(handed_back.clone());
    for id in &all {
        assert_eq!(finished_on(&base, id).await["status"], "succeeded", "{id}");
    }
    assert_eq!(fake.calls_for("long [[fake:slow_60000:1]]").len(), 2);
}

/// The delivery client goes straight to the checked address even when the environment
/// names a proxy: a proxy would resolve the name itself and undo the check.
#[tokio::test(flavor = "multi_thread")]
async fn webhooks_ignore_a_proxy_named_in_the_environment() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let _ = rustls::crypto::ring::default_provider().install_default();
    let (receiver, hook) = crate::async_jobs::Receiver::start(&[]).await;
    // A "proxy" that only counts who connects to it.
    let proxy = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let proxy_url = format!("http://{}", proxy.local_addr().unwrap());
    let proxied = std::sync::Arc::new(AtomicUsize::new(0));
    let counter = proxied.clone();
    tokio::spawn(async move {
        while let Ok((_conn, _)) = proxy.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
        }
    });
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("imagegate.toml"),
        "[jobs]\nworkers = 1\npoll_ms = 50\n[jobs.webhooks]\nallow_private = true\n",
    )
    .unwrap();
    let mut command = process::serve(dir.path());
    command
        .args(["--provider", "offline"])
        .env("GOOGLE_API_KEY", FAKE_API_KEY)
        .env_remove("NO_PROXY")
        .env_remove("no_proxy")
        .env("HTTP_PROXY", &proxy_url)
        .env("http_proxy", &proxy_url)
        .env("ALL_PROXY", &proxy_url);
    let (_server, base, _) = process::start(&mut command).await;
    submit_async(
        &base,
        json!({"prompt": "a fox", "async": true, "webhook_url": hook}),
    )
    .await;
    crate::support::eventually("a delivery", || async { !receiver.calls().is_empty() }).await;
    assert_eq!(receiver.calls().len(), 1, "delivered directly");
    assert_eq!(proxied.load(Ordering::SeqCst), 0, "not through the proxy");
}

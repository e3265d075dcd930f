//! The async row of `bench/run.sh`: submit → webhook received latency. Keeps
//! `--concurrency` jobs outstanding (each worker submits with `"async": true` and a
//! `webhook_url` pointing at a receiver in this process, waits for that job's webhook,
//! then submits the next), and prints one JSON line.
//!
//! While the server refuses `async` (400, `details.reason = "not_supported"`), it prints
//! `{"status":"not_measurable",...}` and exits 0: that row is reported as not measurable,
//! never as a number.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::routing::post;
use clap::Parser;
use serde_json::{Value, json};
use tokio::sync::oneshot;

#[derive(Parser)]
struct Args {
    #[arg(long, default_value = "http://127.0.0.1:18000")]
    gateway: String,
    #[arg(long)]
    key: String,
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    #[arg(long, default_value_t = 320)]
    requests: usize,
    #[arg(long, default_value_t = 18090)]
    webhook_port: u16,
}

/// A job's webhook, whichever comes first: the 202 (worker waiting) or the webhook.
enum Slot {
    Waiting(oneshot::Sender<Instant>),
    Arrived(Instant),
}

type Slots = Arc<Mutex<HashMap<String, Slot>>>;

fn lock(slots: &Slots) -> std::sync::MutexGuard<'_, HashMap<String, Slot>> {
    slots
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

async fn webhook(State(slots): State<Slots>, body: axum::body::Bytes) -> StatusCode {
    let arrived = Instant::now();
    let Some(id) = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v["request_id"].as_str().map(str::to_owned))
    else {
        return StatusCode::BAD_REQUEST;
    };
    let mut slots = lock(&slots);
    match slots.remove(&id) {
        Some(Slot::Waiting(tx)) => {
            let _ = tx.send(arrived);
        }
        _ => {
            slots.insert(id, Slot::Arrived(arrived));
        }
    }
    StatusCode::NO_CONTENT
}

enum Submitted {
    Latency(Duration),
    Refused(String),
    Failed(String),
}

async fn one_job(args: &Args, http: &reqwest::Client, slots: &Slots, hook: &str) -> Submitted {
    let started = Instant::now();
    let sent = http
        .post(format!("{}/generate-image", args.gateway))
        .bearer_auth(&args.key)
        .json(&json!({
            "prompt": "A watercolor lighthouse on a cliff at dusk",
            "async": true,
            "webhook_url": hook,
        }))
        .send()
        .await;
    let response = match sent {
        Ok(r) => r,
        Err(e) => return Submitted::Failed(e.to_string()),
    };
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    if status.as_u16() == 400 && body["details"]["reason"] == "not_supported" {
        return Submitted::Refused(body["message"].as_str().unwrap_or("").to_owned());
    }
    let Some(id) = body["request_id"]
        .as_str()
        .filter(|_| status.as_u16() == 202)
    else {
        return Submitted::Failed(format!("HTTP {status}: {body}"));
    };
    let rx = {
        let mut slots = lock(slots);
        match slots.remove(id) {
            Some(Slot::Arrived(at)) => return Submitted::Latency(at - started),
            _ => {
                let (tx, rx) = oneshot::channel();
                slots.insert(id.to_owned(), Slot::Waiting(tx));
                rx
            }
        }
    };
    match tokio::time::timeout(Duration::from_secs(60), rx).await {
        Ok(Ok(at)) => Submitted::Latency(at - started),
        _ => Submitted::Failed(format!("no webhook for {id} within 60 s")),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Arc::new(Args::parse());
    let slots: Slots = Arc::default();
    let listener =
        tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], args.webhook_port)))
            .await?;
    let hook = format!("http://{}/hook", listener.local_addr()?);
    // A webhook carries the whole result, images included: past axum's 2 MB default.
    let receiver = Router::new()
        .route("/hook", post(webhook))
        .layer(DefaultBodyLimit::max(256 << 20))
        .with_state(slots.clone());
    tokio::spawn(async move { axum::serve(listener, receiver).await });

    // reqwest is built without a default TLS provider (as in imagegate); plain HTTP here.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = reqwest::Client::new();
    // One probe first: a server without async answers it with 400 straight away, and a
    // broken path is reported once rather than waited out for every job.
    match one_job(&args, &http, &slots, &hook).await {
        Submitted::Latency(_) => {}
        Submitted::Refused(message) => {
            println!(
                "{}",
                json!({"status": "not_measurable", "reason": "async not implemented", "server_said": message})
            );
            return Ok(());
        }
        Submitted::Failed(message) => {
            println!("{}", json!({"status": "failed", "reason": message}));
            return Ok(());
        }
    }
    // The whole run is bounded too: workers start no job after this.
    let give_up = Instant::now() + Duration::from_secs(300);
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut workers = Vec::new();
    for _ in 0..args.concurrency {
        let (args, http, slots, hook, next, give_up) = (
            args.clone(),
            http.clone(),
            slots.clone(),
            hook.clone(),
            next.clone(),
            give_up,
        );
        workers.push(tokio::spawn(async move {
            let mut results = Vec::new();
            while next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < args.requests
                && Instant::now() < give_up
            {
                results.push(one_job(&args, &http, &slots, &hook).await);
            }
            results
        }));
    }
    let (mut ms, mut failures) = (Vec::new(), Vec::new());
    for worker in workers {
        for result in worker.await? {
            match result {
                Submitted::Latency(d) => ms.push(d.as_secs_f64() * 1000.0),
                Submitted::Refused(m) | Submitted::Failed(m) => failures.push(m),
            }
        }
    }
    ms.sort_by(f64::total_cmp);
    let pct = |p: f64| {
        ms.get(((ms.len() as f64 * p).ceil() as usize).saturating_sub(1))
            .copied()
    };
    println!(
        "{}",
        json!({
            "status": "measured",
            "concurrency": args.concurrency,
            "completed": ms.len(),
            "failed": failures.len(),
            "first_failure": failures.first(),
            "p50_ms": pct(0.50),
            "p99_ms": pct(0.99),
            "max_ms": ms.last(),
        })
    );
    Ok(())
}

//! The real binary, started as an operator starts it: `imagegate serve` on 127.0.0.1 and
//! port 0 with JSON logs, its data directory and configuration file given, and the
//! address read from its own "imagegate starting" line. Every test that runs the server
//! as a process starts it here.

use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::{Child, Command};

use super::fake_gemini::FAKE_API_KEY;

/// How long a server may take to print its start-up line (migrations included).
const START_DEADLINE: Duration = Duration::from_secs(60);

/// `imagegate serve` with `dir/data` as its data directory and `dir/imagegate.toml` as
/// its configuration when that file exists; stdout piped for the start-up line. Callers add
/// the provider and anything else they need.
pub fn serve(dir: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_imagegate"));
    command
        .args([
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--log-format",
            "json",
        ])
        .arg("--data-dir")
        .arg(dir.join("data"))
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        // Not the checkout: a developer's own `.env` there must not configure the test.
        .current_dir(dir)
        .kill_on_drop(true);
    let config = dir.join("imagegate.toml");
    if config.exists() {
        command.arg("--config").arg(config);
    }
    command
}

/// [`serve`] on the Gemini provider in front of the fake upstream at `fake`.
pub fn serve_gemini(dir: &Path, fake: &str) -> Command {
    let mut command = serve(dir);
    command
        .args(["--provider", "gemini", "--gemini-base-url", fake])
        .env("GOOGLE_API_KEY", FAKE_API_KEY);
    command
}

/// [`start`] on [`serve_gemini`]: the child and its base URL.
pub async fn start_gemini(dir: &Path, fake: &str) -> (Child, String) {
    let (child, base, _) = start(&mut serve_gemini(dir, fake)).await;
    (child, base)
}

/// A client of a served binary: the fake's API key is a key there too.
pub fn client() -> reqwest::Client {
    super::client_with_key(Some(FAKE_API_KEY))
}

/// `GET {base}{path}` as [`client`], as JSON.
pub async fn get_json(base: &str, path: &str) -> Value {
    let response = client().get(format!("{base}{path}")).send().await;
    response.unwrap().json().await.unwrap()
}

/// Queues `body` with `POST {base}/generate-image` (202) as [`client`]; its request id.
pub async fn submit_async(base: &str, body: Value) -> String {
    let response = client()
        .post(format!("{base}/generate-image"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    let accepted: Value = response.json().await.unwrap();
    accepted["request_id"].as_str().unwrap().to_owned()
}

/// The status of async request `id` on `base` (`GET /requests/{id}`).
pub async fn request_status(base: &str, id: &str) -> Value {
    get_json(base, &format!("/requests/{id}")).await
}

/// Polls [`request_status`] until it is [`finished`](super::finished) (at most 30 s); its
/// last status.
pub async fn finished_on(base: &str, id: &str) -> Value {
    super::poll(|| request_status(base, id), super::finished).await
}

/// Spawns `command` and waits for its start-up line: the child, its base URL and the
/// line's fields.
pub async fn start(command: &mut Command) -> (Child, String, Value) {
    let (child, base, fields, _) = start_logged(command).await;
    (child, base, fields)
}

/// As [`start`], and the server's log as it goes on.
pub async fn start_logged(command: &mut Command) -> (Child, String, Value, Log) {
    let mut child = command.spawn().expect("the binary starts");
    let (fields, log) = started(&mut child).await;
    let base = format!("http://{}", fields["address"].as_str().expect("an address"));
    (child, base, fields, log)
}

/// Every line a served binary has written to stdout, kept from its first; the pipe is
/// drained in the background so the server never blocks on it.
pub struct Log {
    lines: Arc<Mutex<Vec<String>>>,
    drained: tokio::task::JoinHandle<()>,
}

impl Log {
    /// The whole log once the server has closed its stdout (it has exited).
    pub async fn until_closed(self) -> Vec<String> {
        tokio::time::timeout(START_DEADLINE, self.drained)
            .await
            .expect("the server closed its log in time")
            .expect("the log reader ran");
        std::mem::take(&mut *self.lines.lock().unwrap())
    }
}

/// Waits (at most [`START_DEADLINE`] in all) for a served binary's JSON start-up line and
/// returns its fields, and the log (which holds that line and every one before it).
pub async fn started(child: &mut Child) -> (Value, Log) {
    let mut lines = BufReader::new(child.stdout.take().expect("stdout is piped")).lines();
    let kept = Arc::new(Mutex::new(Vec::new()));
    let wait = async {
        loop {
            let line = lines
                .next_line()
                .await
                .expect("the log is readable")
                .expect("the server is still running");
            let entry: Value = serde_json::from_str(&line).unwrap_or_default();
            kept.lock().unwrap().push(line);
            if entry["fields"]["message"] == "imagegate starting" {
                break entry["fields"].clone();
            }
        }
    };
    let fields = tokio::time::timeout(START_DEADLINE, wait)
        .await
        .expect("the server printed its start-up line in time");
    let sink = kept.clone();
    let drained = tokio::spawn(async move {
        while let Ok(Some(line)) = lines.next_line().await {
            sink.lock().unwrap().push(line);
        }
    });
    (
        fields,
        Log {
            lines: kept,
            drained,
        },
    )
}

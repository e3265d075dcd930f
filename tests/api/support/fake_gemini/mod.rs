//! A local fake of Google's Gemini `generateContent` REST API for the gateway's integration
//! tests, following docs/upstream.md. It is strict where Google is strict
//! (unknown fields, model ids, sizes, keys) so that the gateway's requests are checked for real,
//! and scriptable through `[[fake:NAME]]` prompt markers (see `scenarios.rs`) so that tests can
//! provoke every failure mode Google is known to produce. Its catalogue moves as Google's does:
//! tests retire models (gone from the list, 404 on every call), overload them (503 on every
//! call), release new ones, and shed flex calls.

mod batch;
mod errors;
mod handler;
mod images;
mod jpeg;
mod models;
mod response;
mod scenarios;
mod validate;
mod wire;

use std::collections::{HashMap, HashSet};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use axum::Router;
use axum::body::Body;
use axum::extract::DefaultBodyLimit;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::Value;

pub use models::{ACTIVE_MODELS, RETIRED_MODELS};

pub const FAKE_API_KEY: &str = "fake-google-key";

#[derive(Clone, Debug, Default)]
pub struct FakeOptions {
    /// `RetryInfo.retryDelay` on scripted 429s; "0.2s" when empty.
    pub retry_delay: String,
    /// 400 when a model-role image part in the history lacks a signature this fake issued.
    pub strict_signatures: bool,
    /// `false` (default) rejects unknown fields as Google does; `true` ignores them.
    pub lenient_unknown_fields: bool,
    /// The most models one list page holds (Google's is 1000), so tests see paging.
    pub max_page_size: Option<usize>,
}

#[derive(Clone, Debug)]
pub struct RecordedRequest {
    pub method: String,
    /// e.g. "/v1beta/models/gemini-3.1-flash-image:generateContent"
    pub path: String,
    /// The query string as sent (`pageSize=…&pageToken=…`, `alt=sse`, …).
    pub query: String,
    /// Bare id, without "models/"; empty for `GET /{ver}/models`.
    pub model: String,
    /// From the `x-goog-api-key` header, else from `?key=`.
    pub api_key: Option<String>,
    /// The JSON body as received; `Null` when empty, a `String` when it was not JSON.
    pub body: Value,
    /// Every `inlineData` part of every content, in order: (mimeType, decoded bytes).
    pub images: Vec<(String, Vec<u8>)>,
    pub at: Instant,
    /// The HTTP status the fake answered with.
    pub status: u16,
}

impl RecordedRequest {
    fn is_list(&self) -> bool {
        self.method == "GET" && self.model.is_empty()
    }

    /// Text of the last user turn, which is where scenario markers are read from.
    pub fn last_user_text(&self) -> String {
        scenarios::last_user_text(&self.body)
    }
}

pub struct FakeGemini {
    addr: SocketAddr,
    shared: Arc<Shared>,
    server: tokio::task::JoinHandle<()>,
}

impl FakeGemini {
    pub async fn start() -> FakeGemini {
        FakeGemini::start_with(FakeOptions::default()).await
    }

    pub async fn start_with(mut opts: FakeOptions) -> FakeGemini {
        if opts.retry_delay.is_empty() {
            opts.retry_delay = "0.2s".to_string();
        }
        let shared = Arc::new(Shared {
            opts,
            catalogue: Mutex::default(),
            requests: Mutex::default(),
            attempts: Mutex::default(),
            signatures: Mutex::default(),
            in_flight: Default::default(),
            max_in_flight: Default::default(),
            batches: Mutex::default(),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the fake Gemini listener");
        let addr = listener.local_addr().expect("listener address");
        // The size check must be ours (Google answers 400, not 413), so axum's limit is off.
        let app = Router::new()
            .fallback(handler::handle)
            .layer(DefaultBodyLimit::disable())
            .with_state(Arc::clone(&shared));
        let server = tokio::spawn(async move {
            // Serving only ends with an I/O error on the listener; the test then fails on
            // connection errors, which is more telling than a panic in a detached task.
            let _ = axum::serve(listener, app).await;
        });
        FakeGemini {
            addr,
            shared,
            server,
        }
    }

    /// "http://127.0.0.1:PORT", without a trailing slash.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// All model calls so far (`POST …/models/{model}:{method}` and `GET …/models/{model}`),
    /// including rejected ones, in arrival order. The gateway's model-list refreshes, which
    /// run at its start and on their own clock, are in [`FakeGemini::list_requests`].
    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.shared.requests)
            .iter()
            .filter(|r| !r.is_list())
            .cloned()
            .collect()
    }

    /// The `GET /{ver}/models` calls so far, pages included.
    pub fn list_requests(&self) -> Vec<RecordedRequest> {
        lock(&self.shared.requests)
            .iter()
            .filter(|r| r.is_list())
            .cloned()
            .collect()
    }

    /// Shuts `model` down: it leaves the list and every call for it answers 404.
    pub fn retire(&self, model: &str) {
        lock(&self.shared.catalogue)
            .retired
            .insert(model.to_string());
    }

    /// Every generation call for `model` answers 503 "The model is overloaded".
    pub fn overload(&self, model: &str) {
        lock(&self.shared.catalogue)
            .overloaded
            .insert(model.to_string());
    }

    /// Google released `model` after the gateway was built; it is served like `like`.
    pub fn release(&self, model: &str, like: &str) {
        let spec = models::spec(like).expect("an existing model to serve the new one like");
        lock(&self.shared.catalogue)
            .released
            .push((model.to_string(), spec));
    }

    /// While on, calls with `serviceTier: "flex"` are shed with a 429.
    pub fn shed_flex(&self, on: bool) {
        lock(&self.shared.catalogue).shed_flex = on;
    }

    /// Calls being answered right now (a slow scenario holds its call open).
    pub fn in_flight(&self) -> usize {
        self.shared
            .in_flight
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    /// The most calls this fake ever answered at once.
    pub fn max_in_flight(&self) -> usize {
        self.shared
            .max_in_flight
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Requests whose last user text contains `marker_substring`.
    pub fn calls_for(&self, marker_substring: &str) -> Vec<RecordedRequest> {
        self.requests()
            .into_iter()
            .filter(|r| r.last_user_text().contains(marker_substring))
            .collect()
    }

    /// Waits (at most 30 s) until `count` calls carry `marker_substring`.
    pub async fn wait_for_calls(&self, marker_substring: &str, count: usize) {
        let calls = crate::support::poll(
            || std::future::ready(self.calls_for(marker_substring).len()),
            |calls| *calls >= count,
        )
        .await;
        assert!(
            calls >= count,
            "{calls} of {count} upstream calls for {marker_substring}"
        );
    }
}

impl Drop for FakeGemini {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// Which models exist and how they behave, as the tests set it.
#[derive(Default)]
struct Catalogue {
    retired: HashSet<String>,
    overloaded: HashSet<String>,
    released: Vec<(String, &'static models::ModelSpec)>,
    shed_flex: bool,
}

impl Catalogue {
    /// The spec `model` is served with, unless it does not exist (or no longer does).
    fn lookup(&self, model: &str) -> Option<&'static models::ModelSpec> {
        if self.retired.contains(model) {
            return None;
        }
        models::spec(model).or_else(|| {
            self.released
                .iter()
                .find(|(id, _)| id == model)
                .map(|(_, spec)| *spec)
        })
    }

    /// Every listed model, as `(id, spec)`, in a stable order.
    fn listed(&self) -> Vec<(String, &'static models::ModelSpec)> {
        models::specs()
            .map(|spec| (spec.id.to_string(), spec))
            .chain(self.released.iter().cloned())
            .filter(|(id, _)| !self.retired.contains(id))
            .collect()
    }
}

/// State shared by all connections of one fake.
struct Shared {
    opts: FakeOptions,
    catalogue: Mutex<Catalogue>,
    requests: Mutex<Vec<RecordedRequest>>,
    /// Attempts seen per distinct last-user text, for `[[fake:NAME:N]]`.
    attempts: Mutex<HashMap<String, u32>>,
    /// Decoded bytes of every thought signature issued, for strict mode.
    signatures: Mutex<HashSet<Vec<u8>>>,
    /// Calls being answered right now, and the most there ever were at once.
    in_flight: std::sync::atomic::AtomicUsize,
    max_in_flight: std::sync::atomic::AtomicUsize,
    /// Batches and files (`batch.rs`).
    batches: Mutex<batch::BatchState>,
}

impl Shared {
    /// 1-based attempt number of this request text.
    fn next_attempt(&self, text: &str) -> u32 {
        let mut attempts = lock(&self.attempts);
        let count = attempts.entry(text.to_string()).or_insert(0);
        *count += 1;
        *count
    }

    /// A fresh opaque signature, remembered as bytes so any re-encoding of it is accepted.
    fn issue_signature(&self) -> String {
        use base64::Engine as _;
        use rand::Rng as _;
        let mut rng = rand::rng();
        let mut bytes = vec![0u8; rng.random_range(48..=96)];
        rng.fill(&mut bytes[..]);
        // Real signatures are protobuf messages starting with field 2 (0x12, "Eq…" in base64).
        bytes[0] = 0x12;
        let encoded = base64::engine::general_purpose::STANDARD.encode(&bytes);
        lock(&self.signatures).insert(bytes);
        encoded
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Critical sections cannot panic half-way through an update, so poisoning is harmless.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// An answer before it is turned into HTTP.
#[derive(Debug)]
enum Reply {
    /// Any JSON answer, success or error envelope.
    Json { status: u16, body: Value },
    /// A non-JSON front-end failure.
    Html { status: u16, body: &'static str },
    /// `:streamGenerateContent?alt=sse` events.
    Sse { events: Vec<Value> },
}

impl Reply {
    fn status(&self) -> u16 {
        match self {
            Reply::Json { status, .. } | Reply::Html { status, .. } => *status,
            Reply::Sse { .. } => 200,
        }
    }
}

impl IntoResponse for Reply {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status()).unwrap_or(StatusCode::OK);
        match self {
            Reply::Json { body, .. } => {
                // Google's front end pretty-prints with two spaces.
                let text = serde_json::to_vec_pretty(&body).unwrap_or_default();
                let content_type = "application/json; charset=UTF-8";
                (status, [(header::CONTENT_TYPE, content_type)], text).into_response()
            }
            Reply::Html { body, .. } => (
                status,
                [(header::CONTENT_TYPE, "text/html; charset=UTF-8")],
                body,
            )
                .into_response(),
            Reply::Sse { events } => {
                let frames = events.into_iter().map(|event| {
                    Ok::<_, Infallible>(Bytes::from(format!("data: {event}\r\n\r\n")))
                });
                let body = Body::from_stream(futures_util::stream::iter(frames));
                (status, [(header::CONTENT_TYPE, "text/event-stream")], body).into_response()
            }
        }
    }
}

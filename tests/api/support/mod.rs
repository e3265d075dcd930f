//! Test support: the real server on a random port, with a temp data directory, and a
//! local fake of Google's API.

pub mod fake_gemini;
pub mod process;
pub mod services;
pub mod tools;

use std::sync::Arc;

use base64::Engine as _;
use imagegate::app::App;
use imagegate::clock::{Clock, SystemClock};
use imagegate::config::{Config, ProviderChoice, Secret};
use imagegate::store::Storage;
use serde_json::Value;
use tempfile::TempDir;
use tokio::sync::oneshot;

pub struct TestApp {
    pub base: String,
    /// Sends `Authorization: Bearer <key>` with every request.
    pub client: reqwest::Client,
    /// A paid key issued through the real key store when the server started.
    pub key: String,
    pub data_dir: Option<TempDir>,
    pub clock: Arc<dyn Clock>,
    /// The configuration the server started with (its database issues further keys).
    pub config: Config,
    /// The async queue, for tests that run its worker step by step (`jobs.workers = 0`).
    pub jobs: Arc<imagegate::jobs::Jobs>,
    /// The server's model registry, refreshed directly by tests (`models.refresh()`).
    pub models: Arc<imagegate::models::ModelTable>,
    /// The batch worker, for tests that run it step by step (`batches.workers = 0`).
    pub batches: Arc<imagegate::batches::Batches>,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

impl TestApp {
    pub async fn spawn(configure: impl FnOnce(&mut Config)) -> Self {
        let data_dir = tempfile::tempdir().expect("temp dir");
        Self::spawn_full(data_dir, Arc::new(SystemClock), configure).await
    }

    /// Stops this server (draining in-flight requests) and starts a new one on the
    /// same data directory and clock, as a restart of the process would.
    pub async fn restart(mut self, configure: impl FnOnce(&mut Config)) -> Self {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(server) = self.server.take() {
            server
                .await
                .expect("server task")
                .expect("server stopped cleanly");
        }
        let data_dir = self.data_dir.take().expect("data dir");
        let mut restarted = Self::spawn_full(data_dir, self.clock.clone(), configure).await;
        // The same client comes back with the same key, as it would after a real restart.
        restarted.client = client_with_key(Some(&self.key));
        restarted.key = std::mem::take(&mut self.key);
        restarted
    }

    pub async fn spawn_full(
        data_dir: TempDir,
        clock: Arc<dyn Clock>,
        configure: impl FnOnce(&mut Config),
    ) -> Self {
        let mut config = Config {
            host: "127.0.0.1".into(),
            port: 0,
            data_dir: data_dir.path().to_owned(),
            ..Config::default()
        };
        configure(&mut config);
        let app = App::build_with_clock(config.clone(), clock.clone())
            .await
            .expect("the app builds");
        let addr = app.local_addr();
        let jobs = app.jobs();
        let models = app.models();
        let batches = app.batches();
        let (tx, rx) = oneshot::channel();
        let server = tokio::spawn(app.run(async {
            let _ = rx.await;
        }));
        let key = issue_key(&config, "paid", clock.now_ms()).await;
        Self {
            base: format!("http://{addr}"),
            client: client_with_key(Some(&key)),
            key,
            data_dir: Some(data_dir),
            clock,
            config,
            jobs,
            models,
            batches,
            shutdown: Some(tx),
            server: Some(server),
        }
    }

    pub async fn offline() -> Self {
        Self::spawn(|c| c.provider = ProviderChoice::Offline).await
    }

    /// The Gemini provider pointed at `fake`, with short backoffs so that retry paths run
    /// in milliseconds. The deadline stays generous: a loaded CI machine must not turn a
    /// 2K answer into a timeout (a test of the deadline sets its own).
    pub async fn gemini(fake: &fake_gemini::FakeGemini) -> Self {
        Self::gemini_with(fake, |_| {}).await
    }

    /// [`TestApp::gemini`], then `configure`.
    pub async fn gemini_with(
        fake: &fake_gemini::FakeGemini,
        configure: impl FnOnce(&mut Config),
    ) -> Self {
        let gemini = on_gemini(fake, 30.0);
        Self::spawn(move |c| {
            gemini(c);
            c.gemini.initial_backoff_ms = 10;
            c.gemini.max_backoff_ms = 40;
            configure(c);
        })
        .await
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Issues another key of `tier`, as `imagegate keys create` does.
    pub async fn create_key(&self, tier: &str) -> String {
        issue_key(&self.config, tier, self.clock.now_ms()).await
    }

    pub async fn post_json(&self, path: &str, body: Value) -> reqwest::Response {
        self.post_json_as(&self.client, path, body).await
    }

    /// [`TestApp::post_json`] sent by `client` (another key's, or none).
    pub async fn post_json_as(
        &self,
        client: &reqwest::Client,
        path: &str,
        body: Value,
    ) -> reqwest::Response {
        let request = client.post(self.url(path)).json(&body);
        request.send().await.expect("request sent")
    }

    pub async fn post_form(&self, path: &str, form: reqwest::multipart::Form) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .multipart(form)
            .send()
            .await
            .expect("request sent")
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.get_as(&self.client, path).await
    }

    /// [`TestApp::get`] sent by `client` (another key's, or none).
    pub async fn get_as(&self, client: &reqwest::Client, path: &str) -> reqwest::Response {
        let request = client.get(self.url(path));
        request.send().await.expect("request sent")
    }

    /// Queues `body` with `POST /generate-image` (202); the request id.
    pub async fn queue(&self, body: Value) -> String {
        let response = self.post_json("/generate-image", body).await;
        let (status, request_id, accepted) = json_of(response).await;
        assert_eq!(status, 202, "{accepted}");
        assert_eq!(accepted["request_id"], request_id.as_str());
        request_id
    }

    /// `GET path` with no Authorization header at all.
    pub async fn get_anonymously(&self, path: &str) -> reqwest::Response {
        self.get_as(&client_with_key(None), path).await
    }
}

/// The Gemini provider in front of `fake` with an upstream deadline of `deadline_secs`,
/// as a configuration for [`TestApp::spawn`], [`TestApp::spawn_full`] and restarts.
pub fn on_gemini(
    fake: &fake_gemini::FakeGemini,
    deadline_secs: f64,
) -> impl Fn(&mut Config) + Clone + use<> {
    let base_url = fake.base_url();
    move |c: &mut Config| {
        c.provider = ProviderChoice::Gemini;
        c.google_api_key = Some(Secret::new(fake_gemini::FAKE_API_KEY));
        c.gemini.base_url = base_url.clone();
        c.gemini.deadline_secs = deadline_secs;
    }
}

/// Issues a key in the database `config` names, as `imagegate keys create` does.
pub async fn issue_key(config: &Config, tier: &str, now_ms: i64) -> String {
    let storage = Storage::open(config).await.expect("the database opens");
    let issued = imagegate::auth::issue_key(storage.keys.as_ref(), tier, None, now_ms)
        .await
        .expect("a key is issued");
    issued.token.expose().to_owned()
}

/// The admin token of the tests that use the admin API (`auth.admin_token`).
pub const ADMIN_TOKEN: &str = "admin-token-for-tests-0123456789abcdef";

/// Creates a key through the admin API (`POST /admin/keys` with `body`); the answer,
/// whose `key` is shown this once.
pub async fn admin_create_key(app: &TestApp, body: &Value) -> Value {
    let (status, _, created) = json_of(
        client_with_key(Some(ADMIN_TOKEN))
            .post(app.url("/admin/keys"))
            .json(body)
            .send()
            .await
            .expect("request sent"),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    created
}

/// Prices `model` for exact budget arithmetic: `tokens` image tokens at `size` for
/// $20 per million, input free, text (thoughts) at `text_per_million`.
pub fn price(config: &mut Config, model: &str, size: &str, tokens: u64, text_per_million: f64) {
    config.models.push(imagegate::models::ModelOverride {
        name: model.into(),
        prices: Some(imagegate::models::Prices {
            input: 0.0,
            text_output: text_per_million,
            image_output: 20.0,
        }),
        output_tokens: Some([(size.to_owned(), tokens)].into_iter().collect()),
        ..imagegate::models::ModelOverride::default()
    });
}

/// A client that sends `key` as its bearer token (or no Authorization header at all).
pub fn client_with_key(key: Option<&str>) -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    if let Some(key) = key {
        let mut value = reqwest::header::HeaderValue::from_str(&format!("Bearer {key}"))
            .expect("a header value");
        value.set_sensitive(true);
        headers.insert(reqwest::header::AUTHORIZATION, value);
    }
    reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .expect("a client")
}

/// Status, request-id header and JSON body of a response.
pub async fn json_of(response: reqwest::Response) -> (u16, String, Value) {
    let status = response.status().as_u16();
    let request_id = response
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let body = response.json::<Value>().await.expect("a JSON body");
    (status, request_id, body)
}

/// Asserts the contract's error shape and returns the body.
pub async fn expect_error(response: reqwest::Response, status: u16, code: &str) -> Value {
    let (got, request_id, body) = json_of(response).await;
    assert_eq!(got, status, "status for {body}");
    assert_eq!(body["error"], code, "error code in {body}");
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "message in {body}"
    );
    assert_eq!(
        body["request_id"],
        request_id.as_str(),
        "X-Request-Id equals request_id"
    );
    assert!(request_id.starts_with("req_"));
    body
}

/// Calls `fetch` every 25 ms until `done` holds for its answer or 30 s have passed; the
/// last answer either way, for the caller to assert on.
pub async fn poll<T, F: std::future::Future<Output = T>>(
    fetch: impl FnMut() -> F,
    done: impl Fn(&T) -> bool,
) -> T {
    poll_within(30.0, fetch, done).await
}

/// [`poll`] for at most `secs`: for a test whose promptness is part of the claim.
pub async fn poll_within<T, F: std::future::Future<Output = T>>(
    secs: f64,
    mut fetch: impl FnMut() -> F,
    done: impl Fn(&T) -> bool,
) -> T {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs_f64(secs);
    loop {
        let last = fetch().await;
        if done(&last) || std::time::Instant::now() > deadline {
            return last;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
}

/// Waits (at most 30 s) until `check` holds, or fails the test naming `what`.
pub async fn eventually<F: std::future::Future<Output = bool>>(
    what: &str,
    check: impl FnMut() -> F,
) {
    assert!(poll(check, |held| *held).await, "{what} never happened");
}

/// Whether an async request's status (`GET /requests/{id}`) is final.
pub fn finished(status: &Value) -> bool {
    status["status"] == "succeeded" || status["status"] == "failed"
}

/// [`expect_error`] for the commonest refusal: 400 `invalid_request`.
pub async fn expect_invalid(response: reqwest::Response) -> Value {
    expect_error(response, 400, "invalid_request").await
}

pub fn decode_image(b64: &Value) -> image::DynamicImage {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64.as_str().expect("base64 string"))
        .expect("standard base64");
    image::load_from_memory(&bytes).expect("a decodable image")
}

/// A real 1×1 PNG whose header claims `width`×`height` pixels (its checksum fixed), with
/// no pixel data for them: a decompression bomb as far as a header reader can tell.
pub fn png_claiming(width: u32, height: u32) -> Vec<u8> {
    let mut bytes = png(1, 1);
    bytes[16..20].copy_from_slice(&width.to_be_bytes());
    bytes[20..24].copy_from_slice(&height.to_be_bytes());
    let crc = crc32fast::hash(&bytes[12..29]);
    bytes[29..33].copy_from_slice(&crc.to_be_bytes());
    bytes
}

pub fn png(width: u32, height: u32) -> Vec<u8> {
    let img = image::RgbImage::from_fn(width, height, |x, y| {
        image::Rgb([
            (x * 255 / width.max(1)) as u8,
            (y * 255 / height.max(1)) as u8,
            128,
        ])
    });
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png)
        .expect("png encodes");
    out.into_inner()
}

pub fn jpeg(width: u32, height: u32) -> Vec<u8> {
    let img = image::RgbImage::from_fn(width, height, |x, y| {
        image::Rgb([(x % 256) as u8, (y % 256) as u8, 200])
    });
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Jpeg)
        .expect("jpeg encodes");
    out.into_inner()
}

pub fn file_part(bytes: Vec<u8>, name: &str) -> reqwest::multipart::Part {
    reqwest::multipart::Part::bytes(bytes).file_name(name.to_owned())
}

//! The `gemini` provider: a client of Google's `generateContent` REST API.
//!
//! Retries 408, 429, 500, 502, 503 and 504 (and connection failures) with exponential
//! backoff and jitter, waiting at least the upstream's `RetryInfo.retryDelay`; never
//! retries other 4xx (docs/upstream.md#errors-and-retries). One deadline bounds the whole call,
//! retries included.

pub mod batch;
mod mapping;
mod probe;
mod wire;

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use rand::Rng as _;
use reqwest::StatusCode;
use tokio::sync::Semaphore;

use crate::config::{GeminiConfig, Secret};
use crate::models::{ModelLister, UpstreamModel};
use crate::monitoring::Metrics;
use crate::monitoring::metrics::upstream_outcome;
use crate::provider::{Generated, ImageProvider, ProviderError, ProviderRequest, ServedAs};

pub use mapping::{decode_base64, interpret};

pub struct GeminiProvider {
    http: reqwest::Client,
    base_url: String,
    api_version: String,
    api_key: Secret,
    deadline: Duration,
    max_attempts: u32,
    initial_backoff: Duration,
    max_backoff: Duration,
    /// Calls and retries by outcome; a private registry unless [`Self::with_metrics`].
    metrics: Arc<Metrics>,
    /// KiB of answers being downloaded at once (see [`BODY_BUDGET_KIB`]).
    bodies: Arc<Semaphore>,
}

/// How much of the upstream's answers is downloaded at once. Answers are megabytes of
/// base64 and generations are slow, so many finish together: 1,000 calls held by a 10 s
/// upstream all answer within a few milliseconds, and reading every answer at once took
/// the gateway past 4 GB (docs/benchmarks.md). Callers beyond the budget wait with their
/// answer still in the socket. 8 MiB is four 1K PNG answers: enough to keep two cores
/// busy decoding, while downloads over a slow link still overlap.
const BODY_BUDGET_KIB: u32 = 8 * 1024;
/// Budgeted for an answer that does not say how long it is.
const UNKNOWN_BODY_BYTES: u64 = 8 << 20;

/// A non-2xx answer, kept until we know whether it will be retried.
struct Failure {
    status: StatusCode,
    google: Option<wire::GoogleError>,
    raw: String,
}

impl Failure {
    fn parse(status: StatusCode, body: &[u8]) -> Self {
        let google = serde_json::from_slice::<wire::ErrorBody>(body)
            .ok()
            .map(wire::ErrorBody::into_error);
        // Non-JSON bodies (HTML from a front end) are kept short, for the log only.
        let raw: String = String::from_utf8_lossy(&body[..body.len().min(200)])
            .chars()
            .filter(|c| !c.is_control())
            .collect();
        Self {
            status,
            google,
            raw,
        }
    }

    fn retryable(&self) -> bool {
        // 408 as google-genai's own retry defaults (docs/upstream.md#errors-and-retries).
        matches!(self.status.as_u16(), 408 | 429 | 500 | 502 | 503 | 504)
    }

    fn retry_delay(&self) -> Option<Duration> {
        self.google.as_ref().and_then(|g| g.retry_delay())
    }

    fn describe(&self) -> String {
        match &self.google {
            Some(g) => format!(
                "HTTP {} {}: {}",
                self.status.as_u16(),
                g.status.as_deref().unwrap_or("-"),
                g.message
            ),
            None => format!(
                "HTTP {} (non-JSON body: {:?})",
                self.status.as_u16(),
                self.raw
            ),
        }
    }

    fn into_error(self) -> ProviderError {
        let status = Some(self.status.as_u16());
        let cause = self.describe();
        let bad = |message: &str| ProviderError::BadResponse {
            status,
            message: message.into(),
            cause: cause.clone(),
        };
        match self.status.as_u16() {
            400 if self.google.as_ref().and_then(|g| g.reason()) == Some("API_KEY_INVALID") => {
                bad("The upstream rejected the gateway's Google API key.")
            }
            400 => ProviderError::Rejected {
                message: self.google.map(|g| g.message).unwrap_or_default(),
            },
            401 | 403 => bad("The upstream denied the gateway access to the model."),
            402 => bad("The upstream account has no prepaid credits left."),
            404 => ProviderError::ModelNotFound { cause },
            429 => ProviderError::RateLimited {
                retry_after_secs: self
                    .retry_delay()
                    .map_or(30, |d| d.as_secs_f64().ceil() as u64)
                    .max(1),
            },
            503 => ProviderError::Unavailable { status, cause },
            408 | 504 => ProviderError::Timeout {
                deadline_secs: None,
            },
            _ => bad("The upstream model failed to answer."),
        }
    }
}

impl GeminiProvider {
    pub fn new(config: &GeminiConfig, api_key: Secret) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .pool_idle_timeout(Duration::from_secs(90))
            // After a burst of answers, connections past these are closed instead of
            // idling with the buffers they read megabytes through: kept, they held most
            // of the ~560 MiB peak of 1,000 held calls answering at once (docs/benchmarks.md).
            .pool_max_idle_per_host(64)
            .build()?;
        Ok(Self {
            http,
            base_url: config.base_url.trim_end_matches('/').to_owned(),
            api_version: config.api_version.trim_matches('/').to_owned(),
            api_key,
            deadline: Duration::from_secs_f64(config.deadline_secs),
            max_attempts: config.max_attempts,
            initial_backoff: Duration::from_millis(config.initial_backoff_ms),
            max_backoff: Duration::from_millis(config.max_backoff_ms),
            metrics: Arc::default(),
            bodies: Arc::new(Semaphore::new(BODY_BUDGET_KIB as usize)),
        })
    }

    /// Reads an answer within the download budget, into one buffer of the announced size
    /// (not a list of chunks copied together at the end).
    async fn read_body(&self, mut response: reqwest::Response) -> reqwest::Result<Bytes> {
        let announced = response.content_length();
        let kib = announced
            .unwrap_or(UNKNOWN_BODY_BYTES)
            .div_ceil(1024)
            .clamp(1, u64::from(BODY_BUDGET_KIB)) as u32;
        // The semaphore is never closed, so this always yields a permit.
        let _permit = self.bodies.acquire_many(kib).await.ok();
        // The upstream's length is a hint, not trusted with an allocation past 64 MiB.
        let capacity = announced.unwrap_or(0).min(64 << 20) as usize;
        let mut body = BytesMut::with_capacity(capacity);
        while let Some(chunk) = response.chunk().await? {
            body.extend_from_slice(&chunk);
        }
        Ok(body.freeze())
    }

    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.metrics = metrics;
        self
    }

    fn url(&self, model: &str) -> String {
        format!(
            "{}/{}/models/{}:generateContent",
            self.base_url, self.api_version, model
        )
    }

    /// Exponential backoff with "equal jitter": half fixed, half random.
    fn backoff(&self, attempt: u32) -> Duration {
        let exp = self
            .initial_backoff
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(16))
            .min(self.max_backoff);
        let half = exp / 2;
        half + half.mul_f64(rand::rng().random::<f64>())
    }

    async fn send_with_retries(
        &self,
        url: &str,
        body: Bytes,
        deadline: Instant,
    ) -> Result<Bytes, ProviderError> {
        let (status, bytes) = self.exchange(url, body, deadline).await?;
        if status.is_success() {
            Ok(bytes)
        } else {
            Err(Failure::parse(status, &bytes).into_error())
        }
    }

    /// Posts `body` to `url`, retrying what is worth retrying, and returns the final
    /// answer whatever its status; only a transport failure after retries is an error.
    async fn exchange(
        &self,
        url: &str,
        body: Bytes,
        deadline: Instant,
    ) -> Result<(StatusCode, Bytes), ProviderError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let call_started = Instant::now();
            let sent = self
                .http
                .post(url)
                .header("x-goog-api-key", self.api_key.expose())
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.clone())
                .send()
                .await;
            let answer = match sent {
                Ok(response) => {
                    let status = response.status();
                    self.read_body(response).await.map(|bytes| (status, bytes))
                }
                Err(e) => Err(e),
            };
            let label = upstream_outcome(answer.as_ref().ok().map(|(s, _)| s.as_u16()));
            self.metrics
                .upstream_call(label, call_started.elapsed().as_secs_f64());
            let (outcome, delay) = match answer {
                Ok((status, bytes)) if status.is_success() => return Ok((status, bytes)),
                Ok((status, bytes)) => {
                    let failure = Failure::parse(status, &bytes);
                    tracing::warn!(attempt, upstream = %failure.describe(), "upstream call failed");
                    let delay = failure
                        .retry_delay()
                        .map(|d| d + Duration::from_millis(rand::rng().random_range(0..100)))
                        .unwrap_or_else(|| self.backoff(attempt));
                    if !failure.retryable()
                        || attempt >= self.max_attempts
                        || Instant::now() + delay >= deadline
                    {
                        return Ok((status, bytes));
                    }
                    (None, delay)
                }
                Err(e) => {
                    tracing::warn!(attempt, error = %e, "upstream call did not complete");
                    (Some(unreachable_upstream(e)), self.backoff(attempt))
                }
            };
            // Give up now rather than sleep past the deadline or the attempt budget.
            if let Some(error) = outcome
                && (attempt >= self.max_attempts || Instant::now() + delay >= deadline)
            {
                return Err(error);
            }
            self.metrics.upstream_retry(label);
            tracing::info!(
                attempt,
                delay_ms = delay.as_millis() as u64,
                "retrying upstream call"
            );
            tokio::time::sleep(delay).await;
        }
    }

    /// Forwards a native request (`model:action`, e.g. `gemini-3.1-flash-image:countTokens`)
    /// with the gateway's key and returns Google's answer as it came, error envelopes
    /// included; retries and the deadline apply as for every call.
    pub async fn forward(
        &self,
        model: &str,
        action: &str,
        body: Bytes,
    ) -> Result<(u16, Bytes), ProviderError> {
        let url = format!(
            "{}/{}/models/{model}:{action}",
            self.base_url, self.api_version
        );
        let deadline = Instant::now() + self.deadline;
        tokio::time::timeout(self.deadline, self.exchange(&url, body, deadline))
            .await
            .map_err(|_| ProviderError::Timeout {
                deadline_secs: Some(self.deadline.as_secs_f64()),
            })?
            .map(|(status, bytes)| (status.as_u16(), bytes))
    }

    /// Opens `:streamGenerateContent?alt=sse` upstream; the caller relays the body.
    pub async fn forward_stream(
        &self,
        model: &str,
        body: Bytes,
    ) -> Result<reqwest::Response, ProviderError> {
        let url = format!(
            "{}/{}/models/{model}:streamGenerateContent?alt=sse",
            self.base_url, self.api_version
        );
        self.http
            .post(url)
            .header("x-goog-api-key", self.api_key.expose())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body)
            .send()
            .await
            .map_err(unreachable_upstream)
    }
}

/// Page tokens are opaque; everything but RFC 3986's unreserved characters is escaped.
fn percent_encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn unreachable_upstream(e: reqwest::Error) -> ProviderError {
    ProviderError::Unavailable {
        status: None,
        // reqwest errors carry the URL (never the key header); drop it all the same.
        cause: e.without_url().to_string(),
    }
}

#[async_trait]
impl ImageProvider for GeminiProvider {
    fn name(&self) -> &'static str {
        "gemini"
    }

    async fn generate(&self, request: ProviderRequest) -> Result<Generated, ProviderError> {
        let model = request.model.entry.upstream_id.clone();
        let body = mapping::request_body(&request).map_err(|e| ProviderError::BadResponse {
            status: None,
            message: "The request could not be encoded for the upstream.".into(),
            cause: e.to_string(),
        })?;
        let started = Instant::now();
        let deadline = started + self.deadline;
        let answer = tokio::time::timeout(
            self.deadline,
            self.send_with_retries(&self.url(&model), Bytes::from(body), deadline),
        )
        .await
        .map_err(|_| {
            // The call in flight when the deadline struck never got an answer.
            self.metrics.upstream_abandoned();
            ProviderError::Timeout {
                deadline_secs: Some(self.deadline.as_secs_f64()),
            }
        })??;
        tracing::debug!(
            bytes = answer.len(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "upstream answered"
        );
        mapping::interpret(&answer, ServedAs::of(&request))
    }
}

/// Google pages the list; more pages than this means something is wrong upstream.
const MAX_LIST_PAGES: usize = 50;

#[async_trait]
impl ModelLister for GeminiProvider {
    /// `GET /{version}/models?pageSize=1000&pageToken=…`, following `nextPageToken`.
    async fn list_models(&self) -> Result<Vec<UpstreamModel>, String> {
        let url = format!("{}/{}/models", self.base_url, self.api_version);
        let mut models = Vec::new();
        let mut token: Option<String> = None;
        for _ in 0..MAX_LIST_PAGES {
            let page_url = match &token {
                Some(t) => format!("{url}?pageSize=1000&pageToken={}", percent_encode(t)),
                None => format!("{url}?pageSize=1000"),
            };
            let response = self
                .http
                .get(&page_url)
                .header("x-goog-api-key", self.api_key.expose())
                .timeout(Duration::from_secs(30))
                .send()
                .await
                .map_err(|e| e.without_url().to_string())?;
            let status = response.status();
            let body = response
                .bytes()
                .await
                .map_err(|e| e.without_url().to_string())?;
            if !status.is_success() {
                return Err(Failure::parse(status, &body).describe());
            }
            let page: wire::ListModelsResponse =
                serde_json::from_slice(&body).map_err(|e| format!("unreadable model list: {e}"))?;
            models.extend(page.models.into_iter().map(|m| UpstreamModel {
                id: m.name.strip_prefix("models/").unwrap_or(&m.name).to_owned(),
                display_name: m.display_name,
            }));
            match page.next_page_token.filter(|t| !t.is_empty()) {
                Some(next) => token = Some(next),
                None => return Ok(models),
            }
        }
        Err(format!(
            "the model list went on past {MAX_LIST_PAGES} pages"
        ))
    }
}

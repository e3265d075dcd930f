//! What operators watch (docs/api.md#monitoring): Prometheus metrics, the guide's `APIMonitor`
//! statistics, and readiness. The HTTP side is `api::routes::monitoring`; requests are counted
//! in `api::middleware::context`, upstream calls in the Gemini client, usage in [`MeteredUsage`].

pub mod metrics;
pub mod ready;
pub mod stats;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};

use crate::caller::RequestContext;
use crate::clock::Clock;
use crate::generation::{Usage, UsageSink};
use crate::store::StoreError;

pub use metrics::Metrics;
pub use ready::Readiness;
pub use stats::RecentRequests;

/// The routes whose requests `/stats` describes: those that generate images, which are
/// the requests the guide's `APIMonitor` tracks.
pub const GENERATION_ROUTES: &[&str] = &[
    "/generate-image",
    "/edit-image",
    "/compose-images",
    "/chat/{session_id}/message",
    "/story/generate",
    "/advanced/inpaint",
    "/advanced/outpaint",
    "/advanced/style-transfer",
    "/v1/images/generations",
    "/v1/images/edits",
];

pub struct Monitoring {
    pub metrics: Arc<Metrics>,
    pub recent: RecentRequests,
    pub readiness: Readiness,
    clock: Arc<dyn Clock>,
    /// When the queue depth was last asked of the store (ms, this process's clock), and
    /// whether a read is running: scrapes start at most one read every few seconds and
    /// never wait for it.
    queue_read_at_ms: AtomicI64,
    queue_reading: Arc<AtomicBool>,
}

/// A scrape older than this refreshes the queue depth (in the background).
const QUEUE_DEPTH_REFRESH_MS: i64 = 5_000;
/// How long a scrape waits for a fresh queue depth before answering with the last one.
const QUEUE_DEPTH_WAIT: std::time::Duration = std::time::Duration::from_millis(100);
/// A queue-depth read that takes longer is abandoned (the database is in trouble).
const QUEUE_DEPTH_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

impl Monitoring {
    pub fn new(metrics: Arc<Metrics>, readiness: Readiness, clock: Arc<dyn Clock>) -> Self {
        Self {
            metrics,
            recent: RecentRequests::default(),
            readiness,
            clock,
            queue_read_at_ms: AtomicI64::new(i64::MIN),
            queue_reading: Arc::default(),
        }
    }

    /// Starts a background read of the queue depth when the last one is older than a few
    /// seconds and none is running, and waits for it a moment only: a healthy database
    /// answers within that, and an unhealthy one does not hold the scrape. The gauge keeps
    /// the last value read; a failed read marks the database down in
    /// `imagegate_dependency_up`.
    pub async fn refresh_queue_depth<F>(&self, read: F)
    where
        F: Future<Output = Result<i64, String>> + Send + 'static,
    {
        let now = self.clock.now_ms();
        let last = self.queue_read_at_ms.load(Ordering::Relaxed);
        if now.saturating_sub(last) < QUEUE_DEPTH_REFRESH_MS
            || self.queue_reading.swap(true, Ordering::AcqRel)
        {
            return;
        }
        self.queue_read_at_ms.store(now, Ordering::Relaxed);
        let (metrics, reading) = (self.metrics.clone(), self.queue_reading.clone());
        // Bounded by the timeout and by the flag above: at most one such task at a time.
        let reader = tokio::spawn(async move {
            match tokio::time::timeout(QUEUE_DEPTH_READ_TIMEOUT, read).await {
                Ok(Ok(depth)) => {
                    metrics.set_queue_depth(depth);
                    metrics.set_dependency_up("database", true);
                }
                Ok(Err(cause)) => {
                    tracing::warn!(%cause, "queue depth unavailable for /metrics");
                    metrics.set_dependency_up("database", false);
                }
                Err(_) => {
                    tracing::warn!("queue depth read timed out for /metrics");
                    metrics.set_dependency_up("database", false);
                }
            }
            reading.store(false, Ordering::Release);
        });
        // Past the wait the read goes on in the background (dropping the handle does not
        // cancel it) and the scrape answers with the last known depth.
        let _ = tokio::time::timeout(QUEUE_DEPTH_WAIT, reader).await;
    }

    pub fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    /// Counts a finished request; generation requests also go into the `/stats` record.
    pub fn request_finished(
        &self,
        endpoint: &str,
        method: &str,
        key_id: Option<&str>,
        status: u16,
        seconds: f64,
    ) {
        self.metrics
            .request_finished(endpoint, method, status, seconds);
        // A 202 is work accepted, not an outcome: the worker that finishes it reports how
        // it ended ([`crate::jobs::AsyncOutcomes`]).
        if method == "POST"
            && status != 202
            && GENERATION_ROUTES.contains(&endpoint)
            && let Some(key_id) = key_id
        {
            self.recent
                .record(self.clock.now_ms(), key_id, seconds, status);
        }
    }
}

/// Async generation requests count in `/stats` when they end, by their outcome (200 for
/// success, 500 standing for any failure), timed from acceptance to outcome. They count
/// on the instance whose worker ran them.
impl crate::jobs::AsyncOutcomes for Monitoring {
    fn finished(&self, owner: &str, succeeded: bool, seconds: f64) {
        let status = if succeeded { 200 } else { 500 };
        self.recent
            .record(self.clock.now_ms(), owner, seconds, status);
    }
}

/// Counts images, tokens and cost by model, then hands the usage on to the real sink.
pub struct MeteredUsage {
    metrics: Arc<Metrics>,
    inner: Arc<dyn UsageSink>,
}

impl MeteredUsage {
    pub fn new(metrics: Arc<Metrics>, inner: Arc<dyn UsageSink>) -> Self {
        Self { metrics, inner }
    }
}

#[async_trait::async_trait]
impl UsageSink for MeteredUsage {
    async fn record(
        &self,
        ctx: &RequestContext,
        model: &str,
        usage: &Usage,
        images: usize,
    ) -> Result<(), StoreError> {
        let tokens = [
            ("input", usage.input_tokens),
            ("output", usage.output_tokens),
            ("image", usage.image_tokens),
            ("thought", usage.thought_tokens),
        ];
        self.metrics
            .generated(model, images, tokens, usage.cost_usd);
        self.inner.record(ctx, model, usage, images).await
    }
}

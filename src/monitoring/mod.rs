//! What operators watch (contract §9): Prometheus metrics, the guide's `APIMonitor`
//! statistics, and readiness. The HTTP side is `api::monitoring`; requests are counted
//! in `api::context`, upstream calls in the Gemini client, usage in [`MeteredUsage`].

pub mod metrics;
pub mod ready;
pub mod stats;

use std::sync::Arc;

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
}

impl Monitoring {
    pub fn new(metrics: Arc<Metrics>, readiness: Readiness, clock: Arc<dyn Clock>) -> Self {
        Self {
            metrics,
            recent: RecentRequests::default(),
            readiness,
            clock,
        }
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
        if method == "POST"
            && GENERATION_ROUTES.contains(&endpoint)
            && let Some(key_id) = key_id
        {
            self.recent
                .record(self.clock.now_ms(), key_id, seconds, status);
        }
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

//! The domain: validated requests, prompt building, and the one pipeline every
//! generation endpoint goes through (provider call → stored images → response).

pub mod advanced;
pub mod canvas;
pub mod chat;
pub mod chat_context;
pub mod chat_order;
mod error;
pub mod execute;
pub mod native;
pub mod native_offline;
pub mod openai;
pub mod params;
pub mod pixels;
pub mod prompts;
pub mod quality_check;
pub mod requests;
pub mod spend;
pub mod story;
pub mod styles;
pub mod work;

pub use error::{Cause, GenerationError};

use std::sync::Arc;

use base64::Engine as _;
use serde::Serialize;

use crate::caller::RequestContext;
use crate::ids;
use crate::models::{Prices, Substitution, TierPolicy};
use crate::provider::{
    Generated, ImageProvider, OutputImage, ProviderError, ProviderRequest, ServedAs, TokenUsage,
};
use crate::store::{ImageStore, StoreError};

/// Where priced usage goes (per key, per day and model). Recorded once per upstream
/// result that is returned to the client.
#[async_trait::async_trait]
pub trait UsageSink: Send + Sync + 'static {
    async fn record(
        &self,
        ctx: &RequestContext,
        model: &str,
        usage: &Usage,
        images: usize,
    ) -> Result<(), StoreError>;
}

/// Work on the provider's images before they are stored and returned (mask
/// compositing, outpaint canvas restoration). Runs on a blocking thread.
pub type PostProcess =
    Box<dyn FnOnce(Vec<OutputImage>) -> Result<Vec<OutputImage>, GenerationError> + Send>;

/// The generation response (docs/api.md#the-generation-response).
#[derive(Debug, Clone, Serialize)]
pub struct GenerationResponse {
    pub request_id: String,
    pub model: String,
    pub images: Vec<String>,
    pub image_ids: Vec<String>,
    pub mime_types: Vec<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    pub finish_reason: String,
    pub usage: Usage,
    pub cached: bool,
    /// `quality_metrics`, `quality_score` and `quality_attempts`, only when asked for.
    #[serde(flatten)]
    pub quality: Option<quality_check::QualityReport>,
}

#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct Usage {
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub image_tokens: u64,
    pub thought_tokens: u64,
    pub cost_usd: f64,
}

impl Usage {
    /// Prices upstream usage: image output at the image rate, other output (thoughts
    /// included) at the text rate, input at the input rate (docs/upstream.md#prices).
    pub fn priced(tokens: TokenUsage, prices: Prices) -> Self {
        let text_output = tokens.output.saturating_sub(tokens.image_output) + tokens.thoughts;
        let cost = (tokens.input as f64 * prices.input
            + text_output as f64 * prices.text_output
            + tokens.image_output as f64 * prices.image_output)
            / 1_000_000.0;
        Self {
            input_tokens: tokens.input,
            output_tokens: tokens.output,
            image_tokens: tokens.image_output,
            thought_tokens: tokens.thoughts,
            // Micro-dollars: enough for any single call, free of float noise in JSON.
            cost_usd: (cost * 1e6).round() / 1e6,
        }
    }
}

/// A finished generation and what the HTTP layer needs to describe it.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub response: GenerationResponse,
    /// Set when another model served than the one named (retired, or overloaded).
    pub substituted: Option<(String, Substitution)>,
    /// The model's turn as received, for conversation history.
    pub generated: Generated,
}

#[derive(Clone)]
pub struct Generator {
    provider: Arc<dyn ImageProvider>,
    images: Arc<ImageStore>,
    usage: Option<Arc<dyn UsageSink>>,
    /// Which service tiers each key tier may use.
    tiers: TierPolicy,
    /// Keys' model scopes and spending limits, checked before each upstream call.
    spending: Option<spend::Spending>,
}

impl Generator {
    pub fn new(provider: Arc<dyn ImageProvider>, images: Arc<ImageStore>) -> Self {
        Self {
            provider,
            images,
            usage: None,
            tiers: TierPolicy::default(),
            spending: None,
        }
    }

    pub fn with_tier_policy(mut self, tiers: TierPolicy) -> Self {
        self.tiers = tiers;
        self
    }

    pub fn with_spending(mut self, spending: spend::Spending) -> Self {
        self.spending = Some(spending);
        self
    }

    pub fn spending(&self) -> Option<&spend::Spending> {
        self.spending.as_ref()
    }

    /// Reserves the worst case of a call `served` as, when spending is tracked.
    pub async fn reserve(
        &self,
        ctx: &RequestContext,
        served: &ServedAs,
        size: Option<&str>,
    ) -> Result<Option<spend::Reservation>, GenerationError> {
        match &self.spending {
            Some(spending) => spending.reserve(ctx, served, size).await,
            None => Ok(None),
        }
    }

    /// Settles a reservation to a call's real cost.
    pub async fn settle(&self, reservation: Option<spend::Reservation>, cost_usd: f64) {
        if let (Some(spending), Some(r)) = (&self.spending, reservation) {
            spending.settle(r, cost_usd).await;
        }
    }

    pub fn with_usage_sink(mut self, sink: Arc<dyn UsageSink>) -> Self {
        self.usage = Some(sink);
        self
    }

    /// Runs one generation to the end. The work runs in its own task, so a client that
    /// disconnects does not cancel an upstream call that is already being paid for.
    pub async fn run(
        &self,
        ctx: &RequestContext,
        request: ProviderRequest,
    ) -> Result<Outcome, GenerationError> {
        self.run_with(ctx, request, None).await
    }

    /// Like [`Generator::run`], with `post` applied to the images before they are stored.
    pub async fn run_with(
        &self,
        ctx: &RequestContext,
        mut request: ProviderRequest,
        post: Option<PostProcess>,
    ) -> Result<Outcome, GenerationError> {
        request.routing.service_tier = self
            .tiers
            .apply(&ctx.caller.tier, request.routing.service_tier)?;
        let this = self.clone();
        let ctx = ctx.clone();
        crate::tasks::spawn(async move { this.run_to_end(ctx, request, post).await })
            .await
            .map_err(GenerationError::failed("the generation task"))?
    }

    /// Stores a result's images for the caller and records its priced usage; returns the
    /// image ids. Also used for answers relayed as they are (the native Gemini surface).
    pub async fn keep(
        &self,
        ctx: &RequestContext,
        generated: &Generated,
    ) -> Result<(Vec<String>, Usage), GenerationError> {
        // Priced as the model and tier that served, whatever was asked for.
        let prices = generated.served.prices();
        let image_ids: Vec<String> = generated
            .images
            .iter()
            .map(|_| ids::new_id("img"))
            .collect();
        let store = async {
            for (image, id) in generated.images.iter().zip(&image_ids) {
                self.images
                    .put(id, &ctx.caller.key_id, image.format, image.bytes.clone())
                    .await?;
            }
            Ok::<_, StoreError>(())
        };
        // The offline provider reports no tokens, so it costs nothing.
        let usage = Usage::priced(generated.usage, prices);
        let record = async {
            match &self.usage {
                Some(sink) => {
                    sink.record(ctx, &generated.model, &usage, image_ids.len())
                        .await
                }
                None => Ok(()),
            }
        };
        // Side by side: writing the images (megabytes to disk) and recording the usage (a
        // database row) are independent, and both finish even if the other fails, since
        // the upstream has charged for the call either way.
        let (stored, recorded) = tokio::join!(store, record);
        stored?;
        recorded?;
        Ok((image_ids, usage))
    }

    /// A refused call still used tokens upstream, and is billed for them: record it (with
    /// no images). The client gets the refusal either way, so a failure here is logged.
    pub async fn record_refusal(
        &self,
        ctx: &RequestContext,
        model: &str,
        e: &ProviderError,
        prices: Prices,
    ) {
        let (Some(sink), Some(tokens)) = (&self.usage, e.usage()) else {
            return;
        };
        if tokens == TokenUsage::default() {
            return;
        }
        if let Err(err) = sink
            .record(ctx, model, &Usage::priced(tokens, prices), 0)
            .await
        {
            tracing::warn!(error = %err, "could not record the usage of a refused call");
        }
    }

    async fn run_to_end(
        &self,
        ctx: RequestContext,
        request: ProviderRequest,
        post: Option<PostProcess>,
    ) -> Result<Outcome, GenerationError> {
        let modalities = request.modalities;
        let prices = ServedAs::of(&request).prices();
        let model = request.model.entry.upstream_id.clone();
        let size = request.image_size.as_ref().map(|s| s.as_str().to_owned());
        let reservation = self
            .reserve(&ctx, &ServedAs::of(&request), size.as_deref())
            .await?;
        let generated = match self.provider.generate(request).await {
            Ok(g) => g,
            Err(e) => {
                let cost = e.usage().map_or(0.0, |t| Usage::priced(t, prices).cost_usd);
                self.settle(reservation, cost).await;
                self.record_refusal(&ctx, &model, &e, prices).await;
                return Err(e.into());
            }
        };
        let cost = Usage::priced(generated.usage, generated.served.prices()).cost_usd;
        self.settle(reservation, cost).await;
        let mut generated = generated;
        if modalities.image && generated.images.is_empty() {
            let e = ProviderError::NoImage {
                finish_reason: generated.finish_reason.clone(),
                text: generated.text.clone(),
                usage: generated.usage,
            };
            self.record_refusal(&ctx, &generated.model, &e, generated.served.prices())
                .await;
            return Err(e.into());
        }
        if let Some(post) = post {
            let images = std::mem::take(&mut generated.images);
            generated.images = tokio::task::spawn_blocking(move || post(images))
                .await
                .map_err(GenerationError::failed("post-processing the images"))??;
        }
        let (image_ids, usage) = self.keep(&ctx, &generated).await?;
        // Moved, not copied: each is as large as the image (docs/benchmarks.md).
        let images: Vec<String> = generated.images.iter_mut().map(take_base64).collect();
        let mime_types = generated.images.iter().map(|i| i.format.mime()).collect();
        tracing::info!(
            images = images.len(),
            bytes = generated.images.iter().map(|i| i.bytes.len()).sum::<usize>(),
            finish_reason = %generated.finish_reason,
            cost_usd = usage.cost_usd,
            "generation finished"
        );
        Ok(Outcome {
            response: GenerationResponse {
                request_id: ctx.request_id.clone(),
                model: generated.model.clone(),
                images,
                image_ids,
                mime_types,
                text: generated.text.clone(),
                finish_reason: generated.finish_reason.clone(),
                usage,
                cached: false,
                quality: None,
            },
            substituted: generated.served.model.substituted.clone(),
            generated,
        })
    }
}

/// The image's standard base64: the upstream's own when it had one (taken out of `image`,
/// which keeps its bytes), else encoded here.
fn take_base64(image: &mut OutputImage) -> String {
    image
        .base64
        .take()
        .unwrap_or_else(|| base64::engine::general_purpose::STANDARD.encode(&image.bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_tokens_are_priced_at_the_image_rate() {
        // gemini-3.1-flash-image, 1K: 1120 image tokens at $60/M = $0.0672,
        // 12 input tokens at $0.50/M, 9 text tokens at $3/M.
        let prices = Prices {
            input: 0.50,
            text_output: 3.0,
            image_output: 60.0,
        };
        let usage = Usage::priced(
            TokenUsage {
                input: 12,
                output: 1129,
                image_output: 1120,
                thoughts: 0,
            },
            prices,
        );
        let expected = (12.0 * 0.50 + 9.0 * 3.0 + 1120.0 * 60.0) / 1e6;
        assert!(
            (usage.cost_usd - expected).abs() < 1e-9,
            "{} vs {expected}",
            usage.cost_usd
        );
    }
}

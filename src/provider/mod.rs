//! Where images come from. The pipeline holds one `Arc<dyn ImageProvider>`, chosen at
//! start-up: the real Gemini client or the offline renderer.

pub mod batch;
pub mod effects;
pub mod gemini;
pub mod native;
pub mod offline;
pub mod routing;

use async_trait::async_trait;
use bytes::Bytes;

use crate::generation::params::{
    AspectRatio, ImageSize, Modalities, Options, Temperature, ThinkingLevel,
};
use crate::imaging::ImageFormat;
use crate::models::{Prices, ResolvedModel, ServiceTier};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    User,
    Model,
}

#[derive(Debug, Clone, PartialEq)]
pub enum PartData {
    Text(String),
    Image { format: ImageFormat, bytes: Bytes },
}

/// One part of a turn. Model parts keep their `thought` flag and `thought_signature`
/// exactly as received so that a conversation can be sent back byte for byte.
#[derive(Debug, Clone, PartialEq)]
pub struct Part {
    pub data: PartData,
    pub thought: bool,
    pub thought_signature: Option<Bytes>,
}

impl Part {
    pub fn text(text: impl Into<String>) -> Self {
        Self {
            data: PartData::Text(text.into()),
            thought: false,
            thought_signature: None,
        }
    }
    pub fn image(format: ImageFormat, bytes: Bytes) -> Self {
        Self {
            data: PartData::Image { format, bytes },
            thought: false,
            thought_signature: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Turn {
    pub role: Role,
    pub parts: Vec<Part>,
}

/// What kind of work a request is. The Gemini provider needs only the prompt text (the
/// instructions are already in it); the offline provider renders from this.
#[derive(Debug, Clone, PartialEq)]
pub enum Task {
    Generate,
    Edit {
        strength: Option<f64>,
        preserve_subject: bool,
    },
    Compose {
        style: String,
    },
    /// A chat turn: refine the conversation's latest image, if there is one.
    Chat,
    /// Change one region; `region` is where, in the coordinates of the image sent.
    Inpaint {
        region: Option<crate::generation::canvas::Placement>,
    },
    /// Fill a grown canvas around the original, which sits at `original`.
    Outpaint {
        original: crate::generation::canvas::Placement,
    },
    StyleTransfer {
        style: String,
        strength: f64,
    },
}

#[derive(Debug, Clone)]
pub struct ProviderRequest {
    pub model: ResolvedModel,
    pub task: Task,
    pub system_instruction: Option<String>,
    /// The conversation; the last turn is the user's new one.
    pub contents: Vec<Turn>,
    pub modalities: Modalities,
    pub temperature: Option<Temperature>,
    pub aspect_ratio: Option<AspectRatio>,
    pub image_size: Option<ImageSize>,
    pub seed: Option<i32>,
    pub routing: Routing,
}

/// How a request may be served: its service tier and thinking level upstream, and
/// whether another model (or, for flex, the standard tier) may serve it when its own
/// stays overloaded.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Routing {
    /// `None`: not sent upstream, which serves and bills it as standard.
    pub service_tier: Option<ServiceTier>,
    pub thinking_level: Option<ThinkingLevel>,
    /// `None`: as configured (`registry.fallback`).
    pub fallback: Option<bool>,
}

/// The model and service tier that served a request, which is what it is priced as.
#[derive(Debug, Clone)]
pub struct ServedAs {
    pub model: ResolvedModel,
    pub service_tier: Option<ServiceTier>,
}

impl ServedAs {
    pub fn of(request: &ProviderRequest) -> Self {
        Self {
            model: request.model.clone(),
            service_tier: request.routing.service_tier,
        }
    }

    pub fn prices(&self) -> Prices {
        let entry = &self.model.entry;
        let tier = self.service_tier.unwrap_or(ServiceTier::Standard);
        entry.prices.scaled(entry.tier_multipliers.of(tier))
    }
}

impl ProviderRequest {
    /// The one constructor: `contents` (the last turn the user's new one) under the
    /// caller's validated options.
    pub fn new(options: Options, task: Task, contents: Vec<Turn>) -> Self {
        Self {
            model: options.model,
            task,
            system_instruction: None,
            contents,
            modalities: options.modalities,
            temperature: options.temperature,
            aspect_ratio: options.aspect_ratio,
            image_size: options.image_size,
            seed: options.seed,
            routing: options.routing,
        }
    }

    pub fn with_system_instruction(mut self, instruction: Option<String>) -> Self {
        self.system_instruction = instruction;
        self
    }

    /// Images of the newest user turn, in order.
    pub fn input_images(&self) -> impl Iterator<Item = (ImageFormat, &Bytes)> {
        self.contents
            .last()
            .into_iter()
            .flat_map(|t| t.parts.iter())
            .filter_map(|p| match &p.data {
                PartData::Image { format, bytes } => Some((*format, bytes)),
                PartData::Text(_) => None,
            })
    }

    /// The most recent image anywhere in the conversation (newest turn first).
    pub fn latest_image(&self) -> Option<(ImageFormat, &Bytes)> {
        self.contents
            .iter()
            .rev()
            .flat_map(|t| t.parts.iter().rev())
            .find_map(|p| match &p.data {
                PartData::Image { format, bytes } if !p.thought => Some((*format, bytes)),
                _ => None,
            })
    }

    /// Text of the newest user turn.
    pub fn prompt_text(&self) -> String {
        let mut text = String::new();
        for part in self.contents.last().into_iter().flat_map(|t| &t.parts) {
            if let PartData::Text(t) = &part.data {
                if !text.is_empty() {
                    text.push('\n');
                }
                text.push_str(t);
            }
        }
        text
    }
}

#[derive(Debug, Clone)]
pub struct OutputImage {
    pub format: ImageFormat,
    pub bytes: Bytes,
    /// The upstream's own standard base64 of `bytes`, kept to avoid re-encoding.
    pub base64: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TokenUsage {
    pub input: u64,
    /// Candidate (non-thought) output tokens, images included.
    pub output: u64,
    pub image_output: u64,
    pub thoughts: u64,
}

#[derive(Debug, Clone)]
pub struct Generated {
    /// The model that produced the result ("offline" for the offline provider).
    pub model: String,
    /// The model entry and tier it is priced as, and any substitution on the way.
    pub served: ServedAs,
    pub images: Vec<OutputImage>,
    pub text: Option<String>,
    pub finish_reason: String,
    pub usage: TokenUsage,
    /// The model's turn as received (thought parts and signatures included), for history.
    pub model_turn: Turn,
}

/// Failures a provider reports, each mapped once onto the contract's error table.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ProviderError {
    /// The model refused: a safety/policy finish reason or a blocked prompt.
    #[error("content blocked: {reason}")]
    Blocked {
        reason: String,
        prompt_blocked: bool,
        message: Option<String>,
        /// What the refused call used upstream: refusals are billed too.
        usage: TokenUsage,
    },
    /// The model answered without an image.
    #[error("no image generated ({finish_reason})")]
    NoImage {
        finish_reason: String,
        text: Option<String>,
        usage: TokenUsage,
    },
    /// The model rejected the request as invalid (upstream 400).
    #[error("upstream rejected the request: {message}")]
    Rejected { message: String },
    /// Upstream does not serve the model (404): shut down, or unknown to it.
    #[error("upstream does not serve the model: {cause}")]
    ModelNotFound { cause: String },
    /// Upstream quota, after retries.
    #[error("upstream rate limited")]
    RateLimited { retry_after_secs: u64 },
    #[error("upstream unavailable: {cause}")]
    Unavailable { status: Option<u16>, cause: String },
    #[error("upstream deadline exceeded")]
    Timeout { deadline_secs: Option<f64> },
    /// Upstream answered with something unusable.
    #[error("unusable upstream answer: {cause}")]
    BadResponse {
        status: Option<u16>,
        message: String,
        cause: String,
    },
}

impl ProviderError {
    /// Upstream overload after retries: what another model or tier may still serve.
    pub fn is_overload(&self) -> bool {
        matches!(
            self,
            Self::RateLimited { .. }
                | Self::Unavailable {
                    status: Some(503),
                    ..
                }
        )
    }

    /// Tokens a failed call still used (a refusal is billed upstream).
    pub fn usage(&self) -> Option<TokenUsage> {
        match self {
            Self::Blocked { usage, .. } | Self::NoImage { usage, .. } => Some(*usage),
            _ => None,
        }
    }
}

#[async_trait]
pub trait ImageProvider: Send + Sync + 'static {
    /// A short name for logs and the start-up summary.
    fn name(&self) -> &'static str;
    async fn generate(&self, request: ProviderRequest) -> Result<Generated, ProviderError>;
}

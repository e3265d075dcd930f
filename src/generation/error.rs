//! What can go wrong in the domain: generation, the model table, image intake, async work
//! and batches, said in their own terms. Causes are kept as `source`s, never flattened to
//! text. The HTTP status, `error` string and `Retry-After` each variant earns are decided
//! in one place at the HTTP edge (`impl From<GenerationError> for ApiError` in
//! `crate::error`), which the async worker's stored error bodies use too.

use serde_json::{Map, Value};

use crate::provider::ProviderError;
use crate::store::StoreError;

/// Any error kept as a cause.
pub type Cause = Box<dyn std::error::Error + Send + Sync + 'static>;

/// The contract's `details` object: the field at fault, bounds, allowed values.
pub type Details = Map<String, Value>;

#[derive(Debug, thiserror::Error)]
pub enum GenerationError {
    /// A value the caller sent cannot be used; `details` names the field and what it
    /// allows.
    #[error("{message}")]
    Invalid {
        message: String,
        details: Details,
        #[source]
        source: Option<Cause>,
    },
    #[error("{message}")]
    NotFound { message: String },
    /// Something else changed first (an earlier message still pending, a state that
    /// forbids the change).
    #[error("{message}")]
    Conflict {
        message: String,
        details: Details,
        retry_after_secs: Option<u64>,
    },
    /// A chat session reached its turn bound, or a turn is larger than one can carry.
    #[error("{message}")]
    SessionFull { message: String, details: Details },
    #[error("the {field} is larger than {max_bytes} bytes")]
    FileTooLarge { field: String, max_bytes: usize },
    /// The process-wide budget for decoded pixels stayed taken past the wait.
    #[error("the pixel budget stayed taken")]
    Busy { retry_after_secs: u64 },
    /// The key's model scope leaves this model out.
    #[error("the key may not use the model {model:?}")]
    ModelForbidden { model: String, allowed: Vec<String> },
    /// The key's spending limit for `period` cannot cover the call's worst case.
    #[error("the {period} budget cannot cover ${reserved_usd}")]
    BudgetExceeded {
        period: &'static str,
        limit_usd: f64,
        spent_usd: f64,
        reserved_usd: f64,
        resets_at: String,
    },
    /// The key has as many batch items pending as it may.
    #[error("{pending_items} batch items pending, at most {max_pending_items}")]
    TooManyPending {
        max_pending_items: u64,
        pending_items: i64,
        count: usize,
    },
    #[error("the model returned no image to measure")]
    NoImageToMeasure,
    /// The upstream's result cannot be used (an undecodable image, a failed batch).
    #[error("{message}")]
    BadResult {
        message: &'static str,
        upstream_message: Option<String>,
        #[source]
        source: Option<Cause>,
    },
    /// Google refused a relayed native call; its status and error object, as they came.
    #[error("upstream answered {status}: {message}")]
    UpstreamRefused {
        status: u16,
        message: String,
        error: Value,
    },
    /// A signed message (Google's batch webhook) whose signature or age does not hold.
    #[error("{message}")]
    SignatureRefused { message: &'static str },
    /// The workers that took an async request stopped that many times.
    #[error("the workers running the request stopped {attempts} times")]
    Abandoned { attempts: i64 },
    /// Step `step` of a story of `steps`; the earlier ones were done.
    #[error("story step {step} of {steps}")]
    StoryStep {
        step: usize,
        steps: usize,
        #[source]
        error: Box<GenerationError>,
    },
    /// Item `index` of a batch.
    #[error("item {index}")]
    Item {
        index: usize,
        #[source]
        error: Box<GenerationError>,
    },
    /// A request stored before typed work whose body the HTTP layer refused as it read it.
    #[error("a request stored before typed work was refused")]
    LegacyBody(#[source] Cause),
    #[error(transparent)]
    Provider(#[from] ProviderError),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A fault of ours: `context` says where, `source` why.
    #[error("{context}")]
    Internal {
        context: String,
        #[source]
        source: Option<Cause>,
    },
}

impl GenerationError {
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        Self::Invalid {
            message: message.into(),
            details: Map::new(),
            source: None,
        }
        .detail("field", field)
    }

    pub fn not_found(what: &str) -> Self {
        Self::NotFound {
            message: format!("{what} was not found."),
        }
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        Self::Conflict {
            message: message.into(),
            details: Map::new(),
            retry_after_secs: None,
        }
    }

    pub fn session_full(message: &str) -> Self {
        Self::SessionFull {
            message: message.to_owned(),
            details: Map::new(),
        }
    }

    pub fn internal(context: impl Into<String>) -> Self {
        Self::Internal {
            context: context.into(),
            source: None,
        }
    }

    /// For `map_err`: a fault of ours while doing `context`, caused by the error mapped.
    pub fn failed<E: Into<Cause>>(context: &'static str) -> impl FnOnce(E) -> Self {
        move |e| Self::internal(context).caused_by(e)
    }

    /// Adds `key` to the details of an error that has them. The others have none, and a
    /// detail given to one would be lost: debug builds (the tests) refuse that outright.
    pub fn detail(mut self, key: &str, value: impl Into<Value>) -> Self {
        debug_assert!(
            matches!(
                self,
                Self::Invalid { .. } | Self::Conflict { .. } | Self::SessionFull { .. }
            ),
            "the detail {key:?} would be lost on {self:?}"
        );
        if let Self::Invalid { details, .. }
        | Self::Conflict { details, .. }
        | Self::SessionFull { details, .. } = &mut self
        {
            details.insert(key.to_owned(), value.into());
        }
        self
    }

    /// Keeps `cause` as the source of an error that takes one (debug builds refuse the
    /// others, whose cause would be lost).
    pub fn caused_by(mut self, cause: impl Into<Cause>) -> Self {
        debug_assert!(
            matches!(
                self,
                Self::Invalid { .. } | Self::BadResult { .. } | Self::Internal { .. }
            ),
            "a cause would be lost on {self:?}"
        );
        if let Self::Invalid { source, .. }
        | Self::BadResult { source, .. }
        | Self::Internal { source, .. } = &mut self
        {
            *source = Some(cause.into());
        }
        self
    }

    /// A fault of ours or a quota: another attempt at the same call would fail the same way.
    pub fn ends_attempts(&self) -> bool {
        match self {
            Self::Internal { .. } | Self::Abandoned { .. } | Self::TooManyPending { .. } => true,
            Self::Store(e) => !e.is_unavailable(),
            Self::Provider(e) => matches!(e, ProviderError::RateLimited { .. }),
            Self::UpstreamRefused { status, .. } => *status == 429,
            Self::Item { error, .. } | Self::StoryStep { error, .. } => error.ends_attempts(),
            _ => false,
        }
    }
}

#[cfg(test)]
impl GenerationError {
    /// The details of an invalid input, a conflict or a full session.
    pub fn details(&self) -> &Details {
        match self {
            Self::Invalid { details, .. }
            | Self::Conflict { details, .. }
            | Self::SessionFull { details, .. } => details,
            other => panic!("{other:?} has no details"),
        }
    }
}

//! The one error table: every failure a client can see is an [`ApiError`] whose
//! [`ErrorKind`] fixes the HTTP status and the `error` string (docs/api.md#errors).
//!
//! Layers below the HTTP edge fail in their own terms (`StoreError`, `ProviderError`,
//! `GenerationError`); the `From` impls at the end of this file are the one mapping of
//! each onto the table, used by handlers (`?`) and by the async worker's stored bodies.
//!
//! Handlers return `Result<_, ApiError>`. `into_response` does not render the body
//! itself: it parks the error in the response extensions, and the request-context
//! middleware (`api::middleware::context`) renders it with the request id and logs 5xx causes
//! once, at the edge.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use crate::generation::GenerationError;
use crate::provider::ProviderError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    InvalidRequest,
    Unauthorized,
    /// The key may not use this endpoint group or model (its scopes).
    Forbidden,
    /// The key's spending limit cannot cover the call's worst-case cost.
    BudgetExceeded,
    NotFound,
    MethodNotAllowed,
    FileTooLarge,
    /// A chat session has reached its turn or byte bound.
    SessionFull,
    /// A concurrent change won (for example two messages to one session at once).
    Conflict,
    ContentBlocked,
    NoImageGenerated,
    RateLimited,
    ServerError,
    UpstreamError,
    UpstreamUnavailable,
    /// This instance's memory for decoded images stayed taken past the wait deadline.
    Busy,
    UpstreamTimeout,
    /// The database (or another store every request needs) is unreachable; retry later.
    StorageUnavailable,
    /// A signed link whose time has passed (`/v1/files/…`).
    LinkExpired,
    /// A signed link whose signature does not match.
    InvalidSignature,
    /// `GET /ready` when storage or the upstream configuration is not usable.
    NotReady,
}

impl ErrorKind {
    pub fn status(self) -> StatusCode {
        match self {
            Self::InvalidRequest => StatusCode::BAD_REQUEST,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::Forbidden => StatusCode::FORBIDDEN,
            // 402, not 429: waiting a minute does not help, and clients that retry 429s
            // must not retry this until the period resets (`details.resets_at`).
            Self::BudgetExceeded => StatusCode::PAYMENT_REQUIRED,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::FileTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::SessionFull | Self::Conflict => StatusCode::CONFLICT,
            Self::ContentBlocked | Self::NoImageGenerated => StatusCode::UNPROCESSABLE_ENTITY,
            Self::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            Self::ServerError => StatusCode::INTERNAL_SERVER_ERROR,
            Self::UpstreamError => StatusCode::BAD_GATEWAY,
            Self::UpstreamUnavailable | Self::Busy => StatusCode::SERVICE_UNAVAILABLE,
            Self::UpstreamTimeout => StatusCode::GATEWAY_TIMEOUT,
            Self::NotReady | Self::StorageUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::LinkExpired => StatusCode::GONE,
            Self::InvalidSignature => StatusCode::FORBIDDEN,
        }
    }

    pub fn code(self) -> &'static str {
        match self {
            Self::InvalidRequest => "invalid_request",
            Self::Unauthorized => "unauthorized",
            Self::Forbidden => "forbidden",
            Self::BudgetExceeded => "budget_exceeded",
            Self::NotFound => "not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::FileTooLarge => "file_too_large",
            Self::SessionFull => "session_full",
            Self::Conflict => "conflict",
            Self::ContentBlocked => "content_blocked",
            Self::NoImageGenerated => "no_image_generated",
            Self::RateLimited => "rate_limit_exceeded",
            Self::ServerError => "server_error",
            Self::UpstreamError => "upstream_error",
            Self::UpstreamUnavailable => "upstream_unavailable",
            Self::Busy => "server_busy",
            Self::UpstreamTimeout => "upstream_timeout",
            Self::NotReady => "not_ready",
            Self::StorageUnavailable => "storage_unavailable",
            Self::LinkExpired => "link_expired",
            Self::InvalidSignature => "invalid_signature",
        }
    }
}

#[derive(Debug, Clone)]
pub struct ApiError {
    pub kind: ErrorKind,
    pub message: String,
    pub details: Map<String, Value>,
    /// Seconds for the `Retry-After` header (429 and some 503s).
    pub retry_after: Option<u64>,
    /// What went wrong internally; logged under the request id, never sent to the client.
    pub cause: Option<String>,
}

impl ApiError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            details: Map::new(),
            retry_after: None,
            cause: None,
        }
    }

    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidRequest, message).detail("field", field)
    }

    pub fn not_found(what: &str) -> Self {
        Self::new(ErrorKind::NotFound, format!("{what} was not found."))
    }

    /// A fault of ours: the client gets a generic message, the log gets `cause`.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        Self::new(
            ErrorKind::ServerError,
            "The server encountered an internal error. Please retry later.",
        )
        .caused_by(cause)
    }

    pub fn detail(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.details.insert(key.to_owned(), value.into());
        self
    }

    pub fn caused_by(mut self, cause: impl std::fmt::Display) -> Self {
        self.cause = Some(cause.to_string());
        self
    }

    pub fn retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds);
        self.details
            .insert("retry_after_seconds".into(), json!(seconds));
        self
    }

    /// The error as item `index` of a batch: named in the message and the details.
    pub fn for_item(mut self, index: usize) -> Self {
        self.message = format!("Item {index}: {}", self.message);
        self.details.insert("item".into(), json!(index));
        self
    }

    /// The error body of imagegate's own routes (docs/api.md#errors).
    pub fn body(&self, request_id: &str) -> Value {
        let mut body = json!({
            "error": self.kind.code(),
            "message": self.message,
            "request_id": request_id,
        });
        if !self.details.is_empty() {
            body["details"] = Value::Object(self.details.clone());
        }
        body
    }
}

/// Which client a route serves, and so which error shape it answers in: imagegate's
/// own (docs/api.md#errors), OpenAI's on `/v1/images/*`, Google's `google.rpc.Status`
/// envelope on `/v1beta/*`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Surface {
    Contract,
    OpenAi,
    Google,
}

impl Surface {
    /// As [`Surface::of_path`], except that `/v1/models…` (claimed by OpenAI's SDK and
    /// by google-genai, which defaults to `v1`) is Google's when the key came Google's
    /// way or the path names a Gemini method (`…:generateContent`).
    pub fn of_request(path: &str, google_key: bool) -> Self {
        if path == "/v1/models" || path.starts_with("/v1/models/") {
            if google_key || path.contains(':') {
                return Self::Google;
            }
            return Self::OpenAi;
        }
        Self::of_path(path)
    }

    pub fn of_path(path: &str) -> Self {
        if path.starts_with("/v1/") {
            Self::OpenAi
        } else if path.starts_with("/v1beta/") {
            Self::Google
        } else {
            Self::Contract
        }
    }
}

impl ApiError {
    pub fn body_for(&self, surface: Surface, request_id: &str) -> Value {
        match surface {
            Surface::Contract => self.body(request_id),
            Surface::OpenAi => json!({"error": {
                "message": self.message,
                "type": match self.kind {
                    ErrorKind::Unauthorized => "authentication_error",
                    ErrorKind::Forbidden => "permission_error",
                    ErrorKind::BudgetExceeded => "insufficient_quota",
                    ErrorKind::RateLimited => "rate_limit_error",
                    k if k.status().is_server_error() => "server_error",
                    _ => "invalid_request_error",
                },
                "param": self.details.get("field").cloned().unwrap_or(Value::Null),
                "code": self.kind.code(),
            }}),
            Surface::Google => {
                let status = match self.kind {
                    ErrorKind::Unauthorized => "UNAUTHENTICATED",
                    ErrorKind::Forbidden => "PERMISSION_DENIED",
                    ErrorKind::BudgetExceeded => "RESOURCE_EXHAUSTED",
                    ErrorKind::NotFound => "NOT_FOUND",
                    ErrorKind::RateLimited => "RESOURCE_EXHAUSTED",
                    ErrorKind::ContentBlocked | ErrorKind::NoImageGenerated => {
                        "FAILED_PRECONDITION"
                    }
                    ErrorKind::UpstreamUnavailable | ErrorKind::StorageUnavailable => "UNAVAILABLE",
                    ErrorKind::InvalidSignature => "PERMISSION_DENIED",
                    ErrorKind::UpstreamTimeout => "DEADLINE_EXCEEDED",
                    k if k.status().is_server_error() => "INTERNAL",
                    _ => "INVALID_ARGUMENT",
                };
                let mut details = vec![json!({
                    "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                    "reason": self.kind.code().to_ascii_uppercase(),
                    "domain": "imagegate",
                    "metadata": {"request_id": request_id},
                })];
                if let Some(seconds) = self.retry_after {
                    details.push(json!({"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": format!("{seconds}s")}));
                }
                json!({"error": {"code": self.kind.status().as_u16(), "message": self.message, "status": status, "details": details}})
            }
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.kind.code(), self.message)
    }
}

impl std::error::Error for ApiError {}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = self.kind.status().into_response();
        response.extensions_mut().insert(self);
        response
    }
}

/// Seconds a key at its cap of pending batch items is asked to wait.
const BATCH_CAP_RETRY_AFTER_SECS: u64 = 60;

/// Key management's refusals (`auth::error`): a bad setting is a 400 naming the field, a
/// missing key a 404 (with `revoked` when it was revoked meanwhile), a second rotation a 409.
impl From<crate::auth::error::KeyError> for ApiError {
    fn from(e: crate::auth::error::KeyError) -> Self {
        use crate::auth::error::KeyError;
        let message = e.to_string();
        match e {
            KeyError::Invalid { details, .. } => {
                let mut error = ApiError::new(ErrorKind::InvalidRequest, message);
                error.details = details;
                error
            }
            KeyError::NotFound { revoked } => {
                let error = ApiError::new(ErrorKind::NotFound, message);
                if revoked {
                    error.detail("revoked", true)
                } else {
                    error
                }
            }
            KeyError::AlreadyReplaced => ApiError::new(ErrorKind::Conflict, message),
            KeyError::Store(e) => e.into(),
        }
    }
}

/// Seconds a client is asked to wait when storage is unreachable: long enough for a
/// database failover or restart, short enough that a blip costs little.
const STORAGE_RETRY_AFTER_SECS: u64 = 5;

/// A store's failure as an API error (docs/api.md#errors): unreachable storage is a 503 the
/// client may retry; bytes missing for a recorded image name the operator's fix;
/// everything else is our fault and says nothing more to the client. The cause, with
/// its whole chain, goes to the log.
impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> Self {
        use crate::store::StoreError;
        let cause = error_chain(&e);
        match e {
            e if e.is_unavailable() => ApiError::new(
                ErrorKind::StorageUnavailable,
                "The service's storage is unreachable right now. Please retry shortly.",
            )
            .retry_after(STORAGE_RETRY_AFTER_SECS)
            .caused_by(cause),
            StoreError::MissingBytes { .. } => ApiError::new(
                ErrorKind::ServerError,
                "The image is recorded but its bytes are missing from this server's image \
                 storage. The operator must give every instance the same image storage \
                 (object_store_url).",
            )
            .caused_by(cause),
            _ => ApiError::internal(cause),
        }
    }
}

/// A provider's failure as an API error: refusals and answers without an image are 422s;
/// upstream quota, overload and deadlines keep codes of their own.
impl From<ProviderError> for ApiError {
    fn from(err: ProviderError) -> Self {
        match err {
            ProviderError::Blocked {
                reason,
                prompt_blocked,
                message,
                ..
            } => {
                let what = if prompt_blocked {
                    "The prompt was blocked by the model's safety policy."
                } else {
                    "The model refused to generate this content."
                };
                let mut e = ApiError::new(ErrorKind::ContentBlocked, what)
                    .detail("reason", reason)
                    .detail("prompt_blocked", prompt_blocked);
                if let Some(m) = message {
                    e = e.detail("upstream_message", m);
                }
                e
            }
            ProviderError::NoImage {
                finish_reason,
                text,
                ..
            } => ApiError::new(
                ErrorKind::NoImageGenerated,
                "The model answered without an image.",
            )
            .detail("finish_reason", finish_reason)
            .detail("text", text.map_or(serde_json::Value::Null, Into::into)),
            ProviderError::Rejected { message } => ApiError::new(
                ErrorKind::InvalidRequest,
                "The model rejected the request as invalid.",
            )
            .detail("upstream_message", message),
            ProviderError::ModelNotFound { cause } => ApiError::new(
                ErrorKind::UpstreamError,
                "The upstream model is not available (retired or unknown upstream).",
            )
            .detail("upstream_status", 404)
            .caused_by(cause),
            ProviderError::RateLimited { retry_after_secs } => ApiError::new(
                ErrorKind::RateLimited,
                "The upstream model's quota is exhausted. Retry later.",
            )
            .detail("limit", "upstream_quota")
            .retry_after(retry_after_secs),
            ProviderError::Unavailable { status, cause } => ApiError::new(
                ErrorKind::UpstreamUnavailable,
                "The upstream model is unavailable or overloaded. Retry later.",
            )
            .detail("upstream_status", status)
            .caused_by(cause),
            ProviderError::Timeout { deadline_secs } => ApiError::new(
                ErrorKind::UpstreamTimeout,
                "The upstream model did not answer within the deadline.",
            )
            .detail("deadline_seconds", deadline_secs),
            ProviderError::BadResponse {
                status,
                message,
                cause,
            } => ApiError::new(ErrorKind::UpstreamError, message)
                .detail("upstream_status", status)
                .caused_by(cause),
        }
    }
}

/// The domain's failure as an API error (docs/api.md#errors): the one place each
/// [`GenerationError`] gets its status, `error` string, message, details and
/// `Retry-After`. The async worker's stored error bodies come from here too
/// ([`stored_body`]).
impl From<GenerationError> for ApiError {
    fn from(e: GenerationError) -> Self {
        use GenerationError as G;
        let with = |kind, message: String, details| ApiError {
            details,
            ..ApiError::new(kind, message)
        };
        match e {
            G::Invalid {
                message,
                details,
                source,
            } => {
                let e = with(ErrorKind::InvalidRequest, message, details);
                match source {
                    Some(cause) => e.caused_by(error_chain(&*cause)),
                    None => e,
                }
            }
            G::NotFound { message } => ApiError::new(ErrorKind::NotFound, message),
            G::Conflict {
                message,
                details,
                retry_after_secs,
            } => {
                let e = with(ErrorKind::Conflict, message, details);
                match retry_after_secs {
                    Some(seconds) => e.retry_after(seconds),
                    None => e,
                }
            }
            G::SessionFull { message, details } => with(ErrorKind::SessionFull, message, details),
            G::FileTooLarge { field, max_bytes } => ApiError::new(
                ErrorKind::FileTooLarge,
                format!(
                    "The file is too large. Maximum size is {} MB.",
                    max_bytes / (1024 * 1024)
                ),
            )
            .detail("field", field)
            .detail("max_bytes", max_bytes),
            G::Busy { retry_after_secs } => ApiError::new(
                ErrorKind::Busy,
                "The server is busy with other large images; retry shortly.",
            )
            .retry_after(retry_after_secs),
            G::ModelForbidden { model, allowed } => ApiError::new(
                ErrorKind::Forbidden,
                format!("This API key may not use the model {model:?}."),
            )
            .detail("model", model)
            .detail("allowed_models", allowed),
            G::BudgetExceeded {
                period,
                limit_usd,
                spent_usd,
                reserved_usd,
                resets_at,
            } => ApiError::new(
                ErrorKind::BudgetExceeded,
                format!(
                    "This API key's {period} budget of ${limit_usd:.2} cannot cover this call \
                     (worst case ${reserved_usd:.6})."
                ),
            )
            .detail("period", period)
            .detail("limit_usd", limit_usd)
            .detail("spent_usd", spent_usd)
            .detail("reserved_usd", reserved_usd)
            .detail("resets_at", resets_at),
            G::TooManyPending {
                max_pending_items,
                pending_items,
                count,
            } => ApiError::new(
                ErrorKind::RateLimited,
                format!(
                    "This key may have at most {max_pending_items} batch items pending; \
                     {pending_items} are, and this batch has {count}. Retry when a batch ends."
                ),
            )
            .detail("limit", "max_pending_batch_items")
            .detail("max_pending_items", max_pending_items)
            .detail("pending_items", pending_items)
            .retry_after(BATCH_CAP_RETRY_AFTER_SECS),
            G::NoImageToMeasure => ApiError::new(
                ErrorKind::NoImageGenerated,
                "The model returned no image to measure.",
            ),
            G::BadResult {
                message,
                upstream_message,
                source,
            } => {
                let mut e = ApiError::new(ErrorKind::UpstreamError, message);
                if let Some(m) = upstream_message {
                    e = e.detail("upstream_message", m);
                }
                match source {
                    Some(cause) => e.caused_by(error_chain(&*cause)),
                    None => e,
                }
            }
            G::UpstreamRefused {
                status,
                message,
                error,
            } => {
                let kind = match status {
                    400 => ErrorKind::InvalidRequest,
                    429 => ErrorKind::RateLimited,
                    503 => ErrorKind::UpstreamUnavailable,
                    _ => ErrorKind::UpstreamError,
                };
                ApiError::new(kind, message)
                    .detail("upstream_status", status)
                    .detail("upstream_error", error)
            }
            G::SignatureRefused { message } => ApiError::new(ErrorKind::Unauthorized, message),
            G::Abandoned { attempts } => ApiError::new(
                ErrorKind::ServerError,
                "The request could not be completed: the workers running it stopped repeatedly.",
            )
            .detail("attempts", attempts),
            G::StoryStep { step, steps, error } => ApiError::from(*error)
                .detail("step", step)
                .detail("completed_steps", step - 1)
                .detail("num_images", steps),
            G::Item { index, error } => ApiError::from(*error).for_item(index),
            // Only the HTTP layer's body parsing makes these, and it refuses in its own terms.
            G::LegacyBody(refusal) => match refusal.downcast::<ApiError>() {
                Ok(e) => *e,
                Err(other) => ApiError::internal(error_chain(&*other)),
            },
            G::Provider(e) => e.into(),
            G::Store(e) => e.into(),
            e @ G::Internal { .. } => ApiError::internal(error_chain(&e)),
        }
    }
}

/// The error body an async request or batch keeps for `GET /requests/{id}` (and its
/// webhook): what the same failure answers synchronously.
pub fn stored_body(e: GenerationError, request_id: &str) -> Value {
    ApiError::from(e).body(request_id)
}

/// An error and its sources, outermost first: `a: b: c`.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

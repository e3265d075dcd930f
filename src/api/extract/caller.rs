//! The `Caller` extractor: the caller the authentication layer (`api::middleware::auth`) put in
//! the request extensions after checking its key.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use crate::api::middleware::context::RequestId;
use crate::api::middleware::limits::ConcurrencyFull;
use crate::caller::{Caller, RequestContext};
use crate::error::{ApiError, ErrorKind};
use crate::limits::{Budget, Slot};

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        if let Some(ConcurrencyFull(refusal)) = parts.extensions.get::<ConcurrencyFull>() {
            return Err(refusal.clone());
        }
        // Absent only on a public route, which must not act for anyone: fail closed.
        parts.extensions.get::<Caller>().cloned().ok_or_else(|| {
            ApiError::new(ErrorKind::Unauthorized, "This endpoint needs an API key.")
                .caused_by("a public route asked for a caller")
        })
    }
}

impl<S: Send + Sync> FromRequestParts<S> for RequestContext {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let request_id = parts
            .extensions
            .get::<RequestId>()
            .map(|r| r.0.clone())
            .ok_or_else(|| ApiError::internal("request id middleware missing"))?;
        let caller = Caller::from_request_parts(parts, state).await?;
        Ok(Self {
            request_id,
            caller,
            slot: parts.extensions.get::<Slot>().cloned(),
            budget: parts.extensions.get::<Budget>().cloned(),
        })
    }
}

/// The context of a request that may be queued: like [`RequestContext`], but it comes
/// through when the key's in-flight slots are taken, carrying the refusal, because async
/// work waits for its slot in the queue instead.
pub struct Queueable {
    pub ctx: RequestContext,
    pub refused: Option<ApiError>,
}

impl<S: Send + Sync> FromRequestParts<S> for Queueable {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let refused = parts
            .extensions
            .remove::<ConcurrencyFull>()
            .map(|ConcurrencyFull(e)| e);
        let ctx = RequestContext::from_request_parts(parts, state).await?;
        Ok(Self { ctx, refused })
    }
}

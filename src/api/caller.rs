//! The `Caller` extractor. The authentication layer puts the caller in the request
//! extensions; without it (no key configured), the caller is identified by a hash of
//! its bearer token, so that what one token creates stays invisible to another.

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use sha2::{Digest, Sha256};

use crate::api::context::RequestId;
use crate::caller::{Caller, RequestContext};
use crate::error::ApiError;

fn bearer(parts: &Parts) -> Option<&str> {
    let value = parts.headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        if let Some(caller) = parts.extensions.get::<Caller>() {
            return Ok(caller.clone());
        }
        let key_id = match bearer(parts) {
            Some(token) => format!(
                "tok_{}",
                &hex::encode(Sha256::digest(token.as_bytes()))[..16]
            ),
            None => "anonymous".to_owned(),
        };
        Ok(Caller {
            key_id,
            tier: "paid".to_owned(),
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
        Ok(Self { request_id, caller })
    }
}

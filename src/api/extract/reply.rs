//! `Reply`: how a generation's caller asked to be answered, beyond its body.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};

use crate::api::middleware::origin::ORIGIN_HEADER;

pub struct Reply {
    /// The public origin links in the answer start with (`middleware::origin`).
    pub origin: String,
    /// `Accept: text/event-stream`: a story's steps as events, as each finishes.
    pub events: bool,
    /// RFC 7240 `Prefer: respond-async`: a 202 and a request to poll, as `"async": true`
    /// asks on the guide's endpoints (Google's body has no such field).
    pub prefers_async: bool,
}

impl<S: Send + Sync> FromRequestParts<S> for Reply {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let headers = &parts.headers;
        Ok(Self {
            origin: headers
                .get(ORIGIN_HEADER)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("http://localhost")
                .to_owned(),
            events: headers
                .get(header::ACCEPT)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.contains("text/event-stream")),
            prefers_async: prefers_async(headers),
        })
    }
}

fn prefers_async(headers: &HeaderMap) -> bool {
    headers
        .get_all("prefer")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|p| {
            p.split(';')
                .next()
                .is_some_and(|token| token.trim().eq_ignore_ascii_case("respond-async"))
        })
}

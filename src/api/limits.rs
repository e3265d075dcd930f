//! The limits layer: per-key requests in flight and requests per minute, by tier
//! (contract §5). Every authenticated response, errors included, says where the key
//! stands in `X-RateLimit-Limit`, `X-RateLimit-Remaining` and `X-RateLimit-Reset`
//! (seconds until a used request leaves the one-minute window).

use axum::extract::{Request, State};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::api::AppState;
use crate::caller::Caller;
use crate::error::{ApiError, ErrorKind};
use crate::limits::RateDecision;

/// What a client refused for concurrency is told to wait: in-flight requests end at
/// unknown times, and a second is short next to an image generation.
const CONCURRENCY_RETRY_SECS: u64 = 1;

pub async fn enforce(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let Some(caller) = request.extensions().get::<Caller>().cloned() else {
        // Public routes: the authentication layer let them through without a caller.
        return next.run(request).await;
    };
    let access = &state.access;
    let tier = access.tiers.for_tier(&caller.tier);
    let now = access.clock.now_ms();
    // Reading an async request's status or a stored image is not a new piece of work:
    // counting polls against 15 a minute would starve the free tier's own async requests.
    let path = request.uri().path();
    if request.method() == axum::http::Method::GET
        && (path.starts_with("/requests/") || path.starts_with("/images/"))
    {
        let window = access
            .rate
            .peek(&caller.key_id, tier.requests_per_minute, now)
            .await;
        return with_window(next.run(request).await, window);
    }
    // Concurrency first, so a request refused for it does not use up a minute slot.
    let Some(permit) = access
        .concurrency
        .try_acquire(&caller.key_id, tier.max_concurrent)
        .await
    else {
        let window = access
            .rate
            .peek(&caller.key_id, tier.requests_per_minute, now)
            .await;
        let refusal = ApiError::new(
            ErrorKind::RateLimited,
            format!(
                "Too many requests in flight for this key: at most {} at a time. Retry when one finishes.",
                tier.max_concurrent
            ),
        )
        .detail("limit", "concurrency")
        .detail("max_concurrent", tier.max_concurrent)
        .retry_after(CONCURRENCY_RETRY_SECS);
        return with_window(refusal.into_response(), window);
    };
    let window = access
        .rate
        .acquire(&caller.key_id, tier.requests_per_minute, now)
        .await;
    if !window.allowed {
        let refusal = ApiError::new(
            ErrorKind::RateLimited,
            format!(
                "Rate limit exceeded for this key: {} requests per minute.",
                tier.requests_per_minute
            ),
        )
        .detail("limit", "requests_per_minute")
        .detail("requests_per_minute", tier.requests_per_minute)
        .retry_after(window.reset_after_secs().max(1));
        return with_window(refusal.into_response(), window);
    }
    let response = next.run(request).await;
    // Released as soon as the response exists, before its body is written: a client that
    // waits for one answer before sending the next never finds its own slot still taken.
    drop(permit);
    with_window(response, window)
}

fn with_window(mut response: Response, window: RateDecision) -> Response {
    let headers = response.headers_mut();
    headers.insert("x-ratelimit-limit", HeaderValue::from(window.limit));
    headers.insert("x-ratelimit-remaining", HeaderValue::from(window.remaining));
    headers.insert(
        "x-ratelimit-reset",
        HeaderValue::from(window.reset_after_secs()),
    );
    response
}

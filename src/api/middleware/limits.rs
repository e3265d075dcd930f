//! The limits layer: per-key requests in flight and upstream generations per minute, by
//! tier (docs/api.md#keys-and-limits). Every authenticated response, errors included,
//! says where the key stands in `X-RateLimit-Limit`, `X-RateLimit-Remaining` and
//! `X-RateLimit-Reset` (seconds until a used unit leaves the one-minute window).
//!
//! The in-flight slot taken here is handed to the request's work ([`Slot`] in the
//! request context): it stays taken until the work's upstream calls end, however the
//! client behaves. The minute's budget is charged by the work itself with its cost (a
//! 6-step story costs 6) before any upstream call; requests that make no generation
//! cost one, charged here once they are answered.

use axum::extract::{Request, State};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::api::AppState;
use crate::caller::Caller;
use crate::error::{ApiError, ErrorKind};
use crate::limits::{Budget, RateDecision, Slot};

/// What a client refused for concurrency is told to wait: in-flight requests end at
/// unknown times, and a second is short next to an image generation.
const CONCURRENCY_RETRY_SECS: u64 = 1;

pub async fn enforce(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let Some(caller) = request.extensions().get::<Caller>().cloned() else {
        // Public routes: the authentication layer let them through without a caller.
        return next.run(request).await;
    };
    let access = &state.access;
    let mut tier = access.tiers.for_tier(&caller.tier);
    // A key's own limits, when it has them, replace its tier's.
    if let Some(rpm) = caller.settings.requests_per_minute {
        tier.requests_per_minute = rpm;
    }
    if let Some(n) = caller.settings.max_concurrent {
        tier.max_concurrent = n;
    }
    let now = access.clock.now_ms();
    // Reading an async request's status or a stored image is not a new piece of work:
    // counting polls against 15 a minute would starve the free tier's own async requests.
    let path = request.uri().path();
    if request.method() == axum::http::Method::GET
        && (path.starts_with("/requests/")
            || path.starts_with("/images/")
            || path.starts_with("/batches"))
    {
        let window = access
            .rate
            .peek(&caller.key_id, tier.requests_per_minute, now)
            .await;
        return with_window(next.run(request).await, window);
    }
    // Concurrency first, so a request refused for it does not use up a minute slot.
    let permit = access
        .concurrency
        .try_acquire(&caller.key_id, tier.max_concurrent)
        .await;
    let window = access
        .rate
        .peek(&caller.key_id, tier.requests_per_minute, now)
        .await;
    let mut request = request;
    let slot = match permit {
        Some(permit) => Some(Slot::new(permit)),
        None => {
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
            // Async work is queued even when the key's slots are taken (it waits for one
            // in the queue), and only its handler knows whether a POST is async: it goes
            // on, carrying the refusal every other use of the request answers with.
            if request.method() != axum::http::Method::POST {
                return with_window(refusal.into_response(), window);
            }
            request.extensions_mut().insert(ConcurrencyFull(refusal));
            None
        }
    };
    if !window.allowed {
        return with_window(over_budget(window, 1).into_response(), window);
    }
    let clock = access.clock.clone();
    let budget = Budget::new(
        access.rate.clone(),
        &caller.key_id,
        tier.requests_per_minute,
        move || clock.now_ms(),
    );
    if let Some(slot) = &slot {
        request.extensions_mut().insert(slot.clone());
    }
    request.extensions_mut().insert(budget.clone());
    let response = next.run(request).await;
    let window = match (budget.decision(), &slot) {
        (Some(decision), _) => decision,
        // Refused for concurrency: not counted.
        (None, None) => window,
        // No work was charged: the request costs one unit.
        (None, Some(_)) => match budget.charge(1).await {
            Ok(decision) | Err(decision) => decision,
        },
    };
    // This layer's hold ends with the response; the work holds its own until it ends.
    drop(slot);
    let mut response = with_window(response, window);
    if caller.budgeted
        && let Some(spending) = state.generator.spending()
        && let Some(left) = spending.remaining_usd(&caller.key_id).await
        && let Ok(value) = HeaderValue::from_str(&format!("{left:.6}"))
    {
        response
            .headers_mut()
            .insert("x-imagegate-budget-remaining", value);
    }
    response
}

/// A request that came through without an in-flight slot, and the 429 it gets unless
/// it turns out to be async work (which waits for a slot in the queue).
#[derive(Debug, Clone)]
pub struct ConcurrencyFull(pub ApiError);

/// The 429 for a request whose `cost` does not fit what is left of the key's minute.
pub fn over_budget(window: RateDecision, cost: u32) -> ApiError {
    let mut refusal = ApiError::new(
        ErrorKind::RateLimited,
        format!(
            "Rate limit exceeded for this key: {} upstream generations per minute.",
            window.limit
        ),
    )
    .detail("limit", "requests_per_minute")
    .detail("requests_per_minute", window.limit)
    .retry_after(window.reset_after_secs().max(1));
    if cost > 1 {
        refusal = refusal
            .detail("cost", cost)
            .detail("remaining", window.remaining);
    }
    refusal
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

//! The outermost middleware: gives every request its id, renders every error in the
//! contract's shape with that id, sets `X-Request-Id`, counts the request for `/metrics`
//! and `/stats`, and writes one log line per request. Causes of 5xx errors are logged
//! here, once; clients see generic messages.
//!
//! Every request runs in a `request` span carrying `request_id`, `method`, `path`,
//! `endpoint` (the route template), `key_id` (never the key), `model`, `status` and
//! `duration_ms`. Nothing here logs bodies, headers or query strings: those carry image
//! bytes, base64 and keys.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tracing::Instrument as _;
use tracing::field::Empty;

use crate::caller::Caller;
use crate::error::{ApiError, ErrorKind, Surface};
use crate::ids;
use crate::monitoring::{Metrics, Monitoring};

/// Routes probed every few seconds by load balancers and scrapers; their line is logged
/// at debug level so that it does not drown the requests that matter.
const PROBES: &[&str] = &["/health", "/ready", "/metrics"];

/// The caller's key id, handed from [`record_caller`] out to [`request_context`].
#[derive(Debug, Clone)]
struct CallerKey(String);

/// The id of the request being served, available to handlers as an extension.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

pub async fn request_context(
    State(monitoring): State<Arc<Monitoring>>,
    mut request: Request,
    next: Next,
) -> Response {
    // A replayed async request keeps the id it was accepted under.
    let id = match request.extensions().get::<RequestId>() {
        Some(existing) => existing.0.clone(),
        None => ids::new_id("req"),
    };
    request.extensions_mut().insert(RequestId(id.clone()));
    // The route template, never the raw path, as a metrics label: ids in paths would make
    // the number of series unbounded.
    let endpoint = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", MatchedPath::as_str)
        .to_owned();
    let method = request.method().as_str().to_owned();
    // The path only: query strings may carry keys.
    let span = tracing::info_span!(
        "request",
        request_id = %id,
        method = %method,
        path = %request.uri().path(),
        endpoint = %endpoint,
        key_id = Empty,
        model = Empty,
        status = Empty,
        duration_ms = Empty,
    );
    let surface = Surface::of_request(
        request.uri().path(),
        crate::api::middleware::auth::sends_google_key(&request),
    );
    // Inner layers that store an error for later (idempotent replay) render it as this
    // surface would.
    request.extensions_mut().insert(surface);
    let in_flight = monitoring.metrics.in_flight();
    let started = Instant::now();
    let mut response = next.run(request).instrument(span.clone()).await;
    let _entered = span.enter();
    // Before rendering: an error is rendered into a new response, without these extensions.
    let key_id = response.extensions_mut().remove::<CallerKey>().map(|k| k.0);
    let mut response = render_error(response, &id, &monitoring.metrics, surface);
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert("x-request-id", value);
    }
    let status = response.status().as_u16();
    let elapsed = started.elapsed().as_secs_f64();
    if let Some(model) = response
        .headers()
        .get("x-imagegate-model")
        .and_then(|v| v.to_str().ok())
    {
        span.record("model", model);
    }
    span.record("status", status);
    span.record("duration_ms", elapsed * 1000.0);
    drop(in_flight);
    monitoring.request_finished(&endpoint, &method, key_id.as_deref(), status, elapsed);
    if PROBES.contains(&endpoint.as_str()) && status < 400 {
        tracing::debug!("request finished");
    } else {
        tracing::info!("request finished");
    }
    response
}

/// Runs inside authentication: records who is calling on the request span, and hands the
/// key id out to [`request_context`] for `/stats`.
pub async fn record_caller(request: Request, next: Next) -> Response {
    let key_id = request
        .extensions()
        .get::<Caller>()
        .map(|c| c.key_id.clone());
    if let Some(key_id) = &key_id {
        tracing::Span::current().record("key_id", key_id.as_str());
    }
    let mut response = next.run(request).await;
    if let Some(key_id) = key_id {
        response.extensions_mut().insert(CallerKey(key_id));
    }
    response
}

fn render_error(
    mut response: Response,
    request_id: &str,
    metrics: &Metrics,
    surface: Surface,
) -> Response {
    let error = match response.extensions_mut().remove::<ApiError>() {
        Some(error) => error,
        None if is_foreign_error(&response) => generic_error(response.status()),
        None => return response,
    };
    if error.kind == ErrorKind::RateLimited {
        // Our own limits name themselves in `details.limit`; a 429 without one is the
        // upstream's quota, passed on after retries.
        let limit = error.details.get("limit").and_then(|v| v.as_str());
        metrics.rate_limited(limit.unwrap_or("upstream"));
    }
    if error.kind.status().is_server_error() {
        tracing::error!(error = %error, cause = error.cause.as_deref().unwrap_or("-"), "request failed");
    } else if let Some(cause) = &error.cause {
        tracing::info!(error = %error, cause = %cause, "request refused");
    }
    let mut rendered = (
        error.kind.status(),
        axum::Json(error.body_for(surface, request_id)),
    )
        .into_response();
    // Keep headers set by inner layers (rate-limit counters, for example).
    for (name, value) in response.headers() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            rendered.headers_mut().insert(name.clone(), value.clone());
        }
    }
    if let Some(seconds) = error.retry_after {
        rendered
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    rendered
}

/// An error response produced outside our handlers (axum's own 405, a rejection) whose
/// body is not already ours.
fn is_foreign_error(response: &Response) -> bool {
    let status = response.status();
    let json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    (status.is_client_error() || status.is_server_error()) && !json
}

fn generic_error(status: StatusCode) -> ApiError {
    match status {
        StatusCode::NOT_FOUND => ApiError::new(ErrorKind::NotFound, "No such endpoint."),
        StatusCode::METHOD_NOT_ALLOWED => ApiError::new(
            ErrorKind::MethodNotAllowed,
            "This endpoint does not accept that HTTP method.",
        ),
        StatusCode::PAYLOAD_TOO_LARGE => {
            ApiError::new(ErrorKind::FileTooLarge, "The request body is too large.")
        }
        s if s.is_client_error() => {
            ApiError::new(ErrorKind::InvalidRequest, "The request is malformed.")
        }
        s => ApiError::internal(format!("unrendered {s} response")),
    }
}

/// For `CatchPanicLayer`: a panic becomes a 500 in the contract's shape.
pub fn panic_response(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    ApiError::internal("handler panicked").into_response()
}

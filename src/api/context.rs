//! The outermost middleware: gives every request its id, renders every error in the
//! contract's shape with that id, sets `X-Request-Id`, and writes one log line per
//! request. Causes of 5xx errors are logged here, once; clients see generic messages.

use std::time::Instant;

use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tracing::Instrument as _;

use crate::error::{ApiError, ErrorKind};
use crate::ids;

/// The id of the request being served, available to handlers as an extension.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

pub async fn request_context(mut request: Request, next: Next) -> Response {
    let id = ids::new_id("req");
    request.extensions_mut().insert(RequestId(id.clone()));
    // The path only: query strings may carry keys.
    let span = tracing::info_span!(
        "request",
        request_id = %id,
        method = %request.method(),
        path = %request.uri().path(),
    );
    let started = Instant::now();
    let response = next.run(request).instrument(span.clone()).await;
    let _entered = span.enter();
    let mut response = render_error(response, &id);
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert("x-request-id", value);
    }
    tracing::info!(
        status = response.status().as_u16(),
        duration_ms = started.elapsed().as_secs_f64() * 1000.0,
        "request finished"
    );
    response
}

fn render_error(mut response: Response, request_id: &str) -> Response {
    let error = match response.extensions_mut().remove::<ApiError>() {
        Some(error) => error,
        None if is_foreign_error(&response) => generic_error(response.status()),
        None => return response,
    };
    if error.kind.status().is_server_error() {
        tracing::error!(error = %error, cause = error.cause.as_deref().unwrap_or("-"), "request failed");
    } else if let Some(cause) = &error.cause {
        tracing::info!(error = %error, cause = %cause, "request refused");
    }
    let mut rendered = (error.kind.status(), axum::Json(error.body(request_id))).into_response();
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

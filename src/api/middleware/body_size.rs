//! A body that announces itself as over the limit is refused before a byte is read.

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::{ApiError, ErrorKind};

pub async fn refuse_declared_oversize(
    State(max): State<usize>,
    request: Request,
    next: Next,
) -> Response {
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    match declared {
        Some(len) if len > max as u64 => {
            ApiError::new(ErrorKind::FileTooLarge, "The request body is too large.")
                .detail("max_bytes", max)
                .into_response()
        }
        _ => next.run(request).await,
    }
}

//! `JsonBody<T>`: a JSON extractor whose every failure is a contract error naming the
//! field (`details.field`), with a body limit that stops reading at the limit.

use axum::body::Body;
use axum::extract::{FromRequest, Request};
use axum::http::header;
use bytes::Bytes;
use http_body_util::{BodyExt as _, Limited};
use serde::de::DeserializeOwned;

use crate::api::AppState;
use crate::error::{ApiError, ErrorKind};

pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, ApiError> {
        let is_json = request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                let mime = v
                    .split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_ascii_lowercase();
                mime == "application/json" || mime.ends_with("+json")
            });
        if !is_json {
            return Err(ApiError::new(
                ErrorKind::InvalidRequest,
                "Expected a JSON body with Content-Type: application/json.",
            )
            .detail("field", "Content-Type"));
        }
        let bytes = read_limited(request.into_body(), state.limits.max_json_bytes).await?;
        parse(&bytes).map(JsonBody)
    }
}

/// Reads a body, stopping at `limit` bytes with a 413 instead of reading the rest.
pub async fn read_limited(body: Body, limit: usize) -> Result<Bytes, ApiError> {
    Ok(Limited::new(body, limit)
        .collect()
        .await
        .map_err(|e| {
            if e.is::<http_body_util::LengthLimitError>() {
                ApiError::new(ErrorKind::FileTooLarge, "The request body is too large.")
                    .detail("max_bytes", limit)
            } else {
                ApiError::new(
                    ErrorKind::InvalidRequest,
                    "The request body could not be read.",
                )
                .caused_by(e)
            }
        })?
        .to_bytes())
}

pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(describe)?;
    de.end().map_err(|e| malformed(&e))?;
    Ok(value)
}

fn malformed(e: &serde_json::Error) -> ApiError {
    ApiError::new(
        ErrorKind::InvalidRequest,
        "The request body is not valid JSON.",
    )
    .detail("line", e.line())
    .detail("column", e.column())
}

fn describe(e: serde_path_to_error::Error<serde_json::Error>) -> ApiError {
    let path = e.path().to_string();
    let inner = e.into_inner();
    if inner.is_syntax() || inner.is_eof() {
        return malformed(&inner);
    }
    let text = inner.to_string();
    // serde reports unknown fields by message only: "unknown field `x`, expected …".
    if let Some(name) = text
        .strip_prefix("unknown field `")
        .and_then(|rest| rest.split('`').next())
    {
        return ApiError::invalid(name, format!("Unknown field '{name}'."))
            .detail("reason", "unknown_field");
    }
    let field = if path == "." { "body".to_owned() } else { path };
    // Drop serde's " at line L column C" suffix; the field name says where.
    let reason = text.split(" at line ").next().unwrap_or(&text).to_owned();
    ApiError::invalid(&field, format!("Invalid value for '{field}': {reason}."))
}

//! `Idempotency-Key` on any POST (contract §5): the first result for a key and body is
//! stored for 24 hours and replayed to repeats, which neither call upstream nor are
//! charged again; the same key with a different body is refused. Identical requests
//! arriving together are run once (single flight within this process).

mod single_flight;

pub use single_flight::SingleFlight;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http_body_util::BodyExt as _;
use serde_json::Value;
use sha2::{Digest as _, Sha256};
use tracing::Instrument as _;

use crate::api::AppState;
use crate::api::context::RequestId;
use crate::caller::Caller;
use crate::error::{ApiError, ErrorKind};
use crate::store::idempotency::{IdempotentResult, StoredResponse};

pub const HEADER: &str = "idempotency-key";
/// How long a result is replayed (the common convention, e.g. Stripe's).
const TTL_MS: i64 = 24 * 60 * 60 * 1000;
const MAX_KEY_LEN: usize = 255;

pub async fn replay_or_run(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    if request.method() != Method::POST || !request.headers().contains_key(HEADER) {
        return next.run(request).await;
    }
    let Some(caller) = request.extensions().get::<Caller>().cloned() else {
        return next.run(request).await;
    };
    run_once(state, caller, request, next)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

async fn run_once(
    state: AppState,
    caller: Caller,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let key = idempotency_key(&request)?;
    let request_id = request
        .extensions()
        .get::<RequestId>()
        .map(|r| r.0.clone())
        .unwrap_or_default();
    let (parts, body) = request.into_parts();
    let body = read_body(body, state.max_body_bytes()).await?;
    let fingerprint = fingerprint(&parts, &body);
    let access = state.access.clone();
    let slot = access
        .single_flight
        .enter(format!("{}\n{key}", caller.key_id))
        .await;
    if let Some(found) = access
        .idempotency
        .get(&caller.key_id, &key, access.clock.now_ms())
        .await?
    {
        if found.fingerprint != fingerprint {
            return Err(ApiError::invalid(
                "Idempotency-Key",
                "This Idempotency-Key was already used with a different request in the last 24 hours.",
            ));
        }
        return Ok(replay(found.response, &request_id));
    }
    let request = Request::from_parts(parts, Body::from(body));
    // Its own task: a client that disconnects must not lose a result upstream has
    // already charged for, or its retry would pay again.
    // The request's span goes along, so its log lines keep the request id.
    let run = async move {
        let _slot = slot;
        let response = next.run(request).await;
        keep(&state, &caller, &key, fingerprint, response).await
    };
    crate::tasks::spawn(run.instrument(tracing::Span::current()))
        .await
        .map_err(ApiError::internal)
}

fn idempotency_key(request: &Request) -> Result<String, ApiError> {
    let invalid = || {
        ApiError::invalid(
            "Idempotency-Key",
            format!("Idempotency-Key must be 1 to {MAX_KEY_LEN} printable ASCII characters."),
        )
    };
    let value = request.headers().get(HEADER).ok_or_else(invalid)?;
    let key = value.to_str().map_err(|_| invalid())?.trim();
    let ok =
        !key.is_empty() && key.len() <= MAX_KEY_LEN && key.bytes().all(|b| b.is_ascii_graphic());
    if ok {
        Ok(key.to_owned())
    } else {
        Err(invalid())
    }
}

async fn read_body(body: Body, max: usize) -> Result<Bytes, ApiError> {
    match http_body_util::Limited::new(body, max).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e)
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            Err(
                ApiError::new(ErrorKind::FileTooLarge, "The request body is too large.")
                    .detail("max_bytes", max),
            )
        }
        Err(e) => Err(ApiError::new(
            ErrorKind::InvalidRequest,
            "The request body could not be read.",
        )
        .caused_by(e)),
    }
}

/// Stores the response unless it is worth retrying (5xx, 429), and hands it on.
async fn keep(
    state: &AppState,
    caller: &Caller,
    key: &str,
    fingerprint: String,
    response: Response,
) -> Response {
    let status = response.status();
    if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
        return response;
    }
    let (parts, body) = response.into_parts();
    let bytes = match body.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) => return ApiError::internal(format!("buffering a response: {e}")).into_response(),
    };
    let stored = match parts.extensions.get::<ApiError>() {
        // An error not yet rendered: store the body the client will see.
        Some(error) => StoredResponse {
            status: status.as_u16(),
            headers: vec![(
                header::CONTENT_TYPE.to_string(),
                "application/json".to_owned(),
            )],
            body: Bytes::from(error.body("").to_string()),
        },
        None => StoredResponse {
            status: status.as_u16(),
            headers: replayable_headers(&parts.headers),
            body: bytes.clone(),
        },
    };
    let now = state.access.clock.now_ms();
    let result = IdempotentResult {
        fingerprint,
        response: stored,
        created_at_ms: now,
        expires_at_ms: now + TTL_MS,
    };
    if let Err(e) = state
        .access
        .idempotency
        .put(&caller.key_id, key, &result, now)
        .await
    {
        // The client still gets its result; only a later repeat would run again.
        tracing::error!(error = %e, "could not store an idempotent result");
    }
    Response::from_parts(parts, Body::from(bytes))
}

/// Headers that describe the result; not those of this particular exchange.
fn replayable_headers(headers: &axum::http::HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .filter(|(name, _)| {
            let name = name.as_str();
            !matches!(
                name,
                "content-length" | "x-request-id" | "date" | "connection" | "transfer-encoding"
            ) && !name.starts_with("x-ratelimit-")
        })
        .filter_map(|(name, value)| Some((name.to_string(), value.to_str().ok()?.to_owned())))
        .collect()
}

/// The stored response, now answering request `request_id`: the body names this
/// request and says it was served from storage (`"cached": true`).
fn replay(stored: StoredResponse, request_id: &str) -> Response {
    let body = match serde_json::from_slice::<Value>(&stored.body) {
        Ok(Value::Object(mut object)) => {
            if object.contains_key("request_id") {
                object.insert("request_id".into(), Value::from(request_id));
            }
            if object.get("cached").is_some_and(Value::is_boolean) {
                object.insert("cached".into(), Value::Bool(true));
            }
            Bytes::from(Value::Object(object).to_string())
        }
        _ => stored.body,
    };
    let status = StatusCode::from_u16(stored.status).unwrap_or(StatusCode::OK);
    let mut response = (status, body).into_response();
    for (name, value) in &stored.headers {
        if let (Ok(name), Ok(value)) = (
            HeaderName::try_from(name.as_str()),
            HeaderValue::from_str(value),
        ) {
            response.headers_mut().insert(name, value);
        }
    }
    response
        .headers_mut()
        .insert("idempotent-replayed", HeaderValue::from_static("true"));
    response
}

/// What makes two requests "the same": method, path and query, media type and body.
/// Multipart boundaries are random per request, so they are hashed as one placeholder:
/// a client that rebuilds the same form for its retry still matches.
fn fingerprint(parts: &Parts, body: &[u8]) -> String {
    let content_type = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let media_type = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let mut hash = Sha256::new();
    for field in [
        parts.method.as_str(),
        parts.uri.path_and_query().map_or("", |p| p.as_str()),
        &media_type,
    ] {
        hash.update(field.as_bytes());
        hash.update(b"\n");
    }
    match boundary(content_type) {
        Some(boundary) if media_type.starts_with("multipart/") => {
            let mut rest = body;
            while let Some(at) = find(rest, boundary.as_bytes()) {
                hash.update(&rest[..at]);
                hash.update(b"\0boundary\0");
                rest = &rest[at + boundary.len()..];
            }
            hash.update(rest);
        }
        _ => hash.update(body),
    }
    hex::encode(hash.finalize())
}

fn boundary(content_type: &str) -> Option<String> {
    content_type.split(';').skip(1).find_map(|param| {
        let (name, value) = param.split_once('=')?;
        let value = value.trim().trim_matches('"');
        (name.trim().eq_ignore_ascii_case("boundary") && !value.is_empty())
            .then(|| value.to_owned())
    })
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    let (&first, tail) = needle.split_first()?;
    let mut from = 0;
    while let Some(offset) = haystack.get(from..)?.iter().position(|&b| b == first) {
        let at = from + offset;
        if haystack.get(at + 1..at + needle.len()) == Some(tail) {
            return Some(at);
        }
        from = at + 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(content_type: &str) -> Parts {
        let request = axum::http::Request::post("/edit-image")
            .header(header::CONTENT_TYPE, content_type)
            .body(())
            .unwrap();
        request.into_parts().0
    }

    #[test]
    fn a_form_rebuilt_with_a_new_boundary_has_the_same_fingerprint() {
        let form = |b: &str| {
            format!(
                "--{b}\r\ncontent-disposition: form-data; name=\"prompt\"\r\n\r\nhi\r\n--{b}--\r\n"
            )
        };
        let a = fingerprint(
            &parts("multipart/form-data; boundary=aaaa"),
            form("aaaa").as_bytes(),
        );
        let b = fingerprint(
            &parts("multipart/form-data; boundary=\"b1b1\""),
            form("b1b1").as_bytes(),
        );
        assert_eq!(a, b);
        let other = "--c\r\ncontent-disposition: form-data; name=\"prompt\"\r\n\r\nho\r\n--c--\r\n";
        assert_ne!(
            a,
            fingerprint(&parts("multipart/form-data; boundary=c"), other.as_bytes())
        );
    }

    #[test]
    fn json_bodies_differing_in_one_byte_differ() {
        let json = parts("application/json");
        assert_ne!(
            fingerprint(&json, b"{\"prompt\":\"a\"}"),
            fingerprint(&json, b"{\"prompt\":\"b\"}")
        );
        assert_eq!(
            fingerprint(&json, b"{}"),
            fingerprint(&parts("application/json; charset=utf-8"), b"{}")
        );
    }
}

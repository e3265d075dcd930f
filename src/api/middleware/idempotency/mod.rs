//! `Idempotency-Key` on any POST (docs/api.md#idempotency): the first result for a key and body is
//! stored for 24 hours and replayed to repeats, which neither call upstream nor are
//! charged again; the same key with a different body is refused. Identical requests
//! arriving together are run once: within this process by single flight, and across
//! instances sharing the database by a claim on the key, taken before running (one
//! atomic insert; the others wait for the stored result). A claim is a lease renewed
//! while the run lasts, so a runner that crashed blocks its key for one lease at most.
//! A request that waits longer than [`WAIT_FOR_RUNNER`] for another runner gets 409
//! `conflict` (`details.reason` `idempotency_in_progress`) with `Retry-After`.

mod single_flight;

pub use single_flight::SingleFlight;

use std::time::Duration;

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
use crate::api::middleware::context::RequestId;
use crate::caller::Caller;
use crate::error::{ApiError, ErrorKind, Surface};
use crate::store::idempotency::{Claim, IdempotentResult, StoredResponse};

pub const HEADER: &str = "idempotency-key";
/// How long a result is replayed (the common convention, e.g. Stripe's).
const TTL_MS: i64 = 24 * 60 * 60 * 1000;
const MAX_KEY_LEN: usize = 255;
/// How long a claim lasts unless renewed; renewed every third of it while the run goes
/// on, so only a runner that stopped (crashed, lost the database) lets it lapse.
const CLAIM_LEASE_MS: i64 = 30_000;
/// How long a repeat waits for another instance's runner before answering 409: longer
/// than a generation with its retries normally takes, short of common client timeouts.
pub const WAIT_FOR_RUNNER: Duration = Duration::from_secs(120);
/// How often a waiting repeat looks for the stored result.
const POLL: Duration = Duration::from_millis(100);

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
    let fingerprint = fingerprint(&parts, &body).await;
    let surface = parts
        .extensions
        .get::<Surface>()
        .copied()
        .unwrap_or(Surface::Contract);
    let access = state.access.clone();
    let slot = access
        .single_flight
        .enter(format!("{}\n{key}", caller.key_id))
        .await;
    let owner = crate::ids::new_id("run");
    if let Some(found) = claim_or_wait(&state, &caller, &key, &fingerprint, &owner).await? {
        return Ok(replay(found.response, &request_id));
    }
    let request = Request::from_parts(parts, Body::from(body));
    // Its own task: a client that disconnects must not lose a result upstream has
    // already charged for, or its retry would pay again.
    // The request's span goes along, so its log lines keep the request id.
    let run = async move {
        let _slot = slot;
        let response = run_holding_claim(&state, &caller, &key, &owner, next.run(request)).await;
        let response = keep(&state, &caller, &key, fingerprint, surface, response).await;
        // Stored (or not worth storing): others now find the result, or run it anew.
        if let Err(e) = access
            .idempotency
            .release(&caller.key_id, &key, &owner)
            .await
        {
            tracing::warn!(error = %e, "could not release an idempotency claim; it lapses");
        }
        response
    };
    crate::tasks::spawn(run.instrument(tracing::Span::current()))
        .await
        .map_err(ApiError::internal)
}

/// The stored result to replay, or `None` once this request holds the key's claim and
/// is to run. Waits (polling) while another runner, maybe on another instance, holds it.
async fn claim_or_wait(
    state: &AppState,
    caller: &Caller,
    key: &str,
    fingerprint: &str,
    owner: &str,
) -> Result<Option<IdempotentResult>, ApiError> {
    let access = &state.access;
    let stored = || async {
        let found = access
            .idempotency
            .get(&caller.key_id, key, access.clock.now_ms())
            .await?;
        match found {
            Some(found) if found.fingerprint != fingerprint => Err(reused_key()),
            found => Ok(found),
        }
    };
    let deadline = tokio::time::Instant::now() + WAIT_FOR_RUNNER;
    loop {
        if let Some(found) = stored().await? {
            return Ok(Some(found));
        }
        let now = access.clock.now_ms();
        let claim = access
            .idempotency
            .claim(
                &caller.key_id,
                key,
                fingerprint,
                owner,
                now,
                now + CLAIM_LEASE_MS,
            )
            .await?;
        match claim {
            Claim::Won => {
                // A runner may have stored its result and let go between the two looks.
                let found = stored().await;
                if !matches!(found, Ok(None))
                    && let Err(e) = access.idempotency.release(&caller.key_id, key, owner).await
                {
                    tracing::warn!(error = %e, "could not release an idempotency claim");
                }
                return found;
            }
            Claim::Held {
                fingerprint: Some(other),
            } if other != fingerprint => return Err(reused_key()),
            Claim::Held { .. } => {}
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(ApiError::new(
                ErrorKind::Conflict,
                "A request with this Idempotency-Key is still running. Retry later to get its result.",
            )
            .detail("reason", "idempotency_in_progress")
            .retry_after(1));
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Runs `work`, renewing the claim every third of its lease while it runs. A renewal
/// that fails is logged: the run goes on (upstream is already paid for), and at worst
/// the lease lapses and a waiting repeat runs the key a second time.
async fn run_holding_claim(
    state: &AppState,
    caller: &Caller,
    key: &str,
    owner: &str,
    work: impl std::future::Future<Output = Response>,
) -> Response {
    let every = Duration::from_millis(u64::try_from(CLAIM_LEASE_MS / 3).unwrap_or(10_000));
    let access = &state.access;
    tokio::pin!(work);
    loop {
        tokio::select! {
            response = &mut work => return response,
            () = tokio::time::sleep(every) => {
                let until = access.clock.now_ms() + CLAIM_LEASE_MS;
                match access.idempotency.renew(&caller.key_id, key, owner, until).await {
                    Ok(true) => {}
                    Ok(false) => tracing::warn!("an idempotency claim was taken over while running"),
                    Err(e) => tracing::warn!(error = %e, "could not renew an idempotency claim"),
                }
            }
        }
    }
}

fn reused_key() -> ApiError {
    ApiError::invalid(
        "Idempotency-Key",
        "This Idempotency-Key was already used with a different request in the last 24 hours.",
    )
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
    surface: Surface,
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
        // An error not yet rendered: store the body the client will see, in the shape
        // of the surface it called (OpenAI's, Google's or the contract's).
        Some(error) => StoredResponse {
            status: status.as_u16(),
            headers: vec![(
                header::CONTENT_TYPE.to_string(),
                "application/json".to_owned(),
            )],
            body: Bytes::from(error.body_for(surface, "").to_string()),
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
/// request and says it was served from storage (`"cached": true`). An accepted async
/// submission (it has a `status_url`) keeps naming the request that was queued: that is
/// the one whose status the client can follow.
fn replay(stored: StoredResponse, request_id: &str) -> Response {
    let body = match serde_json::from_slice::<Value>(&stored.body) {
        Ok(Value::Object(mut object)) => {
            if object.contains_key("request_id") && !object.contains_key("status_url") {
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
/// A form is compared by its parsed parts, each part's name, file name, type and the
/// hash of its bytes, in order: its boundary is random per request (a client rebuilding
/// the same form for its retry still matches), and no byte of a value is ever left out.
async fn fingerprint(parts: &Parts, body: &Bytes) -> String {
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
    let form = match multer::parse_boundary(content_type) {
        Ok(boundary) if media_type == "multipart/form-data" => form_digest(body, boundary).await,
        _ => None,
    };
    match form {
        Some(digest) => hash.update(digest),
        // Not a form, or one that does not parse (the route refuses it): the bytes.
        None => hash.update(body),
    }
    hex::encode(hash.finalize())
}

/// The parts of a form, each as name, file name, content type and SHA-256 of its bytes.
async fn form_digest(body: &Bytes, boundary: String) -> Option<Vec<u8>> {
    let stream =
        futures_util::stream::once(std::future::ready(Ok::<_, std::io::Error>(body.clone())));
    let mut form = multer::Multipart::new(stream, boundary);
    let mut digest = Sha256::new();
    while let Some(field) = form.next_field().await.ok()? {
        let describe = [
            field.name().unwrap_or(""),
            field.file_name().unwrap_or(""),
            field.content_type().map_or("", |m| m.essence_str()),
        ];
        for text in describe {
            digest.update((text.len() as u64).to_be_bytes());
            digest.update(text.as_bytes());
        }
        let bytes = field.bytes().await.ok()?;
        digest.update(Sha256::digest(&bytes));
    }
    Some(digest.finalize().to_vec())
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

    fn bytes(s: &str) -> Bytes {
        Bytes::from(s.to_owned())
    }

    #[tokio::test]
    async fn a_form_rebuilt_with_a_new_boundary_has_the_same_fingerprint() {
        let form = |b: &str| {
            format!(
                "--{b}\r\ncontent-disposition: form-data; name=\"prompt\"\r\n\r\nhi\r\n--{b}--\r\n"
            )
        };
        let a = fingerprint(
            &parts("multipart/form-data; boundary=aaaa"),
            &bytes(&form("aaaa")),
        )
        .await;
        let b = fingerprint(
            &parts("multipart/form-data; boundary=\"b1b1\""),
            &bytes(&form("b1b1")),
        )
        .await;
        assert_eq!(a, b);
        let other = "--c\r\ncontent-disposition: form-data; name=\"prompt\"\r\n\r\nho\r\n--c--\r\n";
        let other = fingerprint(&parts("multipart/form-data; boundary=c"), &bytes(other)).await;
        assert_ne!(a, other);
    }

    #[tokio::test]
    async fn prompts_that_differ_only_by_the_boundary_string_differ() {
        // Stripping the boundary string everywhere made these two the same request.
        let form = |b: &str, prompt: &str| {
            format!(
                "--{b}\r\ncontent-disposition: form-data; name=\"prompt\"\r\n\r\n{prompt}\r\n--{b}--\r\n"
            )
        };
        let cat = fingerprint(
            &parts("multipart/form-data; boundary=cat"),
            &bytes(&form("cat", "a cat on a mat")),
        )
        .await;
        let dog = fingerprint(
            &parts("multipart/form-data; boundary=dog"),
            &bytes(&form("dog", "a dog on a mat")),
        )
        .await;
        assert_ne!(cat, dog);
    }

    #[tokio::test]
    async fn json_bodies_differing_in_one_byte_differ() {
        let json = parts("application/json");
        assert_ne!(
            fingerprint(&json, &bytes("{\"prompt\":\"a\"}")).await,
            fingerprint(&json, &bytes("{\"prompt\":\"b\"}")).await
        );
        assert_eq!(
            fingerprint(&json, &bytes("{}")).await,
            fingerprint(&parts("application/json; charset=utf-8"), &bytes("{}")).await
        );
    }
}

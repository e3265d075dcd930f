//! `"async": true` on any generation endpoint (contract §5): the request is validated as
//! a synchronous one would be (everything short of the provider call), stored, and
//! answered with 202; a worker runs it later through the same routes. Also
//! `GET /requests/{id}`, `POST /requests/{id}/cancel` and `GET /webhooks/secret`.

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt as _;
use serde_json::{Value, json};

use crate::api::AppState;
use crate::api::context::RequestId;
use crate::caller::{Caller, DryRun};
use crate::error::{ApiError, ErrorKind};
use crate::imaging;
use crate::jobs::webhooks;

/// The generation routes (contract §2) that accept `async`.
fn is_generation(path: &str) -> bool {
    matches!(
        path,
        "/generate-image"
            | "/edit-image"
            | "/compose-images"
            | "/story/generate"
            | "/advanced/inpaint"
            | "/advanced/outpaint"
            | "/advanced/style-transfer"
    ) || (path.starts_with("/chat/") && path.ends_with("/message"))
}

/// The async fields, taken out of the body so the route sees only its own fields.
struct Extracted {
    run_async: bool,
    webhook_url: Option<String>,
    content_type: String,
    body: Bytes,
}

fn truthy(v: &str) -> Option<bool> {
    match v.trim().to_ascii_lowercase().as_str() {
        "true" | "1" => Some(true),
        "false" | "0" => Some(false),
        _ => None,
    }
}

fn bad_async() -> ApiError {
    ApiError::invalid("async", "The field 'async' must be true or false.")
}

pub async fn accept_async(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if request.method() != Method::POST || !is_generation(request.uri().path()) {
        return next.run(request).await;
    }
    match divert(&state, request, next).await {
        Ok(response) | Err(response) => response,
    }
}

async fn divert(state: &AppState, request: Request, next: Next) -> Result<Response, Response> {
    let content_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let (parts, body) = request.into_parts();
    let extracted = if content_type
        .to_ascii_lowercase()
        .starts_with("multipart/form-data")
    {
        from_multipart(state, &content_type, body).await
    } else if content_type
        .to_ascii_lowercase()
        .starts_with("application/json")
    {
        from_json(state, &content_type, body).await
    } else {
        // Not ours to judge: the route answers with its own error.
        return Ok(next.run(Request::from_parts(parts, body)).await);
    }
    .map_err(IntoResponse::into_response)?;
    if !extracted.run_async {
        if extracted.webhook_url.is_some() {
            return Err(ApiError::invalid(
                "webhook_url",
                "A webhook is sent when async work finishes; set \"async\": true.",
            )
            .into_response());
        }
        return Ok(next.run(rebuild(&parts, &extracted)).await);
    }
    if let Some(url) = &extracted.webhook_url {
        webhooks::check(url, state.jobs.config.webhooks.allow_private)
            .await
            .map_err(IntoResponse::into_response)?;
    }
    let mut dry = rebuild(&parts, &extracted);
    dry.extensions_mut().insert(DryRun);
    let mut validated = next.run(dry).await;
    match validated.extensions_mut().remove::<ApiError>() {
        Some(e) if e.kind == ErrorKind::Validated => {}
        Some(e) => return Err(e.into_response()),
        None => return Err(validated),
    }
    let id = parts
        .extensions
        .get::<RequestId>()
        .map(|r| r.0.clone())
        .ok_or_else(|| ApiError::internal("no request id").into_response())?;
    let caller = parts
        .extensions
        .get::<Caller>()
        .cloned()
        .ok_or_else(|| ApiError::internal("no caller").into_response())?;
    state
        .jobs
        .submit(
            &id,
            &caller,
            parts.uri.path(),
            &extracted.content_type,
            extracted.body,
            extracted.webhook_url,
        )
        .await
        .map_err(IntoResponse::into_response)?;
    let status_url = format!("/requests/{id}");
    let mut response = (
        StatusCode::ACCEPTED,
        Json(json!({"request_id": id, "status": "queued", "status_url": status_url})),
    )
        .into_response();
    if let Ok(v) = HeaderValue::from_str(&status_url) {
        response.headers_mut().insert(header::LOCATION, v);
    }
    Ok(response)
}

fn rebuild(parts: &axum::http::request::Parts, extracted: &Extracted) -> Request {
    let mut request = Request::new(Body::from(extracted.body.clone()));
    *request.method_mut() = parts.method.clone();
    *request.uri_mut() = parts.uri.clone();
    *request.headers_mut() = parts.headers.clone();
    *request.extensions_mut() = parts.extensions.clone();
    request.headers_mut().remove(header::CONTENT_LENGTH);
    if let Ok(v) = HeaderValue::from_str(&extracted.content_type) {
        request.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    request
}

async fn from_json(
    state: &AppState,
    content_type: &str,
    body: Body,
) -> Result<Extracted, ApiError> {
    let limit = state.limits.max_json_bytes;
    let bytes = http_body_util::Limited::new(body, limit)
        .collect()
        .await
        .map_err(|_| {
            ApiError::new(ErrorKind::FileTooLarge, "The request body is too large.")
                .detail("max_bytes", limit)
        })?
        .to_bytes();
    let mut extracted = Extracted {
        run_async: false,
        webhook_url: None,
        content_type: content_type.to_owned(),
        body: bytes.clone(),
    };
    // Malformed JSON is the route's to report, with its own details.
    let Ok(Value::Object(mut object)) = serde_json::from_slice::<Value>(&bytes) else {
        return Ok(extracted);
    };
    let run_async = object.remove("async");
    let webhook = object.remove("webhook_url");
    if run_async.is_none() && webhook.is_none() {
        return Ok(extracted);
    }
    extracted.run_async = match run_async {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => b,
        Some(_) => return Err(bad_async()),
    };
    extracted.webhook_url = match webhook {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s),
        Some(_) => {
            return Err(ApiError::invalid(
                "webhook_url",
                "The webhook URL must be a string.",
            ));
        }
    };
    extracted.body =
        Bytes::from(serde_json::to_vec(&Value::Object(object)).map_err(ApiError::internal)?);
    Ok(extracted)
}

struct Field {
    name: String,
    file_name: Option<String>,
    content_type: Option<String>,
    data: Bytes,
}

/// Reads the form with the same per-file limit as the routes (stopping at it), and
/// writes it back without the async fields when they were present.
async fn from_multipart(
    state: &AppState,
    content_type: &str,
    body: Body,
) -> Result<Extracted, ApiError> {
    let boundary = multer::parse_boundary(content_type).map_err(|_| {
        ApiError::invalid("body", "The multipart body is malformed.").detail("field", "body")
    })?;
    let mut multipart = multer::Multipart::new(body.into_data_stream(), boundary);
    let mut fields = Vec::new();
    let max_file = state.limits.max_file_bytes;
    let malformed = |e: multer::Error| {
        ApiError::invalid("body", "The multipart body is malformed.").caused_by(e)
    };
    while let Some(mut field) = multipart.next_field().await.map_err(malformed)? {
        let name = field.name().unwrap_or_default().to_owned();
        let file_name = field.file_name().map(str::to_owned);
        let content_type = field.content_type().map(|m| m.to_string());
        let mut data = BytesMut::new();
        while let Some(chunk) = field.chunk().await.map_err(malformed)? {
            if data.len() + chunk.len() > max_file {
                drop(field);
                discard_rest(multipart);
                return Err(imaging::file_too_large(&name, max_file));
            }
            data.extend_from_slice(&chunk);
        }
        fields.push(Field {
            name,
            file_name,
            content_type,
            data: data.freeze(),
        });
    }
    let text = |name: &str| {
        fields
            .iter()
            .find(|f| f.name == name && f.file_name.is_none())
            .map(|f| String::from_utf8_lossy(&f.data).into_owned())
    };
    let run_async = match text("async") {
        Some(v) => truthy(&v).ok_or_else(bad_async)?,
        None => false,
    };
    let webhook_url = text("webhook_url").filter(|u| !u.trim().is_empty());
    fields.retain(|f| f.name != "async" && f.name != "webhook_url");
    let (content_type, body) = encode(&fields);
    Ok(Extracted {
        run_async,
        webhook_url,
        content_type,
        body,
    })
}

fn encode(fields: &[Field]) -> (String, Bytes) {
    let boundary = format!("imagegate-{}", crate::ids::new_id("b"));
    let mut out = BytesMut::new();
    for f in fields {
        out.extend_from_slice(
            format!(
                "--{boundary}\r\ncontent-disposition: form-data; name=\"{}\"",
                f.name.replace('"', "%22")
            )
            .as_bytes(),
        );
        if let Some(file) = &f.file_name {
            out.extend_from_slice(
                format!("; filename=\"{}\"", file.replace('"', "%22")).as_bytes(),
            );
        }
        out.extend_from_slice(b"\r\n");
        if let Some(ct) = &f.content_type {
            out.extend_from_slice(format!("content-type: {ct}\r\n").as_bytes());
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&f.data);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (
        format!("multipart/form-data; boundary={boundary}"),
        out.freeze(),
    )
}

/// As in `api::form`: answer 413 at once, read the rest in the background (bounded by
/// the body limit and by time) so a client that writes before it reads sees the answer.
fn discard_rest(mut multipart: multer::Multipart<'static>) {
    tokio::spawn(async move {
        let drain = async {
            while let Ok(Some(mut field)) = multipart.next_field().await {
                while let Ok(Some(_)) = field.chunk().await {}
            }
        };
        let _ = tokio::time::timeout(std::time::Duration::from_secs(30), drain).await;
    });
}

pub async fn status(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    Ok(Json(state.jobs.status(&id, &caller.key_id).await?).into_response())
}

pub async fn cancel(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    Ok(Json(state.jobs.cancel(&id, &caller.key_id).await?).into_response())
}

/// The caller's Standard Webhooks secret, to verify the webhooks it receives.
pub async fn webhook_secret(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Response, ApiError> {
    let secret = state.jobs.webhook_secret(&caller.key_id).await?;
    Ok(Json(
        json!({"secret": secret, "scheme": "https://www.standardwebhooks.com/ (v1, HMAC-SHA256)"}),
    )
    .into_response())
}

//! `POST /batches`, `GET /batches[/{id}[/results]]`, `POST /batches/{id}/cancel`
//! (docs/batches.md), and `POST /gemini/batch-events`, where Google's signed batch events
//! arrive. Each item is a `/generate-image` body, read by the very parser that route
//! uses; `image_id` (one stored image: an edit) or `image_ids` (several: a composition)
//! name images the key already has.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use http_body_util::{BodyExt as _, Limited};
use serde_json::{Map, Value, json};

use crate::api::AppState;
use crate::api::extract::json;
use crate::api::routes::generate::GenerateImageBody;
use crate::batches::{STORED_IMAGE_PREFIX, Submission, google_webhook};
use crate::caller::Caller;
use crate::error::{ApiError, ErrorKind};
use crate::generation::work::{ImageRef, ImageRole, Work};
use crate::jobs::webhooks;

/// Per-item status shown per page of `GET /batches/{id}`, by default and at most.
const PAGE: usize = 100;
const MAX_PAGE: usize = 1_000;

/// Fields an item takes besides those of a `/generate-image` body.
const ITEM_FIELDS: [&str; 5] = [
    "image_id",
    "image_ids",
    "edit_strength",
    "preserve_subject",
    "composition_style",
];

fn is_jsonl(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|m| m.trim().to_ascii_lowercase())
        .is_some_and(|m| matches!(m.as_str(), "application/jsonl" | "application/x-ndjson"))
}

async fn read_body(request: Request, limit: usize) -> Result<bytes::Bytes, ApiError> {
    Ok(Limited::new(request.into_body(), limit)
        .collect()
        .await
        .map_err(|e| {
            if e.is::<http_body_util::LengthLimitError>() {
                ApiError::new(ErrorKind::FileTooLarge, "The batch is too large.")
                    .detail("max_bytes", limit)
            } else {
                ApiError::new(ErrorKind::InvalidRequest, "The body could not be read.").caused_by(e)
            }
        })?
        .to_bytes())
}

/// A JSON body: `{"items": [...], "model", "display_name", "webhook_url"}`.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct BatchBody {
    items: Vec<Value>,
    model: Option<String>,
    display_name: Option<String>,
    webhook_url: Option<String>,
}

/// One item as a unit of work: a `/generate-image` body, an edit of one stored image or a
/// composition of several (`Batches::submit` checks it against the batch).
fn item_work(index: usize, item: Value) -> Result<Work, ApiError> {
    let Value::Object(mut fields) = item else {
        return Err(item_error(
            index,
            ApiError::invalid(
                "items",
                "An item is a JSON object (a /generate-image body).",
            ),
        ));
    };
    let extra: Map<String, Value> = ITEM_FIELDS
        .iter()
        .filter_map(|f| fields.remove(*f).map(|v| ((*f).to_owned(), v)))
        .collect();
    for field in ["async", "webhook_url"] {
        if fields.contains_key(field) {
            return Err(item_error(
                index,
                ApiError::invalid(
                    field,
                    "Items run as part of the batch; set webhook_url on the batch.",
                ),
            ));
        }
    }
    let bytes = serde_json::to_vec(&fields).map_err(ApiError::internal)?;
    let body: GenerateImageBody = json::parse(&bytes).map_err(|e| item_error(index, e))?;
    let work = body.into_work().map_err(|e| item_error(index, e))?.work;
    let Work::Generate {
        prompt,
        options,
        quality,
    } = work
    else {
        return Err(ApiError::internal(
            "a /generate-image body is not a generation",
        ));
    };
    let images = stored_images(index, &extra)?;
    let text = |f: &str| extra.get(f).and_then(Value::as_str).map(str::to_owned);
    let typed = |f: &str, ok: bool| -> Result<(), ApiError> {
        match extra.get(f) {
            Some(_) if !ok => Err(item_error(
                index,
                ApiError::invalid(f, format!("The field '{f}' has the wrong type.")),
            )),
            _ => Ok(()),
        }
    };
    typed(
        "edit_strength",
        extra.get("edit_strength").is_none_or(Value::is_number),
    )?;
    typed(
        "preserve_subject",
        extra.get("preserve_subject").is_none_or(Value::is_boolean),
    )?;
    typed(
        "composition_style",
        extra.get("composition_style").is_none_or(Value::is_string),
    )?;
    let edit_only = ["edit_strength", "preserve_subject"]
        .into_iter()
        .find(|f| extra.contains_key(*f) && images.len() != 1);
    let compose_only = extra.contains_key("composition_style") && images.len() < 2;
    if let Some(f) = edit_only.or(compose_only.then_some("composition_style")) {
        return Err(item_error(
            index,
            ApiError::invalid(
                f,
                format!("'{f}' needs the image(s) it applies to (image_id or image_ids)."),
            ),
        ));
    }
    Ok(match images.len() {
        0 => Work::Generate {
            prompt,
            options,
            quality,
        },
        1 => Work::Edit {
            prompt,
            edit_strength: extra.get("edit_strength").and_then(Value::as_f64),
            preserve_subject: extra.get("preserve_subject").and_then(Value::as_bool),
            options,
            quality,
            images,
        },
        _ => Work::Compose {
            prompt,
            composition_style: text("composition_style"),
            options,
            quality,
            images,
        },
    })
}

/// `image_id` or `image_ids` as references the worker reads from the image store.
fn stored_images(index: usize, extra: &Map<String, Value>) -> Result<Vec<ImageRef>, ApiError> {
    let reference = |field: &str, v: &Value| {
        v.as_str()
            .map(|id| ImageRef {
                key: format!("{STORED_IMAGE_PREFIX}{id}"),
                field: field.to_owned(),
                role: ImageRole::Input,
            })
            .ok_or_else(|| item_error(index, ApiError::invalid(field, "An image id is a string.")))
    };
    match (extra.get("image_id"), extra.get("image_ids")) {
        (Some(_), Some(_)) => Err(item_error(
            index,
            ApiError::invalid("image_ids", "Send image_id or image_ids, not both."),
        )),
        (Some(id), None) => Ok(vec![reference("image_id", id)?]),
        (None, Some(Value::Array(ids))) => ids.iter().map(|v| reference("image_ids", v)).collect(),
        (None, Some(_)) => Err(item_error(
            index,
            ApiError::invalid("image_ids", "image_ids is a list of image ids."),
        )),
        (None, None) => Ok(Vec::new()),
    }
}

pub async fn submit(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<BTreeMap<String, String>>,
    request: Request,
) -> Result<Response, ApiError> {
    let config = &state.batches.config;
    let jsonl = is_jsonl(request.headers());
    let limit = if jsonl {
        config.max_upload_bytes
    } else {
        state.limits.max_json_bytes.max(config.max_upload_bytes)
    };
    let bytes = read_body(request, limit).await?;
    let body = if jsonl {
        if let Some(unknown) = query
            .keys()
            .find(|k| !matches!(k.as_str(), "model" | "display_name" | "webhook_url"))
        {
            return Err(ApiError::invalid(
                unknown,
                "Unknown parameter; use model, display_name or webhook_url.",
            ));
        }
        let mut items = Vec::new();
        for (line, text) in bytes.split(|b| *b == b'\n').enumerate() {
            if text.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            if items.len() >= config.max_items {
                return Err(too_many(config.max_items));
            }
            let item: Value = json::parse(text)
                .map_err(|e| e.detail("line", line + 1).detail("item", items.len()))?;
            items.push(item);
        }
        BatchBody {
            items,
            model: query.get("model").cloned(),
            display_name: query.get("display_name").cloned(),
            webhook_url: query.get("webhook_url").cloned(),
        }
    } else {
        json::parse(&bytes)?
    };
    if body.items.len() > config.max_items {
        return Err(too_many(config.max_items));
    }
    if let Some(url) = &body.webhook_url {
        webhooks::check(url, state.jobs.config.webhooks.allow_private).await?;
    }
    let items = (body.items.into_iter().enumerate())
        .map(|(index, item)| item_work(index, item))
        .collect::<Result<_, _>>()?;
    let submission = Submission {
        model: body.model,
        display_name: body.display_name,
        webhook_url: body.webhook_url,
        items,
    };
    let accepted = state.batches.submit(&caller, submission).await?;
    Ok((StatusCode::ACCEPTED, Json(accepted)).into_response())
}

fn too_many(max: usize) -> ApiError {
    ApiError::invalid("items", format!("A batch holds at most {max} items."))
        .detail("max_items", max)
}

fn number(query: &BTreeMap<String, String>, name: &str, default: usize) -> Result<usize, ApiError> {
    query.get(name).map_or(Ok(default), |v| {
        v.parse()
            .map_err(|_| ApiError::invalid(name, format!("'{name}' is a whole number.")))
    })
}

pub async fn status(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(query): Query<BTreeMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let offset = number(&query, "offset", 0)?;
    let limit = number(&query, "limit", PAGE)?.clamp(1, MAX_PAGE);
    Ok(Json(
        state
            .batches
            .status(&id, &caller.key_id, offset, limit)
            .await?,
    ))
}

pub async fn results(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let jsonl = state.batches.results(&id, &caller.key_id).await?;
    Ok(([(header::CONTENT_TYPE, "application/jsonl")], jsonl).into_response())
}

pub async fn cancel(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(state.batches.cancel(&id, &caller.key_id).await?))
}

pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<BTreeMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let limit = number(&query, "limit", 50)?.clamp(1, 200);
    let before = match query.get("before") {
        Some(v) => time::OffsetDateTime::parse(v, &time::format_description::well_known::Rfc3339)
            .map(|t| (t.unix_timestamp_nanos() / 1_000_000) as i64)
            .map_err(|_| ApiError::invalid("before", "'before' is an RFC 3339 time."))?,
        None => i64::MAX,
    };
    Ok(Json(
        state
            .batches
            .list(&caller.key_id, before, limit as i64)
            .await?,
    ))
}

/// A Gemini API webhook's `batch.*` event: its batch is collected now instead of at its
/// next poll. Refused unless the operator configured the webhook's secret.
pub async fn google_event(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: bytes::Bytes,
) -> Result<Response, ApiError> {
    let Some(secret) = state.batches.config.google_webhook_secret.as_deref() else {
        return Err(ApiError::new(ErrorKind::NotFound, "No such endpoint."));
    };
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    };
    let text = std::str::from_utf8(&body)
        .map_err(|_| ApiError::invalid("body", "The event is not UTF-8."))?;
    let message = google_webhook::SignedMessage {
        id: header("webhook-id"),
        timestamp: header("webhook-timestamp"),
        signatures: header("webhook-signature"),
        body: text,
    };
    google_webhook::verify(secret, &message, state.clock.now_ms() / 1000)?;
    let event: Value = json::parse(&body)?;
    let kind = event["type"].as_str().unwrap_or_default();
    let known = match google_webhook::batch_name(&event) {
        Some(name) if kind.starts_with("batch.") => state.batches.upstream_ended(&name).await?,
        _ => false,
    };
    tracing::info!(event = kind, known, "gemini batch event");
    // Acknowledged either way: an event about a batch that is not ours is not retried.
    Ok((
        StatusCode::OK,
        Json(json!({"received": true, "known": known})),
    )
        .into_response())
}

/// An item's error, naming the item.
fn item_error(index: usize, e: impl Into<ApiError>) -> ApiError {
    e.into().for_item(index)
}

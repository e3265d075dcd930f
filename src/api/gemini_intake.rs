//! The native surface's image intake: every inline image a caller sends in
//! `contents[].parts[].inlineData` goes through the same checks as the guide's uploads
//! (format from the bytes, decompression bombs refused from the header, file size and
//! pixel limits, downscaling of long sides) before anything is relayed upstream. A refusal
//! is the caller's error (400 in Google's envelope), not the upstream's.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE};
use bytes::Bytes;
use serde_json::Value;

use crate::api::AppState;
use crate::error::ApiError;
use crate::imaging::{self, ImageFormat};

/// One inline image found in the body: where it is and its bytes.
struct Inline {
    content: usize,
    part: usize,
    field: String,
    bytes: Bytes,
}

/// The body to relay: unchanged when every inline image passes as it is, rewritten when
/// one was downscaled. Bodies that are not JSON are left for upstream (or the offline
/// reader) to refuse in Google's words.
pub async fn accept_inline_images(state: &AppState, body: Bytes) -> Result<Bytes, ApiError> {
    let Ok(mut json) = serde_json::from_slice::<Value>(&body) else {
        return Ok(body);
    };
    let inlines = inline_images(&json)?;
    if inlines.is_empty() {
        return Ok(body);
    }
    let limits = state.intake_limits();
    // Decoding is CPU-bound: off the async threads, as the guide's endpoints do.
    let accepted = tokio::task::spawn_blocking(move || {
        inlines
            .into_iter()
            .map(|inline| {
                let original_len = inline.bytes.len();
                imaging::accept_input(&inline.field, inline.bytes, &limits)
                    .map(|image| (inline.content, inline.part, original_len, image))
            })
            .collect::<Result<Vec<_>, ApiError>>()
    })
    .await
    .map_err(ApiError::internal)??;
    let mut changed = false;
    for (content, part, original_len, image) in accepted {
        if image.original_size == (image.width, image.height) && image.bytes.len() == original_len {
            continue;
        }
        changed = true;
        let blob = inline_blob_mut(&mut json, content, part);
        if let Some(blob) = blob.and_then(Value::as_object_mut) {
            blob.insert("data".into(), STANDARD.encode(&image.bytes).into());
            let mime_key = if blob.contains_key("mime_type") {
                "mime_type"
            } else {
                "mimeType"
            };
            blob.insert(mime_key.into(), image.format.mime().into());
        }
    }
    if !changed {
        return Ok(body);
    }
    serde_json::to_vec(&json)
        .map(Bytes::from)
        .map_err(ApiError::internal)
}

/// Google's JSON takes both spellings (`inlineData`, `inline_data`).
fn blob_of(part: &Value) -> Option<&Value> {
    part.get("inlineData").or_else(|| part.get("inline_data"))
}

fn inline_blob_mut(json: &mut Value, content: usize, part: usize) -> Option<&mut Value> {
    let part = json
        .get_mut("contents")?
        .get_mut(content)?
        .get_mut("parts")?
        .get_mut(part)?;
    if part.get("inlineData").is_some() {
        part.get_mut("inlineData")
    } else {
        part.get_mut("inline_data")
    }
}

/// The inline blobs that are images: declared `image/*`, or bytes that sniff as one. Other
/// inline data (a PDF, audio) is the model's business and passes as sent.
fn inline_images(json: &Value) -> Result<Vec<Inline>, ApiError> {
    let mut found = Vec::new();
    let Some(contents) = json.get("contents").and_then(Value::as_array) else {
        return Ok(found);
    };
    for (c, content) in contents.iter().enumerate() {
        let Some(parts) = content.get("parts").and_then(Value::as_array) else {
            continue;
        };
        for (p, part) in parts.iter().enumerate() {
            let Some(blob) = blob_of(part) else {
                continue;
            };
            let field = format!("contents[{c}].parts[{p}].inlineData.data");
            let data = blob.get("data").and_then(Value::as_str).unwrap_or("");
            let bytes = STANDARD
                .decode(data)
                .or_else(|_| URL_SAFE.decode(data))
                .map_err(|_| ApiError::invalid(&field, "The inline data is not valid base64."))?;
            let mime = blob
                .get("mimeType")
                .or_else(|| blob.get("mime_type"))
                .and_then(Value::as_str)
                .unwrap_or("");
            let is_image = mime.to_ascii_lowercase().starts_with("image/")
                || ImageFormat::sniff(&bytes).is_some();
            if is_image {
                found.push(Inline {
                    content: c,
                    part: p,
                    field,
                    bytes: Bytes::from(bytes),
                });
            }
        }
    }
    Ok(found)
}

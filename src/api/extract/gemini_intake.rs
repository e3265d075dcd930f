//! The native surface's intake: a `generateContent` body becomes a unit of work
//! ([`Work::GeminiNative`]) whose inline images (`contents[].parts[].inlineData`) are
//! uploads like the guide's, checked the same way (format from the bytes, decompression
//! bombs refused from the header, file size and pixel limits, downscaling of long
//! sides) before anything is relayed upstream. A refusal is the caller's error (400 in
//! Google's envelope), not the upstream's.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE};
use bytes::Bytes;
use serde_json::Value;

use crate::api::extract::work::Uploads;
use crate::error::ApiError;
use crate::generation::native::inline_blob_mut;
use crate::generation::params::RawRouting;
use crate::generation::work::{ImageRole, NativeImage, Work};
use crate::imaging::ImageFormat;
use crate::models::ServiceTier;

/// One inline image found in the body: where it is and its bytes.
struct Inline {
    content: usize,
    part: usize,
    field: String,
    bytes: Bytes,
}

/// More inline images than any model takes (the most is 14): each is an upload to check
/// and, for async work, to store.
const MAX_INLINE_IMAGES: usize = 32;

/// What a native generation call asks for.
pub struct NativeCall<'a> {
    pub model: &'a str,
    pub api_version: &'a str,
    /// The service tier held to the key's tier.
    pub service_tier: Option<ServiceTier>,
    pub stream: bool,
}

/// The unit of work for a native body, and its inline images as uploads. A body that is
/// not JSON is refused here, in Google's words, whichever way it would run.
pub fn work(call: NativeCall<'_>, body: &[u8]) -> Result<(Work, Uploads), ApiError> {
    let mut json: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::invalid("body", format!("Invalid JSON payload received. {e}")))?;
    let inlines = inline_images(&json)?;
    if inlines.len() > MAX_INLINE_IMAGES {
        return Err(ApiError::invalid(
            "contents",
            format!("At most {MAX_INLINE_IMAGES} inline images per request."),
        )
        .detail("count", inlines.len()));
    }
    let mut uploads = Uploads::default();
    let mut images = Vec::new();
    for inline in inlines {
        // The bytes travel as an upload; the body keeps the part's place and type.
        if let Some(blob) =
            inline_blob_mut(&mut json, inline.content, inline.part).and_then(Value::as_object_mut)
        {
            blob.remove("data");
        }
        let added = uploads.add(vec![inline.bytes], &inline.field, ImageRole::Input);
        images.extend(added.into_iter().map(|image| NativeImage {
            content: inline.content,
            part: inline.part,
            image,
        }));
    }
    let work = Work::GeminiNative {
        model: call.model.to_owned(),
        api_version: call.api_version.to_owned(),
        request: json,
        routing: RawRouting {
            service_tier: call.service_tier.map(|t| t.as_str().to_owned()),
            ..RawRouting::default()
        },
        images,
        stream: call.stream,
    };
    Ok((work, uploads))
}

/// Google's JSON takes both spellings (`inlineData`, `inline_data`).
fn blob_of(part: &Value) -> Option<&Value> {
    part.get("inlineData").or_else(|| part.get("inline_data"))
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

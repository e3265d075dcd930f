//! `GET /images?limit=N`: the calling key's most recent images, newest first, as ids and
//! URLs (no bytes), so a client can show a gallery and fetch only what it displays; and
//! `GET /images/{image_id}`: a stored image's bytes with the type sniffed from them.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::api::AppState;
use crate::caller::Caller;
use crate::clock::rfc3339;
use crate::error::ApiError;
use crate::imaging::ImageFormat;

const DEFAULT_LIMIT: u32 = 20;
/// One page of a gallery; a bigger list would only be metadata nobody scrolls to.
const MAX_LIMIT: u32 = 100;

#[derive(Debug, Serialize)]
pub struct ImageListing {
    images: Vec<ListedImage>,
    limit: u32,
}

#[derive(Debug, Serialize)]
struct ListedImage {
    image_id: String,
    url: String,
    mime_type: String,
    size_bytes: i64,
    created_at: String,
}

pub async fn list_images(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<BTreeMap<String, String>>,
) -> Result<Json<ImageListing>, ApiError> {
    let limit = parse_limit(&query)?;
    let images = state
        .images
        .list(&caller.key_id, limit)
        .await?
        .into_iter()
        .map(|meta| ListedImage {
            url: format!("/images/{}", meta.id),
            image_id: meta.id,
            mime_type: meta.mime,
            size_bytes: meta.size_bytes,
            created_at: rfc3339(meta.created_at_ms),
        })
        .collect();
    Ok(Json(ImageListing { images, limit }))
}

pub async fn get_image(
    State(state): State<AppState>,
    caller: Caller,
    Path(image_id): Path<String>,
) -> Result<Response, ApiError> {
    let bytes = state
        .images
        .get(&image_id, &caller.key_id)
        .await?
        .ok_or_else(|| ApiError::not_found("The image"))?;
    let mime = ImageFormat::sniff(&bytes).map_or("application/octet-stream", ImageFormat::mime);
    Ok((
        [
            (header::CONTENT_TYPE, mime),
            // Ids are never reused, so a stored image never changes.
            (
                header::CACHE_CONTROL,
                "private, max-age=31536000, immutable",
            ),
        ],
        bytes,
    )
        .into_response())
}

fn parse_limit(query: &BTreeMap<String, String>) -> Result<u32, ApiError> {
    if let Some(unknown) = query.keys().find(|k| k.as_str() != "limit") {
        return Err(ApiError::invalid(
            unknown,
            format!("Unknown parameter '{unknown}'. The only parameter is limit."),
        ));
    }
    let Some(raw) = query.get("limit") else {
        return Ok(DEFAULT_LIMIT);
    };
    raw.trim()
        .parse::<u32>()
        .ok()
        .filter(|n| (1..=MAX_LIMIT).contains(n))
        .ok_or_else(|| {
            ApiError::invalid(
                "limit",
                format!("limit must be a whole number from 1 to {MAX_LIMIT}."),
            )
            .detail("min", 1)
            .detail("max", MAX_LIMIT)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn limit_defaults_to_twenty_and_stays_within_one_to_a_hundred() {
        assert_eq!(parse_limit(&query(&[])).unwrap(), 20);
        assert_eq!(parse_limit(&query(&[("limit", "100")])).unwrap(), 100);
        for bad in ["0", "101", "-1", "ten", ""] {
            assert!(parse_limit(&query(&[("limit", bad)])).is_err(), "{bad:?}");
        }
        assert!(parse_limit(&query(&[("offset", "1")])).is_err());
    }
}

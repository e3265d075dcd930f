//! `GET /images/{image_id}`: a stored image's bytes with the type sniffed from them.

use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};

use crate::api::AppState;
use crate::caller::Caller;
use crate::error::ApiError;
use crate::imaging::ImageFormat;

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

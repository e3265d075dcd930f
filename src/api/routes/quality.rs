//! `POST /quality` (docs/api.md#quality) measures an uploaded image. (Generations with
//! `include_quality` / `min_quality_score` run in `generation::execute`.)

use axum::Json;
use axum::extract::{Request, State};
use serde_json::{Value, json};

use crate::api::AppState;
use crate::api::extract::form::{Form, FormSpec};
use crate::caller::Caller;
use crate::error::ApiError;
use crate::imaging::{self, IntakeLimits};
use crate::quality::{self, QualityError};

/// `POST /quality`: the guide's metrics and score of one uploaded image, measured on the
/// bytes as uploaded (never downscaled).
pub async fn assess(
    State(state): State<AppState>,
    // Taken for its checks: a key at its concurrency is refused before the upload is read.
    _caller: Caller,
    request: Request,
) -> Result<Json<Value>, ApiError> {
    let spec = FormSpec {
        text_fields: &[],
        file_fields: &["image"],
        max_file_bytes: state.limits.max_file_bytes,
    };
    let mut form = Form::from_request(request, &spec, state.body_limits()).await?;
    let mut files = form.files("image");
    if files.len() > 1 {
        return Err(
            ApiError::invalid("image", "Send exactly one image.").detail("count", files.len())
        );
    }
    let bytes = files.pop().ok_or_else(|| {
        ApiError::invalid("image", "The image is required.").detail("reason", "missing")
    })?;
    // The intake checks (format, size, decompression bombs), without its downscaling.
    let limits = IntakeLimits {
        max_edge: u32::MAX,
        ..state.intake_limits()
    };
    let decoded = imaging::dimensions(&bytes).map_or(0, |(w, h)| u64::from(w) * u64::from(h));
    let _pixels = state
        .executor
        .pixels
        .take(decoded.saturating_mul(imaging::DECODED_BYTES_PER_PIXEL))
        .await?;
    let metrics = tokio::task::spawn_blocking(move || {
        let image = imaging::accept_input("image", bytes, &limits)?;
        quality::assess(&image.bytes).map_err(unmeasurable)
    })
    .await
    .map_err(ApiError::internal)??;
    let score = quality::score(&metrics);
    Ok(Json(
        json!({"quality_metrics": metrics, "quality_score": score}),
    ))
}

fn unmeasurable(error: QualityError) -> ApiError {
    match error {
        QualityError::TooSmall { width, height } => ApiError::invalid(
            "image",
            "Quality needs an image at least 2 pixels wide and 2 pixels tall.",
        )
        .detail("width", width)
        .detail("height", height),
        other => ApiError::invalid(
            "image",
            "The image could not be decoded; the file may be corrupted.",
        )
        .caused_by(other),
    }
}

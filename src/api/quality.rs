//! Quality on the HTTP side (contract §9): `POST /quality` measures an uploaded image, and
//! [`generate`] runs a generation with `include_quality` / `min_quality_score` applied.

use axum::Json;
use axum::extract::{Multipart, State};
use serde_json::{Value, json};

use crate::api::AppState;
use crate::api::form::{Form, FormSpec};
use crate::caller::RequestContext;
use crate::error::ApiError;
use crate::generation::Outcome;
use crate::generation::params::Prompt;
use crate::generation::quality_check::{self, QualityCheck};
use crate::imaging::{self, IntakeLimits};
use crate::provider::ProviderRequest;
use crate::quality::{self, QualityError};

/// The text fields that ask for quality, for the multipart endpoints' field lists.
pub const QUALITY_FIELDS: [&str; 2] = ["include_quality", "min_quality_score"];

/// `include_quality` / `min_quality_score` as a multipart form sends them.
pub fn form_quality(form: &Form) -> Result<Option<QualityCheck>, ApiError> {
    QualityCheck::parse(
        form.bool("include_quality")?,
        form.number("min_quality_score")?,
    )
}

/// Runs the generation `build` makes from the prompt: once, or as the guide's
/// `generate_with_quality_check` when quality was asked for.
pub async fn generate(
    state: &AppState,
    ctx: &RequestContext,
    check: Option<QualityCheck>,
    prompt: Prompt,
    build: impl Fn(Prompt) -> Result<ProviderRequest, ApiError>,
) -> Result<Outcome, ApiError> {
    let first = build(prompt.clone())?;
    let Some(check) = check else {
        return state.generator.run(ctx, first).await;
    };
    if !first.modalities.image {
        return Err(ApiError::invalid(
            "include_quality",
            "Quality is measured on an image; include \"Image\" in response_modalities.",
        ));
    }
    if ctx.dry_run {
        // Validation for async acceptance: the attempts are made when the work runs.
        return state.generator.run(ctx, first).await;
    }
    let checked = quality_check::generate_with_quality_check(check, &prompt, |p| {
        let request = build(p);
        let generator = state.generator.clone();
        let ctx = ctx.clone();
        async move { generator.run(&ctx, request?).await }
    })
    .await?;
    Ok(checked.into_outcome(check))
}

/// `POST /quality`: the guide's metrics and score of one uploaded image, measured on the
/// bytes as uploaded (never downscaled).
pub async fn assess(
    State(state): State<AppState>,
    multipart: Multipart,
) -> Result<Json<Value>, ApiError> {
    let spec = FormSpec {
        text_fields: &[],
        file_fields: &["image"],
        max_file_bytes: state.limits.max_file_bytes,
    };
    let mut form = Form::read(multipart, &spec).await?;
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

//! `POST /story/generate`.

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use crate::api::AppState;
use crate::api::json::JsonBody;
use crate::caller::RequestContext;
use crate::error::ApiError;
use crate::generation::params::{Prompt, RawOptions};
use crate::generation::story::{self, StoryRequest};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoryBody {
    description: Option<String>,
    num_images: Option<i64>,
    content_type: Option<String>,
    style: Option<String>,
    model: Option<String>,
    temperature: Option<f64>,
    aspect_ratio: Option<String>,
    image_size: Option<String>,
    seed: Option<i64>,
}

pub async fn generate(
    State(state): State<AppState>,
    ctx: RequestContext,
    JsonBody(body): JsonBody<StoryBody>,
) -> Result<Response, ApiError> {
    let request = StoryRequest {
        description: Prompt::parse(
            "description",
            body.description,
            state.limits.max_prompt_chars,
        )?,
        steps: story::parse_steps(body.num_images)?,
        content_type: story::parse_content_type(body.content_type.as_deref())?,
        style: match body.style {
            Some(s) if s.chars().count() > 500 => {
                return Err(ApiError::invalid(
                    "style",
                    "The style is too long. Maximum length is 500 characters.",
                )
                .detail("max_length", 500)
                .detail("current_length", s.chars().count()));
            }
            other => other.filter(|s| !s.trim().is_empty()),
        },
        options: RawOptions {
            model: body.model,
            response_modalities: None,
            temperature: body.temperature,
            aspect_ratio: body.aspect_ratio,
            image_size: body.image_size,
            seed: body.seed,
        }
        .parse(&state.models, &state.default_model)?,
    };
    let outcome = story::generate(&state.generator, &ctx, request).await?;
    let headers = crate::api::generate::substitution_headers(
        &outcome.response.generation.model,
        outcome.substituted.as_ref(),
    );
    Ok((headers, Json(outcome.response)).into_response())
}

//! `POST /story/generate`.

use axum::extract::State;
use axum::response::Response;
use serde::Deserialize;

use crate::api::AppState;
use crate::api::extract::caller::Queueable;
use crate::api::extract::json::JsonBody;
use crate::api::extract::reply::Reply;
use crate::api::extract::work::{Submission, Submitted};
use crate::api::submit;
use crate::error::ApiError;
use crate::generation::params::{RawOptions, RawRouting};
use crate::generation::work::Work;

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
    service_tier: Option<String>,
    thinking_level: Option<String>,
    fallback: Option<bool>,
    #[serde(rename = "async")]
    run_async: Option<serde_json::Value>,
    webhook_url: Option<String>,
}

impl StoryBody {
    pub fn into_work(self) -> Result<Submitted, ApiError> {
        let submission = Submission::from_json(self.run_async, self.webhook_url)?;
        let work = Work::Story {
            description: self.description,
            num_images: self.num_images,
            content_type: self.content_type,
            style: self.style,
            options: RawOptions {
                model: self.model,
                response_modalities: None,
                temperature: self.temperature,
                aspect_ratio: self.aspect_ratio,
                image_size: self.image_size,
                seed: self.seed,
                routing: RawRouting {
                    service_tier: self.service_tier,
                    thinking_level: self.thinking_level,
                    fallback: self.fallback,
                },
            },
        };
        Ok(Submitted::without_uploads(work, submission))
    }
}

/// With `Accept: text/event-stream` the answer is a stream of the story's steps
/// (`respond::story_events`). Without it, one JSON response at the end, each image once in
/// `images[]`, `steps[]` naming them by `image_id`.
pub async fn generate(
    State(state): State<AppState>,
    caller: Queueable,
    reply: Reply,
    JsonBody(body): JsonBody<StoryBody>,
) -> Result<Response, ApiError> {
    let submitted = body.into_work()?;
    submit::handle(&state, caller, reply, "/story/generate", submitted).await
}

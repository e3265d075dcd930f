//! `POST /story/generate`.

use axum::Json;
use std::convert::Infallible;

use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use crate::api::AppState;
use crate::api::json::JsonBody;
use crate::caller::RequestContext;
use crate::error::ApiError;
use crate::generation::params::{Prompt, RawOptions};
use crate::generation::story::{self, StoryRequest, StoryStep};

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

/// With `Accept: text/event-stream` the answer is a stream: one `step` event per finished
/// step, then `done` with the whole response (or `error` with the contract's error body).
/// Without it, one JSON response at the end.
pub async fn generate(
    State(state): State<AppState>,
    ctx: RequestContext,
    headers: HeaderMap,
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
    let wants_stream = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/event-stream"));
    if wants_stream {
        return Ok(stream(state, ctx, request));
    }
    let outcome = story::generate(&state.generator, &ctx, request, &|_| {}).await?;
    let headers = crate::api::generate::substitution_headers(
        &outcome.response.generation.model,
        outcome.substituted.as_ref(),
    );
    Ok((headers, Json(outcome.response)).into_response())
}

fn stream(state: AppState, ctx: RequestContext, request: StoryRequest) -> Response {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<Event>();
    // The story runs to the end even if the client goes away: its steps are paid for.
    tokio::spawn(async move {
        let steps = tx.clone();
        let progress = move |step: &StoryStep| {
            if let Ok(event) = Event::default().event("step").json_data(step) {
                let _ = steps.send(event);
            }
        };
        let last = match story::generate(&state.generator, &ctx, request, &progress).await {
            Ok(outcome) => Event::default().event("done").json_data(&outcome.response),
            Err(e) => Event::default()
                .event("error")
                .json_data(e.body(&ctx.request_id)),
        };
        if let Ok(event) = last {
            let _ = tx.send(event);
        }
    });
    let events = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|event| (Ok::<_, Infallible>(event), rx))
    });
    Sse::new(events)
        .keep_alive(KeepAlive::default())
        .into_response()
}

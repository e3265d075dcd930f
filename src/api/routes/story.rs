//! `POST /story/generate`.

use std::convert::Infallible;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use crate::api::AppState;
use crate::api::extract::caller::Queueable;
use crate::api::extract::json::JsonBody;
use crate::api::submit::{self, Accepted, Submission, Uploads};
use crate::caller::RequestContext;
use crate::error::ApiError;
use crate::generation::execute::{Done, Inputs};
use crate::generation::params::{RawOptions, RawRouting};
use crate::generation::story::StoryStep;
use crate::generation::work::{Plan, Work};

/// Events a slow reader may leave unread before its story waits for it. The story's
/// steps are stored as they finish whatever the reader does; only the telling waits.
const STORY_EVENTS_BUFFERED: usize = 4;
/// How long a story waits for a reader to take a step's event.
const STALLED_READER: std::time::Duration = std::time::Duration::from_secs(30);

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
    pub fn into_work(self) -> Result<(Work, Submission), ApiError> {
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
        Ok((work, submission))
    }
}

/// With `Accept: text/event-stream` the answer is a stream: one `step` event per finished
/// step (with its image), then `done` with the whole response but the images, already
/// sent (or `error` with the contract's error body). Without it, one JSON response at the
/// end, each image once in `images[]`, `steps[]` naming them by `image_id`.
pub async fn generate(
    State(state): State<AppState>,
    Queueable { ctx, refused }: Queueable,
    headers: HeaderMap,
    JsonBody(body): JsonBody<StoryBody>,
) -> Result<Response, ApiError> {
    let (work, submission) = body.into_work()?;
    let path = "/story/generate";
    let (plan, inputs) = match submit::accept(
        &state,
        &ctx,
        refused,
        path,
        work,
        Uploads::default(),
        submission,
    )
    .await?
    {
        Accepted::Queued(response) => return Ok(response),
        Accepted::Run(plan, inputs) => (*plan, inputs),
    };
    let wants_stream = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/event-stream"));
    if wants_stream {
        return Ok(stream(&state, &ctx, plan, inputs));
    }
    match submit::run(&state, &ctx, plan, inputs).await? {
        Done::Story(outcome) => {
            let headers = crate::api::routes::generate::substitution_headers(
                &outcome.response.generation.model,
                outcome.substituted.as_ref(),
            );
            Ok((headers, Json(outcome.response)).into_response())
        }
        _ => Err(ApiError::internal(
            "a story produced another kind of result",
        )),
    }
}

fn stream(state: &AppState, ctx: &RequestContext, plan: Plan, inputs: Inputs) -> Response {
    let (tx, rx) = tokio::sync::mpsc::channel::<Event>(STORY_EVENTS_BUFFERED);
    let steps = tx.clone();
    let stalled = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    // A reader that does not keep up holds back only its own story (the channel is
    // bounded); the step is already stored when it is told. A reader that has not taken
    // an event for `STALLED_READER` is treated as gone: the story goes on untold.
    let progress = Box::new(move |step: StoryStep| {
        let (steps, stalled) = (steps.clone(), stalled.clone());
        Box::pin(async move {
            use std::sync::atomic::Ordering;
            if steps.is_closed() || stalled.load(Ordering::Relaxed) {
                return;
            }
            if let Ok(event) = Event::default().event("step").json_data(&step)
                && tokio::time::timeout(STALLED_READER, steps.send(event))
                    .await
                    .is_err()
            {
                stalled.store(true, Ordering::Relaxed);
                tracing::info!(
                    step = step.index,
                    "story reader stalled; steps go on untold"
                );
            }
        }) as futures_util::future::BoxFuture<'static, ()>
    });
    let request_id = ctx.request_id.clone();
    // The story runs to the end even if the client goes away: its steps are paid for.
    let work = submit::spawn_with_progress(state, ctx, plan, inputs, progress);
    crate::tasks::spawn(async move {
        let last = match work.await {
            Ok(Ok(Done::Story(outcome))) => {
                // The images went out in the `step` events; `done` names them by id.
                let mut done = serde_json::to_value(&outcome.response).unwrap_or_default();
                if let Some(fields) = done.as_object_mut() {
                    fields.remove("images");
                }
                Event::default().event("done").json_data(&done)
            }
            Ok(Ok(_)) => Event::default()
                .event("error")
                .json_data(ApiError::internal("not a story").body(&request_id)),
            Ok(Err(e)) => Event::default()
                .event("error")
                .json_data(e.body(&request_id)),
            Err(e) => Event::default()
                .event("error")
                .json_data(ApiError::internal(e).body(&request_id)),
        };
        if let Ok(event) = last {
            let _ = tx.send(event).await;
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

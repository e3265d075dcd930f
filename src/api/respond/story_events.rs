//! A story answered as server-sent events (`Accept: text/event-stream`): one `step`
//! event per finished step (with its image), then `done` with the whole response but the
//! images, already sent (or `error` with the contract's error body).

use std::convert::Infallible;
use std::sync::Arc;

use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::future::BoxFuture;

use crate::api::AppState;
use crate::caller::RequestContext;
use crate::error::ApiError;
use crate::generation::execute::{Done, Inputs, Progress};
use crate::generation::story::StoryStep;
use crate::generation::work::Plan;

/// Events a slow reader may leave unread before its story waits for it. The story's
/// steps are stored as they finish whatever the reader does; only the telling waits.
const STORY_EVENTS_BUFFERED: usize = 4;
/// How long a story waits for a reader to take a step's event.
const STALLED_READER: std::time::Duration = std::time::Duration::from_secs(30);

pub fn stream(state: &AppState, ctx: &RequestContext, plan: Plan, inputs: Inputs) -> Response {
    let (tx, rx) = tokio::sync::mpsc::channel::<Event>(STORY_EVENTS_BUFFERED);
    let steps = tx.clone();
    let stalled = Arc::new(std::sync::atomic::AtomicBool::new(false));
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
        }) as BoxFuture<'static, ()>
    });
    let request_id = ctx.request_id.clone();
    // The story runs to the end even if the client goes away: its steps are paid for.
    let work = spawn_with_progress(state, ctx, plan, inputs, progress);
    crate::tasks::spawn(async move {
        let done = work
            .await
            .map_err(ApiError::internal)
            .and_then(|done| Ok(done?.into_json()?));
        let last = match done {
            Ok(mut done) => {
                // The images went out in the `step` events; `done` names them by id.
                if let Some(fields) = done.as_object_mut() {
                    fields.remove("images");
                }
                Event::default().event("done").json_data(&done)
            }
            Err(e) => Event::default()
                .event("error")
                .json_data(e.body(&request_id)),
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

/// Runs a plan with `progress` (a story's steps) in a task of its own, as
/// `submit::handle` runs every plan.
fn spawn_with_progress(
    state: &AppState,
    ctx: &RequestContext,
    plan: Plan,
    inputs: Inputs,
    progress: Box<dyn Fn(StoryStep) -> BoxFuture<'static, ()> + Send + Sync>,
) -> crate::tasks::Spawned<Result<Done, ApiError>> {
    let (executor, ctx) = (Arc::clone(&state.executor), ctx.clone());
    crate::tasks::spawn(async move {
        let progress: Progress<'_> = &*progress;
        executor
            .run(&ctx, plan, inputs, progress)
            .await
            .map_err(ApiError::from)
    })
}

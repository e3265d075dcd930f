//! The one path of every generation request once its handler has read it: checked
//! (fields, then images), then stored for a worker and answered 202 (`"async": true`,
//! `Prefer: respond-async` on Google's surface), or run at once and answered by
//! [`respond`]. Both ways check the same value the same way, so an invalid request gets
//! the same 400 whichever way it came.

use std::sync::Arc;

use axum::extract::Request;
use axum::response::Response;

use crate::api::AppState;
use crate::api::extract::caller::Queueable;
use crate::api::extract::reply::Reply;
use crate::api::extract::work::{FormRoute, Submission, Submitted, Uploads, read_form};
use crate::api::respond::{self, native_stream, story_events};
use crate::caller::RequestContext;
use crate::error::ApiError;
use crate::generation::execute::{self, Done, Inputs};
use crate::generation::native;
use crate::generation::work::{Plan, Work};

/// Reads a form route's body into its unit of work and answers it as [`handle`] does.
pub async fn form(
    state: &AppState,
    caller: Queueable,
    reply: Reply,
    request: Request,
    route: &FormRoute,
) -> Result<Response, ApiError> {
    let submitted = read_form(state, request, route.fields, route.files, route.build).await?;
    handle(state, caller, reply, route.path, submitted).await
}

/// Accepts what a generation handler read and answers it: 202 when queued; else runs it
/// and renders its result, as a stream when the work and the caller ask for one.
pub async fn handle(
    state: &AppState,
    Queueable { ctx, refused }: Queueable,
    reply: Reply,
    path: &str,
    submitted: Submitted,
) -> Result<Response, ApiError> {
    let Submitted {
        work,
        uploads,
        submission,
    } = submitted;
    let Some((plan, mut inputs)) =
        accept(state, &ctx, refused, path, work, uploads, submission).await?
    else {
        return Ok(respond::queued(&ctx.request_id, &reply));
    };
    match plan {
        // Its place in the session's order is taken now, at acceptance; the run waits
        // for the earlier messages (`generation::chat_order`).
        Plan::ChatMessage { ref session_id, .. } => {
            state.chat.order.take_place(&ctx, session_id).await?;
        }
        Plan::Story(_) if reply.events => {
            return Ok(story_events::stream(state, &ctx, plan, inputs));
        }
        // Google's stream is relayed as it arrives.
        Plan::GeminiNative {
            served,
            request,
            images,
            stream: true,
        } => {
            let body = native::body(request, &images, &mut inputs)?;
            drop(inputs);
            return native_stream::relay(state, &ctx, served, body).await;
        }
        _ => {}
    }
    let done = run(state, &ctx, plan, inputs).await?;
    Ok(respond::answer(state, &reply, done))
}

/// Checks `work` and queues it (`None`) or hands it back to run. `refused` is the
/// concurrency refusal of a request that came without an in-flight slot: it stands
/// unless the work is async (queued work waits for a slot instead).
async fn accept(
    state: &AppState,
    ctx: &RequestContext,
    refused: Option<ApiError>,
    path: &str,
    mut work: Work,
    uploads: Uploads,
    submission: Submission,
) -> Result<Option<(Plan, Inputs)>, ApiError> {
    if let Some(refusal) = refused
        && !submission.run_async
    {
        return Err(refusal);
    }
    submission.check(state).await?;
    let plan = work.plan(&state.executor.env)?;
    // A service tier the caller's key tier may not use is refused now, not by a worker.
    if let Some(tier) = work.routing().service_tier.as_deref() {
        let tier = crate::models::ServiceTier::parse(tier)?;
        state
            .models
            .tier_policy()
            .apply(&ctx.caller.tier, Some(tier))?;
    }
    let uploads = uploads.into_map();
    let executor = &state.executor;
    let inputs = execute::prepare(
        &work,
        &plan,
        uploads.clone(),
        executor.env.intake,
        &executor.pixels,
    )
    .await?;
    if let Plan::ChatMessage {
        session_id, image, ..
    } = &plan
    {
        let new_bytes = image.as_ref().map_or(0, |r| inputs.image_bytes(r));
        state.chat.admit(&ctx.caller, session_id, new_bytes).await?;
    }
    // The whole cost is charged before anything runs: work that would overrun the
    // minute is refused now rather than cut off after some paid calls.
    if let Some(budget) = &ctx.budget {
        let cost = work.generations();
        budget
            .charge(cost)
            .await
            .map_err(|window| crate::api::middleware::limits::over_budget(window, cost))?;
    }
    if !submission.run_async {
        return Ok(Some((plan, inputs)));
    }
    drop((plan, inputs));
    work.pin_default_model(&state.executor.env.default_model);
    state
        .jobs
        .submit(
            &ctx.request_id,
            &ctx.caller,
            path,
            work,
            uploads,
            submission.webhook_url,
        )
        .await?;
    Ok(None)
}

/// Runs a plan in a task of its own: a client that disconnects does not cancel work that
/// is being paid for, and the request's in-flight slot (in `ctx`) stays held until the
/// work ends.
async fn run(
    state: &AppState,
    ctx: &RequestContext,
    plan: Plan,
    inputs: Inputs,
) -> Result<Done, ApiError> {
    let (executor, ctx) = (Arc::clone(&state.executor), ctx.clone());
    crate::tasks::spawn(async move {
        executor
            .run(&ctx, plan, inputs, &execute::no_progress)
            .await
            .map_err(ApiError::from)
    })
    .await
    .map_err(ApiError::internal)?
}

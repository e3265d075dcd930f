//! Where a generation request's unit of work goes once its body is read: checked (fields,
//! then images), then run at once, or — with `"async": true` — stored for a worker and
//! answered with 202. Both ways check the same value the same way, so an invalid request
//! gets the same 400 whichever way it came.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::json;

use crate::api::AppState;
use crate::api::extract::form::Form;
use crate::caller::RequestContext;
use crate::error::ApiError;
use crate::generation::execute::{self, Done, Inputs, Progress};
use crate::generation::story::StoryStep;
use crate::generation::work::{ImageRef, ImageRole, Plan, Work};
use crate::jobs::webhooks;
use futures_util::future::BoxFuture;

/// The form fields every generation route takes besides its own.
pub const ASYNC_FIELDS: [&str; 2] = ["async", "webhook_url"];

/// `"async"` and `"webhook_url"`, as sent.
#[derive(Debug, Default)]
pub struct Submission {
    pub run_async: bool,
    pub webhook_url: Option<String>,
}

fn bad_async() -> ApiError {
    ApiError::invalid("async", "The field 'async' must be true or false.")
}

impl Submission {
    pub fn from_json(
        run_async: Option<serde_json::Value>,
        webhook_url: Option<String>,
    ) -> Result<Self, ApiError> {
        let run_async = match run_async {
            None | Some(serde_json::Value::Null) => false,
            Some(serde_json::Value::Bool(b)) => b,
            Some(_) => return Err(bad_async()),
        };
        Ok(Self {
            run_async,
            webhook_url,
        })
    }

    pub fn from_form(form: &Form) -> Result<Self, ApiError> {
        Ok(Self {
            run_async: form
                .bool("async")
                .map_err(|_| bad_async())?
                .unwrap_or(false),
            webhook_url: form.text("webhook_url")?.filter(|u| !u.trim().is_empty()),
        })
    }

    async fn check(&self, state: &AppState) -> Result<(), ApiError> {
        match (&self.webhook_url, self.run_async) {
            (Some(_), false) => Err(ApiError::invalid(
                "webhook_url",
                "A webhook is sent when async work finishes; set \"async\": true.",
            )),
            (Some(url), true) => webhooks::check(url, state.jobs.config.webhooks.allow_private)
                .await
                .map(|_| ()),
            (None, _) => Ok(()),
        }
    }
}

/// The uploads of one request, by the key their [`ImageRef`] names.
#[derive(Default)]
pub struct Uploads(HashMap<String, Bytes>);

impl Uploads {
    /// Takes the form's files under `field` as references to uploads.
    pub fn take(&mut self, form: &mut Form, field: &str, role: ImageRole) -> Vec<ImageRef> {
        self.add(form.files(field), field, role)
    }

    pub fn add(&mut self, files: Vec<Bytes>, field: &str, role: ImageRole) -> Vec<ImageRef> {
        files
            .into_iter()
            .map(|bytes| {
                let key = format!("upload{}", self.0.len());
                self.0.insert(key.clone(), bytes);
                ImageRef {
                    key,
                    field: field.to_owned(),
                    role,
                }
            })
            .collect()
    }

    pub fn into_map(self) -> HashMap<String, Bytes> {
        self.0
    }
}

/// What acceptance decided.
pub enum Accepted {
    /// Stored for a worker: the 202 to send.
    Queued(Response),
    /// To run now.
    Run(Box<Plan>, Inputs),
}

/// Checks `work` and queues it or hands it back to run. `refused` is the concurrency
/// refusal of a request that came without an in-flight slot: it stands unless the work
/// is async (queued work waits for a slot instead).
#[allow(clippy::too_many_arguments)]
pub async fn accept(
    state: &AppState,
    ctx: &RequestContext,
    refused: Option<ApiError>,
    path: &str,
    mut work: Work,
    uploads: Uploads,
    submission: Submission,
) -> Result<Accepted, ApiError> {
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
        return Ok(Accepted::Run(Box::new(plan), inputs));
    }
    drop((plan, inputs));
    work.pin_default_model(&state.executor.env.default_model);
    let id = &ctx.request_id;
    state
        .jobs
        .submit(id, &ctx.caller, path, work, uploads, submission.webhook_url)
        .await?;
    let status_url = format!("/requests/{id}");
    let mut response = (
        StatusCode::ACCEPTED,
        Json(json!({"request_id": id, "status": "queued", "status_url": status_url})),
    )
        .into_response();
    if let Ok(v) = HeaderValue::from_str(&status_url) {
        response.headers_mut().insert(header::LOCATION, v);
    }
    Ok(Accepted::Queued(response))
}

/// Runs a plan in a task of its own: a client that disconnects does not cancel work that
/// is being paid for, and the request's in-flight slot (in `ctx`) stays held until the
/// work ends.
pub async fn run(
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
    })
    .await
    .map_err(ApiError::internal)?
}

/// Runs a plan with `progress` (a story's steps), in a task of its own as [`run`] does.
pub fn spawn_with_progress(
    state: &AppState,
    ctx: &RequestContext,
    plan: Plan,
    inputs: Inputs,
    progress: Box<dyn Fn(StoryStep) -> BoxFuture<'static, ()> + Send + Sync>,
) -> crate::tasks::Spawned<Result<Done, ApiError>> {
    let (executor, ctx) = (Arc::clone(&state.executor), ctx.clone());
    crate::tasks::spawn(async move {
        let progress: Progress<'_> = &*progress;
        executor.run(&ctx, plan, inputs, progress).await
    })
}

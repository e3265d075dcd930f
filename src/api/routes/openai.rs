//! OpenAI-compatible `POST /v1/images/generations` and `POST /v1/images/edits`, answering
//! in OpenAI's response and error shapes, so the official `openai` client works with a
//! `base_url` and an imagegate key. Keys, limits, usage and storage apply as everywhere.
//!
//! The mapping of OpenAI's parameters is `generation::openai`; `n` runs as that many
//! upstream calls, never more at once than the key's concurrency allows.

use axum::extract::{Request, State};
use axum::response::Response;
use serde::Deserialize;

use crate::api::AppState;
use crate::api::extract::caller::Queueable;
use crate::api::extract::form::{Form, FormSpec};
use crate::api::extract::json::JsonBody;
use crate::api::extract::reply::Reply;
use crate::api::extract::work::{Submission, Submitted, Uploads};
use crate::api::submit;
use crate::caller::RequestContext;
use crate::error::ApiError;
use crate::generation::openai::OpenAiFields;
use crate::generation::params::RawRouting;
use crate::generation::work::{ImageRole, Work};

/// Both routes' path for the queue and the logs.
const PATH: &str = "/v1/images";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenerationsBody {
    prompt: Option<String>,
    model: Option<String>,
    n: Option<i64>,
    size: Option<String>,
    response_format: Option<String>,
    quality: Option<String>,
    style: Option<String>,
    /// An end-user id for the caller's own abuse tracking; recorded nowhere else.
    user: Option<String>,
    service_tier: Option<String>,
    thinking_level: Option<String>,
    fallback: Option<bool>,
}

impl GenerationsBody {
    pub fn into_work(self) -> Submitted {
        let _ = self.user;
        let fields = OpenAiFields {
            prompt: self.prompt,
            model: self.model,
            n: self.n,
            size: self.size,
            response_format: self.response_format,
            quality: self.quality,
            style: self.style,
            routing: RawRouting {
                service_tier: self.service_tier,
                thinking_level: self.thinking_level,
                fallback: self.fallback,
            },
        };
        Submitted::without_uploads(Work::OpenAiGenerations { fields }, Submission::default())
    }
}

/// OpenAI's surface takes no `async`: a request that finds its key's in-flight slots
/// taken is refused before its body is read (by the `RequestContext` extractor), and the
/// work runs now.
fn runs_now(ctx: RequestContext) -> Queueable {
    Queueable { ctx, refused: None }
}

pub async fn generations(
    State(state): State<AppState>,
    ctx: RequestContext,
    reply: Reply,
    JsonBody(body): JsonBody<GenerationsBody>,
) -> Result<Response, ApiError> {
    submit::handle(&state, runs_now(ctx), reply, PATH, body.into_work()).await
}

const EDIT_FIELDS: &[&str] = &[
    "prompt",
    "model",
    "n",
    "size",
    "response_format",
    "quality",
    "style",
    "user",
    RawRouting::FIELDS[0],
    RawRouting::FIELDS[1],
    RawRouting::FIELDS[2],
];

pub async fn edits(
    State(state): State<AppState>,
    ctx: RequestContext,
    reply: Reply,
    request: Request,
) -> Result<Response, ApiError> {
    let spec = FormSpec {
        text_fields: EDIT_FIELDS,
        file_fields: &["image", "image[]", "mask"],
        max_file_bytes: state.limits.max_file_bytes,
    };
    let mut form = Form::from_request(request, &spec, state.body_limits()).await?;
    let submitted = edits_work(&mut form)?;
    submit::handle(&state, runs_now(ctx), reply, PATH, submitted).await
}

fn edits_work(form: &mut Form) -> Result<Submitted, ApiError> {
    let fields = OpenAiFields {
        prompt: form.text("prompt")?,
        model: form.text("model")?,
        n: form.integer("n")?,
        size: form.text("size")?,
        response_format: form.text("response_format")?,
        quality: form.text("quality")?,
        style: form.text("style")?,
        routing: RawRouting {
            service_tier: form.text("service_tier")?,
            thinking_level: form.text("thinking_level")?,
            fallback: form.bool("fallback")?,
        },
    };
    let mut uploads = Uploads::default();
    let mut images = uploads.take(form, "image", ImageRole::Input);
    images.extend(uploads.take(form, "image[]", ImageRole::Input));
    let masks = uploads.take(form, "mask", ImageRole::OpenAiMask);
    let work = Work::OpenAiEdits {
        fields,
        images,
        masks,
    };
    Ok(Submitted {
        work,
        uploads,
        submission: Submission::default(),
    })
}

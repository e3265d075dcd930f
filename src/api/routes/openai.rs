//! OpenAI-compatible `POST /v1/images/generations` and `POST /v1/images/edits`, answering
//! in OpenAI's response and error shapes, so the official `openai` client works with a
//! `base_url` and an imagegate key. Keys, limits, usage and storage apply as everywhere.
//!
//! The mapping of OpenAI's parameters is `generation::openai`; `n` runs as that many
//! upstream calls, never more at once than the key's concurrency allows.

use axum::Json;
use axum::extract::{Request, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::api::AppState;
use crate::api::extract::form::{Form, FormSpec};
use crate::api::extract::json::JsonBody;
use crate::api::routes::files;
use crate::api::submit::{self, Accepted, Submission, Uploads};
use crate::caller::RequestContext;
use crate::error::ApiError;
use crate::generation::execute::Done;
use crate::generation::openai::{Format, OpenAiFields};
use crate::generation::params::RawRouting;
use crate::generation::work::{ImageRole, Work};
use crate::generation::{Outcome, Usage};

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

pub async fn generations(
    State(state): State<AppState>,
    ctx: RequestContext,
    headers: HeaderMap,
    JsonBody(body): JsonBody<GenerationsBody>,
) -> Result<Response, ApiError> {
    let _ = body.user;
    let fields = OpenAiFields {
        prompt: body.prompt,
        model: body.model,
        n: body.n,
        size: body.size,
        response_format: body.response_format,
        quality: body.quality,
        style: body.style,
        routing: RawRouting {
            service_tier: body.service_tier,
            thinking_level: body.thinking_level,
            fallback: body.fallback,
        },
    };
    let work = Work::OpenAiGenerations { fields };
    run(&state, &ctx, &headers, work, Uploads::default()).await
}

/// OpenAI's surface takes no `async`: the work runs now, in OpenAI's answer shape.
async fn run(
    state: &AppState,
    ctx: &RequestContext,
    headers: &HeaderMap,
    work: Work,
    uploads: Uploads,
) -> Result<Response, ApiError> {
    let path = "/v1/images";
    match submit::accept(state, ctx, None, path, work, uploads, Submission::default()).await? {
        Accepted::Run(plan, inputs) => match submit::run(state, ctx, *plan, inputs).await? {
            Done::OpenAi { outcomes, format } => Ok(answer(state, headers, outcomes, format)),
            _ => Err(ApiError::internal(
                "an OpenAI request produced another kind of result",
            )),
        },
        Accepted::Queued(_) => Err(ApiError::internal("OpenAI requests are never queued")),
    }
}

fn answer(
    state: &AppState,
    headers: &HeaderMap,
    outcomes: Vec<Outcome>,
    format: Format,
) -> Response {
    let origin = files::origin(headers);
    let mut usage = Usage {
        input_tokens: 0,
        output_tokens: 0,
        image_tokens: 0,
        thought_tokens: 0,
        cost_usd: 0.0,
    };
    let mut data = Vec::new();
    for outcome in &outcomes {
        let r = &outcome.response;
        usage.input_tokens += r.usage.input_tokens;
        usage.output_tokens += r.usage.output_tokens + r.usage.thought_tokens;
        usage.image_tokens += r.usage.image_tokens;
        usage.cost_usd += r.usage.cost_usd;
        for (image, id) in r.images.iter().zip(&r.image_ids) {
            data.push(match format {
                Format::B64 => json!({"b64_json": image, "revised_prompt": Value::Null}),
                Format::Url => json!({"url": format!("{origin}{}", files::url(&state.url_signer, id, state.clock.now_ms())), "revised_prompt": Value::Null}),
            });
        }
    }
    let model = outcomes
        .first()
        .map(|o| o.response.model.clone())
        .unwrap_or_default();
    let body = json!({
        "created": state.clock.now_ms() / 1000,
        "data": data,
        "usage": {
            "input_tokens": usage.input_tokens,
            "output_tokens": usage.output_tokens,
            "total_tokens": usage.input_tokens + usage.output_tokens,
            "output_tokens_details": {"image_tokens": usage.image_tokens},
            "cost_usd": (usage.cost_usd * 1e6).round() / 1e6,
        },
    });
    let mut response = Json(body).into_response();
    if let Ok(v) = model.parse() {
        response.headers_mut().insert("x-imagegate-model", v);
    }
    response
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
    headers: HeaderMap,
    request: Request,
) -> Result<Response, ApiError> {
    let spec = FormSpec {
        text_fields: EDIT_FIELDS,
        file_fields: &["image", "image[]", "mask"],
        max_file_bytes: state.limits.max_file_bytes,
    };
    let mut form = Form::from_request(request, &spec, state.body_limits()).await?;
    let n = form.integer("n")?;
    let fields = OpenAiFields {
        prompt: form.text("prompt")?,
        model: form.text("model")?,
        n,
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
    let mut images = uploads.take(&mut form, "image", ImageRole::Input);
    images.extend(uploads.take(&mut form, "image[]", ImageRole::Input));
    let masks = uploads.take(&mut form, "mask", ImageRole::OpenAiMask);
    let work = Work::OpenAiEdits {
        fields,
        images,
        masks,
    };
    run(&state, &ctx, &headers, work, uploads).await
}

//! `POST /chat/create`, `POST /chat/{id}/message`, `GET /chat/{id}`, `DELETE /chat/{id}`.

use axum::Json;
use axum::extract::{FromRequest, Path, Request, State};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use crate::api::AppState;
use crate::api::extract::caller::Queueable;
use crate::api::extract::form::{Form, is_multipart};
use crate::api::extract::json::JsonBody;
use crate::api::routes::generate::{model_headers, one_or_many, raw_options, read_form};
use crate::api::submit::{self, Accepted, Submission, Uploads};
use crate::caller::Caller;
use crate::error::ApiError;
use crate::generation::execute::{Done, MessageResponse};
use crate::generation::params::{RawOptions, RawRouting};
use crate::generation::work::{ImageRole, Work};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateBody {
    model: Option<String>,
    system_prompt: Option<String>,
}

pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody<CreateBody>,
) -> Result<Response, ApiError> {
    let created = state
        .chat
        .create(&caller, body.model, body.system_prompt)
        .await?;
    Ok(Json(created).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MessageBody {
    message: Option<String>,
    #[serde(default, deserialize_with = "one_or_many")]
    response_modalities: Option<Vec<String>>,
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

impl MessageBody {
    pub fn into_work(self, session_id: String) -> Result<(Work, Submission), ApiError> {
        let submission = Submission::from_json(self.run_async, self.webhook_url)?;
        let work = Work::ChatMessage {
            session_id,
            message: self.message,
            options: RawOptions {
                model: None,
                response_modalities: self.response_modalities,
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
            images: Vec::new(),
        };
        Ok((work, submission))
    }
}

const MESSAGE_FIELDS: &[&str] = &["message"];

/// A multipart message as a unit of work (`model` is read only to be refused).
pub fn message_work(
    session_id: String,
    form: &mut Form,
    uploads: &mut Uploads,
) -> Result<Work, ApiError> {
    Ok(Work::ChatMessage {
        session_id,
        message: form.text("message")?,
        options: raw_options(form)?,
        images: uploads.take(form, "image", ImageRole::Input),
    })
}

/// JSON `{"message": …}`, or multipart with `message` and an optional `image`.
pub async fn message(
    State(state): State<AppState>,
    Queueable { ctx, refused }: Queueable,
    Path(session_id): Path<String>,
    request: Request,
) -> Result<Response, ApiError> {
    let mut uploads = Uploads::default();
    let (work, submission) = if is_multipart(&request) {
        let mut form = read_form(&state, request, MESSAGE_FIELDS, &["image"]).await?;
        let submission = Submission::from_form(&form)?;
        (
            message_work(session_id, &mut form, &mut uploads)?,
            submission,
        )
    } else {
        let JsonBody(body) = JsonBody::<MessageBody>::from_request(request, &state).await?;
        body.into_work(session_id)?
    };
    let path = "/chat/{session_id}/message";
    let session = match &work {
        Work::ChatMessage { session_id, .. } => session_id.clone(),
        _ => String::new(),
    };
    match submit::accept(&state, &ctx, refused, path, work, uploads, submission).await? {
        Accepted::Queued(response) => Ok(response),
        Accepted::Run(plan, inputs) => {
            // Its place in the session's order is taken now, at acceptance; the run
            // waits for the earlier messages (`generation::chat_order`).
            state.chat.order.take_place(&ctx, &session).await?;
            reply(submit::run(&state, &ctx, *plan, inputs).await?)
        }
    }
}

fn reply(done: Done) -> Result<Response, ApiError> {
    match done {
        Done::Chat(reply) => {
            let headers = model_headers(&reply.outcome);
            let body = MessageResponse {
                generation: reply.outcome.response,
                session_id: reply.session_id,
                turn: reply.turn,
            };
            Ok((headers, Json(body)).into_response())
        }
        _ => Err(ApiError::internal(
            "a chat message produced another kind of result",
        )),
    }
}

pub async fn history(
    State(state): State<AppState>,
    caller: Caller,
    Path(session_id): Path<String>,
) -> Result<Response, ApiError> {
    Ok(Json(state.chat.history(&caller, &session_id).await?).into_response())
}

pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Path(session_id): Path<String>,
) -> Result<Response, ApiError> {
    state.chat.delete(&caller, &session_id).await?;
    Ok(Json(serde_json::json!({"session_id": session_id, "deleted": true})).into_response())
}

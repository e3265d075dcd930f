//! `POST /chat/create`, `POST /chat/{id}/message`, `GET /chat/{id}`, `DELETE /chat/{id}`.

use axum::Json;
use axum::extract::{FromRequest, Path, Request, State};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use crate::api::AppState;
use crate::api::extract::caller::Queueable;
use crate::api::extract::form::{Form, is_multipart};
use crate::api::extract::json::JsonBody;
use crate::api::extract::reply::Reply;
use crate::api::extract::work::{
    Submission, Submitted, Uploads, one_or_many, raw_options, read_form,
};
use crate::api::submit;
use crate::caller::Caller;
use crate::error::ApiError;
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
    pub fn into_work(self, session_id: String) -> Result<Submitted, ApiError> {
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
        Ok(Submitted::without_uploads(work, submission))
    }
}

pub const MESSAGE_FIELDS: &[&str] = &["message"];

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
    caller: Queueable,
    reply: Reply,
    Path(session_id): Path<String>,
    request: Request,
) -> Result<Response, ApiError> {
    let submitted = if is_multipart(&request) {
        let build =
            |form: &mut Form, uploads: &mut Uploads| message_work(session_id, form, uploads);
        read_form(&state, request, MESSAGE_FIELDS, &["image"], build).await?
    } else {
        let JsonBody(body) = JsonBody::<MessageBody>::from_request(request, &state).await?;
        body.into_work(session_id)?
    };
    submit::handle(
        &state,
        caller,
        reply,
        "/chat/{session_id}/message",
        submitted,
    )
    .await
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

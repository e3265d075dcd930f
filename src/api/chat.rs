//! `POST /chat/create`, `POST /chat/{id}/message`, `GET /chat/{id}`, `DELETE /chat/{id}`.

use axum::Json;
use axum::extract::{FromRequest, Multipart, Path, Request, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use crate::api::AppState;
use crate::api::form::{Form, FormSpec};
use crate::api::generate::{intake, model_headers, one_or_many, raw_options};
use crate::api::json::JsonBody;
use crate::caller::{Caller, RequestContext};
use crate::error::ApiError;
use crate::generation::GenerationResponse;
use crate::generation::chat::ChatMessage;
use crate::generation::params::{Prompt, RawOptions};

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
struct MessageBody {
    message: Option<String>,
    #[serde(default, deserialize_with = "one_or_many")]
    response_modalities: Option<Vec<String>>,
    temperature: Option<f64>,
    aspect_ratio: Option<String>,
    image_size: Option<String>,
    seed: Option<i64>,
}

const MESSAGE_FIELDS: &[&str] = &[
    "message",
    "response_modalities",
    "temperature",
    "aspect_ratio",
    "image_size",
    "seed",
];

#[derive(Serialize)]
struct MessageResponse {
    #[serde(flatten)]
    generation: GenerationResponse,
    session_id: String,
    turn: i64,
}

/// JSON `{"message": …}`, or multipart with `message` and an optional `image`.
pub async fn message(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path(session_id): Path<String>,
    request: Request,
) -> Result<Response, ApiError> {
    let is_multipart = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().starts_with("multipart/form-data"));
    let max_chars = state.limits.max_prompt_chars;
    let msg = if is_multipart {
        let multipart = Multipart::from_request(request, &state)
            .await
            .map_err(|e| {
                ApiError::invalid("body", "The multipart body is malformed.")
                    .caused_by(e.body_text())
            })?;
        let spec = FormSpec {
            text_fields: MESSAGE_FIELDS,
            file_fields: &["image"],
            max_file_bytes: state.limits.max_file_bytes,
        };
        let mut form = Form::read(multipart, &spec).await?;
        let message = Prompt::parse("message", form.text("message")?, max_chars)?;
        if form.text("model")?.is_some() {
            return Err(ApiError::invalid(
                "model",
                "A session's model is fixed when it is created.",
            ));
        }
        let options = raw_options(&form)?;
        let files = form.files("image");
        if files.len() > 1 {
            return Err(
                ApiError::invalid("image", "Send at most one image per message.")
                    .detail("count", files.len()),
            );
        }
        let image = intake(&state, "image", files).await?.pop();
        ChatMessage {
            message,
            image,
            options,
        }
    } else {
        let JsonBody(body) = JsonBody::<MessageBody>::from_request(request, &state).await?;
        ChatMessage {
            message: Prompt::parse("message", body.message, max_chars)?,
            image: None,
            options: RawOptions {
                model: None,
                response_modalities: body.response_modalities,
                temperature: body.temperature,
                aspect_ratio: body.aspect_ratio,
                image_size: body.image_size,
                seed: body.seed,
            },
        }
    };
    let reply = state.chat.send(&ctx, &session_id, msg).await?;
    let headers = model_headers(&reply.outcome);
    let body = MessageResponse {
        generation: reply.outcome.response,
        session_id: reply.session_id,
        turn: reply.turn,
    };
    Ok((headers, Json(body)).into_response())
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

//! `GET /requests/{id}`, `POST /requests/{id}/cancel` and `GET /webhooks/secret`; and
//! the reading of requests queued by versions before typed work (their stored HTTP
//! body) as units of work, so an upgrade finishes the work it had accepted.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::json;

use crate::api::AppState;
use crate::api::extract::form::{BodyLimits, Form, FormSpec};
use crate::api::extract::json;
use crate::api::extract::work::{Uploads, fields};
use crate::api::routes::advanced;
use crate::api::routes::chat::{MESSAGE_FIELDS, MessageBody, message_work};
use crate::api::routes::generate::{self, GenerateImageBody};
use crate::api::routes::story::StoryBody;
use crate::caller::Caller;
use crate::error::ApiError;
use crate::generation::GenerationError;
use crate::generation::work::Work;
use crate::jobs::LegacyWork;

/// Reads the stored bodies of the old format: the generation routes' own bodies, with
/// the async fields already taken out.
pub struct LegacyBodies {
    pub max_file_bytes: usize,
    pub limits: BodyLimits,
}

#[async_trait::async_trait]
impl LegacyWork for LegacyBodies {
    async fn decode(
        &self,
        path: &str,
        content_type: &str,
        body: Bytes,
    ) -> Result<(Work, HashMap<String, Bytes>), GenerationError> {
        // Refused in the HTTP layer's own terms, which the stored error body keeps.
        self.read(path, content_type, body)
            .await
            .map_err(|e| GenerationError::LegacyBody(Box::new(e)))
    }
}

impl LegacyBodies {
    async fn read(
        &self,
        path: &str,
        content_type: &str,
        body: Bytes,
    ) -> Result<(Work, HashMap<String, Bytes>), ApiError> {
        let chat_session = path
            .strip_prefix("/chat/")
            .and_then(|rest| rest.strip_suffix("/message"))
            .map(str::to_owned);
        let multipart = content_type
            .to_ascii_lowercase()
            .starts_with("multipart/form-data");
        if !multipart {
            let work = match (path, chat_session) {
                ("/generate-image", _) => json::parse::<GenerateImageBody>(&body)?.into_work()?,
                ("/story/generate", _) => json::parse::<StoryBody>(&body)?.into_work()?,
                (_, Some(session)) => json::parse::<MessageBody>(&body)?.into_work(session)?,
                _ => return Err(unknown(path)),
            };
            return Ok((work.work, HashMap::new()));
        }
        let forms = [
            &generate::EDIT,
            &generate::COMPOSE,
            &advanced::INPAINT,
            &advanced::OUTPAINT,
            &advanced::STYLE_TRANSFER,
        ];
        let route = forms.into_iter().find(|route| route.path == path);
        let (own, files) = route.map_or((MESSAGE_FIELDS, &["image"][..]), |r| (r.fields, r.files));
        let text_fields = fields(own);
        let spec = FormSpec {
            text_fields: &text_fields,
            file_fields: files,
            max_file_bytes: self.max_file_bytes,
        };
        let mut form = Form::from_bytes(content_type, body, &spec, self.limits).await?;
        let mut uploads = Uploads::default();
        let work = match (route, chat_session) {
            (Some(route), _) => (route.build)(&mut form, &mut uploads)?,
            (None, Some(session)) => message_work(session, &mut form, &mut uploads)?,
            (None, None) => return Err(unknown(path)),
        };
        Ok((work, uploads.into_map()))
    }
}

fn unknown(path: &str) -> ApiError {
    ApiError::internal(format!(
        "a stored request for {path}, which takes no async work"
    ))
}

pub async fn status(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    Ok(Json(state.jobs.status(&id, &caller.key_id).await?).into_response())
}

pub async fn cancel(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    Ok(Json(state.jobs.cancel(&id, &caller.key_id).await?).into_response())
}

/// The caller's Standard Webhooks secret, to verify the webhooks it receives.
pub async fn webhook_secret(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Response, ApiError> {
    let secret = state.jobs.webhook_secret(&caller.key_id).await?;
    Ok(Json(
        json!({"secret": secret, "scheme": "https://www.standardwebhooks.com/ (v1, HMAC-SHA256)"}),
    )
    .into_response())
}

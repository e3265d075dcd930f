//! `POST /generate-image`, `/edit-image`, `/compose-images` (docs/api.md#generation,
//! docs/api.md#edit-and-compose): each body read into a unit of work and handed to
//! `api::submit`.

use axum::extract::{Request, State};
use axum::response::Response;
use serde::Deserialize;

use crate::api::AppState;
use crate::api::extract::caller::Queueable;
use crate::api::extract::json::JsonBody;
use crate::api::extract::reply::Reply;
use crate::api::extract::work::{
    FormRoute, Submission, Submitted, form_quality, one_or_many, raw_options,
};
use crate::api::submit;
use crate::error::ApiError;
use crate::generation::params::{RawOptions, RawRouting};
use crate::generation::work::{ImageRole, QualityAsk, Work};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenerateImageBody {
    prompt: Option<String>,
    model: Option<String>,
    #[serde(default, deserialize_with = "one_or_many")]
    response_modalities: Option<Vec<String>>,
    temperature: Option<f64>,
    aspect_ratio: Option<String>,
    image_size: Option<String>,
    seed: Option<i64>,
    service_tier: Option<String>,
    thinking_level: Option<String>,
    fallback: Option<bool>,
    include_quality: Option<bool>,
    min_quality_score: Option<f64>,
    #[serde(rename = "async")]
    run_async: Option<serde_json::Value>,
    webhook_url: Option<String>,
}

impl GenerateImageBody {
    pub fn into_work(self) -> Result<Submitted, ApiError> {
        let submission = Submission::from_json(self.run_async, self.webhook_url)?;
        let work = Work::Generate {
            prompt: self.prompt,
            options: RawOptions {
                model: self.model,
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
            quality: QualityAsk {
                include_quality: self.include_quality,
                min_quality_score: self.min_quality_score,
            },
        };
        Ok(Submitted::without_uploads(work, submission))
    }
}

pub async fn generate_image(
    State(state): State<AppState>,
    caller: Queueable,
    reply: Reply,
    JsonBody(body): JsonBody<GenerateImageBody>,
) -> Result<Response, ApiError> {
    let submitted = body.into_work()?;
    submit::handle(&state, caller, reply, "/generate-image", submitted).await
}

pub const EDIT: FormRoute = FormRoute {
    path: "/edit-image",
    fields: &[
        "prompt",
        "preserve_subject",
        "edit_strength",
        "include_quality",
        "min_quality_score",
    ],
    files: &["image"],
    build: |form, uploads| {
        Ok(Work::Edit {
            prompt: form.text("prompt")?,
            edit_strength: form.number("edit_strength")?,
            preserve_subject: form.bool("preserve_subject")?,
            quality: form_quality(form)?,
            options: raw_options(form)?,
            images: uploads.take(form, "image", ImageRole::Input),
        })
    },
};

pub const COMPOSE: FormRoute = FormRoute {
    path: "/compose-images",
    fields: &[
        "prompt",
        "composition_style",
        "include_quality",
        "min_quality_score",
    ],
    files: &["images"],
    build: |form, uploads| {
        Ok(Work::Compose {
            prompt: form.text("prompt")?,
            composition_style: form.text("composition_style")?,
            quality: form_quality(form)?,
            options: raw_options(form)?,
            images: uploads.take(form, "images", ImageRole::Input),
        })
    },
};

pub async fn edit_image(
    State(state): State<AppState>,
    caller: Queueable,
    reply: Reply,
    request: Request,
) -> Result<Response, ApiError> {
    submit::form(&state, caller, reply, request, &EDIT).await
}

pub async fn compose_images(
    State(state): State<AppState>,
    caller: Queueable,
    reply: Reply,
    request: Request,
) -> Result<Response, ApiError> {
    submit::form(&state, caller, reply, request, &COMPOSE).await
}

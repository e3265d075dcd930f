//! `POST /advanced/inpaint`, `/advanced/outpaint`, `/advanced/style-transfer`: each body
//! read into a unit of work and handed to `api::submit`.

use axum::extract::{Request, State};
use axum::response::Response;

use crate::api::AppState;
use crate::api::extract::caller::Queueable;
use crate::api::extract::reply::Reply;
use crate::api::extract::work::{FormRoute, raw_options};
use crate::api::submit;
use crate::error::ApiError;
use crate::generation::work::{ImageRole, Work};

pub const INPAINT: FormRoute = FormRoute {
    path: "/advanced/inpaint",
    fields: &["prompt", "region_description"],
    files: &["image", "mask"],
    build: |form, uploads| {
        Ok(Work::Inpaint {
            prompt: form.text("prompt")?,
            region_description: form.text("region_description")?,
            options: raw_options(form)?,
            images: uploads.take(form, "image", ImageRole::Input),
            masks: uploads.take(form, "mask", ImageRole::Input),
        })
    },
};

pub const OUTPAINT: FormRoute = FormRoute {
    path: "/advanced/outpaint",
    fields: &["prompt", "direction", "extension_ratio"],
    files: &["image"],
    build: |form, uploads| {
        Ok(Work::Outpaint {
            prompt: form.text("prompt")?,
            direction: form.list("direction")?,
            extension_ratio: form.number("extension_ratio")?,
            options: raw_options(form)?,
            images: uploads.take(form, "image", ImageRole::Input),
        })
    },
};

pub const STYLE_TRANSFER: FormRoute = FormRoute {
    path: "/advanced/style-transfer",
    fields: &["style", "style_strength", "preserve_content", "prompt"],
    files: &["image"],
    build: |form, uploads| {
        Ok(Work::StyleTransfer {
            style: form.text("style")?,
            style_strength: form.number("style_strength")?,
            preserve_content: form.bool("preserve_content")?,
            prompt: form.text("prompt")?,
            options: raw_options(form)?,
            images: uploads.take(form, "image", ImageRole::Input),
        })
    },
};

pub async fn inpaint(
    State(state): State<AppState>,
    caller: Queueable,
    reply: Reply,
    request: Request,
) -> Result<Response, ApiError> {
    submit::form(&state, caller, reply, request, &INPAINT).await
}

pub async fn outpaint(
    State(state): State<AppState>,
    caller: Queueable,
    reply: Reply,
    request: Request,
) -> Result<Response, ApiError> {
    submit::form(&state, caller, reply, request, &OUTPAINT).await
}

pub async fn style_transfer(
    State(state): State<AppState>,
    caller: Queueable,
    reply: Reply,
    request: Request,
) -> Result<Response, ApiError> {
    submit::form(&state, caller, reply, request, &STYLE_TRANSFER).await
}

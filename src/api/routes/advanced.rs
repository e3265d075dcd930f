//! `POST /advanced/inpaint`, `/advanced/outpaint`, `/advanced/style-transfer`: each body
//! read into a unit of work and handed to `api::submit`.

use axum::extract::{Request, State};
use axum::response::Response;

use crate::api::AppState;
use crate::api::extract::caller::Queueable;
use crate::api::extract::form::Form;
use crate::api::extract::reply::Reply;
use crate::api::extract::work::{Uploads, raw_options, read_form};
use crate::api::submit;
use crate::error::ApiError;
use crate::generation::work::{ImageRole, Work};

pub const INPAINT_FIELDS: &[&str] = &["prompt", "region_description"];
pub const OUTPAINT_FIELDS: &[&str] = &["prompt", "direction", "extension_ratio"];
pub const STYLE_FIELDS: &[&str] = &["style", "style_strength", "preserve_content", "prompt"];

pub fn inpaint_work(form: &mut Form, uploads: &mut Uploads) -> Result<Work, ApiError> {
    Ok(Work::Inpaint {
        prompt: form.text("prompt")?,
        region_description: form.text("region_description")?,
        options: raw_options(form)?,
        images: uploads.take(form, "image", ImageRole::Input),
        masks: uploads.take(form, "mask", ImageRole::Input),
    })
}

pub fn outpaint_work(form: &mut Form, uploads: &mut Uploads) -> Result<Work, ApiError> {
    Ok(Work::Outpaint {
        prompt: form.text("prompt")?,
        direction: form.list("direction")?,
        extension_ratio: form.number("extension_ratio")?,
        options: raw_options(form)?,
        images: uploads.take(form, "image", ImageRole::Input),
    })
}

pub fn style_transfer_work(form: &mut Form, uploads: &mut Uploads) -> Result<Work, ApiError> {
    Ok(Work::StyleTransfer {
        style: form.text("style")?,
        style_strength: form.number("style_strength")?,
        preserve_content: form.bool("preserve_content")?,
        prompt: form.text("prompt")?,
        options: raw_options(form)?,
        images: uploads.take(form, "image", ImageRole::Input),
    })
}

pub async fn inpaint(
    State(state): State<AppState>,
    caller: Queueable,
    reply: Reply,
    request: Request,
) -> Result<Response, ApiError> {
    let submitted = read_form(
        &state,
        request,
        INPAINT_FIELDS,
        &["image", "mask"],
        inpaint_work,
    )
    .await?;
    submit::handle(&state, caller, reply, "/advanced/inpaint", submitted).await
}

pub async fn outpaint(
    State(state): State<AppState>,
    caller: Queueable,
    reply: Reply,
    request: Request,
) -> Result<Response, ApiError> {
    let submitted = read_form(&state, request, OUTPAINT_FIELDS, &["image"], outpaint_work).await?;
    submit::handle(&state, caller, reply, "/advanced/outpaint", submitted).await
}

pub async fn style_transfer(
    State(state): State<AppState>,
    caller: Queueable,
    reply: Reply,
    request: Request,
) -> Result<Response, ApiError> {
    let submitted = read_form(
        &state,
        request,
        STYLE_FIELDS,
        &["image"],
        style_transfer_work,
    )
    .await?;
    submit::handle(&state, caller, reply, "/advanced/style-transfer", submitted).await
}

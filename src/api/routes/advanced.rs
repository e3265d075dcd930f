//! `POST /advanced/inpaint`, `/advanced/outpaint`, `/advanced/style-transfer`: each body
//! read into a unit of work and handed to `api::submit`.

use axum::extract::{Request, State};
use axum::response::Response;

use crate::api::AppState;
use crate::api::extract::caller::Queueable;
use crate::api::extract::form::Form;
use crate::api::routes::generate::{raw_options, read_form, run_generation};
use crate::api::submit::{Submission, Uploads};
use crate::error::ApiError;
use crate::generation::work::{ImageRole, Work};

const INPAINT_FIELDS: &[&str] = &["prompt", "region_description"];
const OUTPAINT_FIELDS: &[&str] = &["prompt", "direction", "extension_ratio"];
const STYLE_FIELDS: &[&str] = &["style", "style_strength", "preserve_content", "prompt"];

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

type Build = fn(&mut Form, &mut Uploads) -> Result<Work, ApiError>;

async fn handle(
    state: AppState,
    Queueable { ctx, refused }: Queueable,
    request: Request,
    path: &str,
    own: &[&'static str],
    files: &[&str],
    build: Build,
) -> Result<Response, ApiError> {
    let mut form = read_form(&state, request, own, files).await?;
    let submission = Submission::from_form(&form)?;
    let mut uploads = Uploads::default();
    let work = build(&mut form, &mut uploads)?;
    run_generation(&state, &ctx, refused, path, work, uploads, submission).await
}

pub async fn inpaint(
    State(state): State<AppState>,
    queueable: Queueable,
    request: Request,
) -> Result<Response, ApiError> {
    let path = "/advanced/inpaint";
    handle(
        state,
        queueable,
        request,
        path,
        INPAINT_FIELDS,
        &["image", "mask"],
        inpaint_work,
    )
    .await
}

pub async fn outpaint(
    State(state): State<AppState>,
    queueable: Queueable,
    request: Request,
) -> Result<Response, ApiError> {
    let path = "/advanced/outpaint";
    handle(
        state,
        queueable,
        request,
        path,
        OUTPAINT_FIELDS,
        &["image"],
        outpaint_work,
    )
    .await
}

pub async fn style_transfer(
    State(state): State<AppState>,
    queueable: Queueable,
    request: Request,
) -> Result<Response, ApiError> {
    let path = "/advanced/style-transfer";
    handle(
        state,
        queueable,
        request,
        path,
        STYLE_FIELDS,
        &["image"],
        style_transfer_work,
    )
    .await
}

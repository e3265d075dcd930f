//! `POST /advanced/inpaint`, `/advanced/outpaint`, `/advanced/style-transfer`.

use axum::extract::{Multipart, State};
use axum::response::Response;

use crate::api::AppState;
use crate::api::form::{Form, FormSpec};
use crate::api::generate::{OPTION_FIELDS, intake, raw_options, respond};
use crate::caller::RequestContext;
use crate::error::ApiError;
use crate::generation::advanced::{self, Inpaint, Outpaint};
use crate::generation::canvas::{Directions, ExtensionRatio};
use crate::generation::params::{Prompt, Strength};
use crate::generation::styles::Style;
use bytes::Bytes;

fn fields(own: &[&'static str]) -> Vec<&'static str> {
    own.iter().copied().chain(OPTION_FIELDS).collect()
}

async fn read(
    state: &AppState,
    multipart: Multipart,
    own: &[&'static str],
    files: &'static [&'static str],
) -> Result<Form, ApiError> {
    let text_fields = fields(own);
    let spec = FormSpec {
        text_fields: &text_fields,
        file_fields: files,
        max_file_bytes: state.limits.max_file_bytes,
    };
    Form::read(multipart, &spec).await
}

/// Exactly one file under `field`, required.
fn one_file(form: &mut Form, field: &str) -> Result<Bytes, ApiError> {
    let mut files = form.files(field);
    if files.len() > 1 {
        return Err(
            ApiError::invalid(field, format!("Send exactly one '{field}' file."))
                .detail("count", files.len()),
        );
    }
    files.pop().ok_or_else(|| {
        ApiError::invalid(field, format!("The {field} is required.")).detail("reason", "missing")
    })
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(ApiError::internal)?
}

pub async fn inpaint(
    State(state): State<AppState>,
    ctx: RequestContext,
    multipart: Multipart,
) -> Result<Response, ApiError> {
    let mut form = read(
        &state,
        multipart,
        &["prompt", "region_description"],
        &["image", "mask"],
    )
    .await?;
    let prompt = Prompt::parse(
        "prompt",
        form.text("prompt")?,
        state.limits.max_prompt_chars,
    )?;
    let region_description = form
        .text("region_description")?
        .filter(|r| !r.trim().is_empty());
    if region_description
        .as_ref()
        .is_some_and(|r| r.chars().count() > state.limits.max_prompt_chars)
    {
        return Err(
            ApiError::invalid("region_description", "The region description is too long.")
                .detail("max_length", state.limits.max_prompt_chars),
        );
    }
    let options = raw_options(&form)?.parse(&state.models, &state.default_model)?;
    let original = one_file(&mut form, "image")?;
    let masks = form.files("mask");
    if masks.len() > 1 {
        return Err(
            ApiError::invalid("mask", "Send at most one mask.").detail("count", masks.len())
        );
    }
    let image = intake(&state, "image", vec![original.clone()])
        .await?
        .pop()
        .ok_or_else(|| ApiError::internal("intake lost the image"))?;
    let mask = intake(&state, "mask", masks).await?.pop();
    let job = Inpaint {
        prompt,
        region_description,
        image,
        original,
        mask,
    };
    let (request, post) = blocking(move || advanced::inpaint(job, options)).await?;
    Ok(respond(
        state.generator.run_with(&ctx, request, post).await?,
    ))
}

pub async fn outpaint(
    State(state): State<AppState>,
    ctx: RequestContext,
    multipart: Multipart,
) -> Result<Response, ApiError> {
    let mut form = read(
        &state,
        multipart,
        &["prompt", "direction", "extension_ratio"],
        &["image"],
    )
    .await?;
    let prompt = Prompt::parse(
        "prompt",
        form.text("prompt")?,
        state.limits.max_prompt_chars,
    )?;
    let directions = Directions::parse(form.list("direction")?.as_deref())?;
    let ratio = ExtensionRatio::parse(form.number("extension_ratio")?)?;
    let options = raw_options(&form)?.parse(&state.models, &state.default_model)?;
    let original = one_file(&mut form, "image")?;
    // Validates format, size and dimensions; the canvas is grown from the upload itself.
    intake(&state, "image", vec![original.clone()]).await?;
    let job = Outpaint {
        prompt,
        original,
        directions,
        ratio,
        max_edge: state.limits.max_input_edge,
        max_pixels: state.limits.max_input_pixels,
    };
    let (request, post) = blocking(move || advanced::outpaint(job, options)).await?;
    Ok(respond(
        state.generator.run_with(&ctx, request, Some(post)).await?,
    ))
}

pub async fn style_transfer(
    State(state): State<AppState>,
    ctx: RequestContext,
    multipart: Multipart,
) -> Result<Response, ApiError> {
    let mut form = read(
        &state,
        multipart,
        &["style", "style_strength", "preserve_content", "prompt"],
        &["image"],
    )
    .await?;
    let style = Style::parse(form.text("style")?)?;
    let strength = form
        .number("style_strength")?
        .map(|v| Strength::parse("style_strength", v, 0.0))
        .transpose()?;
    let preserve_content = form.bool("preserve_content")?.unwrap_or(true);
    let extra = form
        .text("prompt")?
        .filter(|p| !p.trim().is_empty())
        .map(|p| Prompt::parse("prompt", Some(p), state.limits.max_prompt_chars))
        .transpose()?;
    let options = raw_options(&form)?.parse(&state.models, &state.default_model)?;
    let original = one_file(&mut form, "image")?;
    let image = intake(&state, "image", vec![original])
        .await?
        .pop()
        .ok_or_else(|| ApiError::internal("intake lost the image"))?;
    let request =
        advanced::style_transfer(image, style, strength, preserve_content, extra, options);
    Ok(respond(state.generator.run(&ctx, request).await?))
}

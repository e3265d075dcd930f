//! `POST /generate-image`, `/edit-image`, `/compose-images` (contract §2): parse the
//! wire shape, build one provider request, run the pipeline, answer.

use axum::extract::{Multipart, State};
use axum::http::{HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde::{Deserialize, Deserializer};

use crate::api::AppState;
use crate::api::form::{Form, FormSpec};
use crate::api::generation_body;
use crate::api::json::JsonBody;
use crate::api::quality::{self, QUALITY_FIELDS, form_quality};
use crate::caller::RequestContext;
use crate::error::ApiError;
use crate::generation::params::{Prompt, RawOptions, Strength};
use crate::generation::quality_check::QualityCheck;
use crate::generation::{Outcome, prompts, requests};
use crate::imaging::{self, InputImage};
use crate::models::Retirement;

/// `response_modalities` as a list, or a single string for convenience.
pub fn one_or_many<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<String>>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(Option::<OneOrMany>::deserialize(d)?.map(|v| match v {
        OneOrMany::One(s) => vec![s],
        OneOrMany::Many(v) => v,
    }))
}

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
    include_quality: Option<bool>,
    min_quality_score: Option<f64>,
}

pub async fn generate_image(
    State(state): State<AppState>,
    ctx: RequestContext,
    JsonBody(body): JsonBody<GenerateImageBody>,
) -> Result<Response, ApiError> {
    let prompt = Prompt::parse("prompt", body.prompt, state.limits.max_prompt_chars)?;
    let check = QualityCheck::parse(body.include_quality, body.min_quality_score)?;
    let options = RawOptions {
        model: body.model,
        response_modalities: body.response_modalities,
        temperature: body.temperature,
        aspect_ratio: body.aspect_ratio,
        image_size: body.image_size,
        seed: body.seed,
    }
    .parse(&state.models, &state.default_model)?;
    let outcome = quality::generate(&state, &ctx, check, prompt, |p| {
        Ok(requests::text_to_image(p, options.clone()))
    })
    .await?;
    Ok(respond(outcome))
}

pub const OPTION_FIELDS: [&str; 6] = [
    "model",
    "response_modalities",
    "temperature",
    "aspect_ratio",
    "image_size",
    "seed",
];

pub fn raw_options(form: &Form) -> Result<RawOptions, ApiError> {
    Ok(RawOptions {
        model: form.text("model")?,
        response_modalities: form.list("response_modalities")?,
        temperature: form.number("temperature")?,
        aspect_ratio: form.text("aspect_ratio")?,
        image_size: form.text("image_size")?,
        seed: form.integer("seed")?,
    })
}

const EDIT_FIELDS: &[&str] = &[
    "prompt",
    "preserve_subject",
    "edit_strength",
    QUALITY_FIELDS[0],
    QUALITY_FIELDS[1],
    OPTION_FIELDS[0],
    OPTION_FIELDS[1],
    OPTION_FIELDS[2],
    OPTION_FIELDS[3],
    OPTION_FIELDS[4],
    OPTION_FIELDS[5],
];

pub async fn edit_image(
    State(state): State<AppState>,
    ctx: RequestContext,
    multipart: Multipart,
) -> Result<Response, ApiError> {
    let spec = FormSpec {
        text_fields: EDIT_FIELDS,
        file_fields: &["image"],
        max_file_bytes: state.limits.max_file_bytes,
    };
    let mut form = Form::read(multipart, &spec).await?;
    let prompt = Prompt::parse(
        "prompt",
        form.text("prompt")?,
        state.limits.max_prompt_chars,
    )?;
    let strength = form
        .number("edit_strength")?
        .map(|v| Strength::parse("edit_strength", v, 0.1))
        .transpose()?;
    let preserve_subject = form.bool("preserve_subject")?.unwrap_or(false);
    let check = form_quality(&form)?;
    let options = raw_options(&form)?.parse(&state.models, &state.default_model)?;
    let files = form.files("image");
    if files.len() > 1 {
        return Err(
            ApiError::invalid("image", "Send exactly one image to edit.")
                .detail("count", files.len()),
        );
    }
    let image = intake(&state, "image", files).await?.pop().ok_or_else(|| {
        ApiError::invalid("image", "The image is required.").detail("reason", "missing")
    })?;
    let outcome = quality::generate(&state, &ctx, check, prompt, |p| {
        let (image, options) = (image.clone(), options.clone());
        Ok(requests::edit(
            p,
            image,
            strength,
            preserve_subject,
            options,
        ))
    })
    .await?;
    Ok(respond(outcome))
}

const COMPOSE_FIELDS: &[&str] = &[
    "prompt",
    "composition_style",
    QUALITY_FIELDS[0],
    QUALITY_FIELDS[1],
    OPTION_FIELDS[0],
    OPTION_FIELDS[1],
    OPTION_FIELDS[2],
    OPTION_FIELDS[3],
    OPTION_FIELDS[4],
    OPTION_FIELDS[5],
];

pub async fn compose_images(
    State(state): State<AppState>,
    ctx: RequestContext,
    multipart: Multipart,
) -> Result<Response, ApiError> {
    let spec = FormSpec {
        text_fields: COMPOSE_FIELDS,
        file_fields: &["images"],
        max_file_bytes: state.limits.max_file_bytes,
    };
    let mut form = Form::read(multipart, &spec).await?;
    let prompt = Prompt::parse(
        "prompt",
        form.text("prompt")?,
        state.limits.max_prompt_chars,
    )?;
    let style = prompts::parse_composition_style(form.text("composition_style")?.as_deref())?;
    let check = form_quality(&form)?;
    let options = raw_options(&form)?.parse(&state.models, &state.default_model)?;
    let files = form.files("images");
    requests::check_compose_count(files.len())?;
    let images = intake(&state, "images", files).await?;
    let outcome = quality::generate(&state, &ctx, check, prompt, |p| {
        requests::compose(p, images.clone(), style, options.clone())
    })
    .await?;
    Ok(respond(outcome))
}

/// Validates and downscales uploads off the async threads.
pub async fn intake(
    state: &AppState,
    field: &'static str,
    files: Vec<Bytes>,
) -> Result<Vec<InputImage>, ApiError> {
    let limits = state.intake_limits();
    tokio::task::spawn_blocking(move || {
        files
            .into_iter()
            .map(|bytes| imaging::accept_input(field, bytes, &limits))
            .collect()
    })
    .await
    .map_err(ApiError::internal)?
}

/// The generation response, with the model-substitution headers when a retired name
/// was routed to its successor (RFC 9745 `Deprecation`, plus the model actually used).
pub fn respond(outcome: Outcome) -> Response {
    let headers = model_headers(&outcome);
    (headers, generation_body::json(outcome.response)).into_response()
}

pub fn model_headers(outcome: &Outcome) -> HeaderMap {
    substitution_headers(&outcome.response.model, outcome.substituted.as_ref())
}

pub fn substitution_headers(model: &str, substituted: Option<&(String, Retirement)>) -> HeaderMap {
    let mut headers = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_str(model) {
        headers.insert("x-imagegate-model", v);
    }
    if let Some((requested, retirement)) = substituted {
        let deprecation = date_to_unix(&retirement.shut_down)
            .map_or_else(|| "?1".to_owned(), |ts| format!("@{ts}"));
        let pairs = [
            ("deprecation", deprecation),
            ("x-imagegate-requested-model", requested.clone()),
            (
                "x-imagegate-model-substituted",
                format!("{requested} -> {}", retirement.successor),
            ),
        ];
        for (name, value) in pairs {
            if let Ok(v) = HeaderValue::from_str(&value) {
                headers.insert(name, v);
            }
        }
    }
    headers
}

/// `YYYY-MM-DD` → seconds since the epoch (days-from-civil, proleptic Gregorian).
fn date_to_unix(date: &str) -> Option<i64> {
    let mut it = date.splitn(3, '-').map(|p| p.parse::<i64>().ok());
    let (y, m, d) = (it.next()??, it.next()??, it.next()??);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    Some((era * 146_097 + doe - 719_468) * 86_400)
}

#[cfg(test)]
mod tests {
    #[test]
    fn dates_convert_to_unix_seconds() {
        assert_eq!(super::date_to_unix("1970-01-01"), Some(0));
        assert_eq!(super::date_to_unix("2026-01-15"), Some(1_768_435_200));
        assert_eq!(super::date_to_unix("2026-13-01"), None);
    }
}

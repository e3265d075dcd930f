//! `POST /generate-image`, `/edit-image`, `/compose-images` (docs/api.md#generation,
//! docs/api.md#edit-and-compose): read the wire shape into a unit of work, hand it to
//! `api::submit`, answer.

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Deserializer};

use crate::api::AppState;
use crate::api::extract::caller::Queueable;
use crate::api::extract::form::{Form, FormSpec};
use crate::api::extract::json::JsonBody;
use crate::api::respond::body as generation_body;
use crate::api::submit::{self, ASYNC_FIELDS, Accepted, Submission, Uploads};
use crate::caller::RequestContext;
use crate::error::ApiError;
use crate::generation::Outcome;
use crate::generation::execute::Done;
use crate::generation::params::{RawOptions, RawRouting};
use crate::generation::work::{ImageRole, QualityAsk, Work};
use crate::models::{Reason, ServiceTier, Substitution};

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
    pub fn into_work(self) -> Result<(Work, Submission), ApiError> {
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
        Ok((work, submission))
    }
}

pub async fn generate_image(
    State(state): State<AppState>,
    Queueable { ctx, refused }: Queueable,
    JsonBody(body): JsonBody<GenerateImageBody>,
) -> Result<Response, ApiError> {
    let (work, submission) = body.into_work()?;
    run_generation(
        &state,
        &ctx,
        refused,
        "/generate-image",
        work,
        Uploads::default(),
        submission,
    )
    .await
}

/// Accepts `work` and answers: 202 when queued, else the generation response.
pub async fn run_generation(
    state: &AppState,
    ctx: &RequestContext,
    refused: Option<ApiError>,
    path: &str,
    work: Work,
    uploads: Uploads,
    submission: Submission,
) -> Result<Response, ApiError> {
    match submit::accept(state, ctx, refused, path, work, uploads, submission).await? {
        Accepted::Queued(response) => Ok(response),
        Accepted::Run(plan, inputs) => match submit::run(state, ctx, *plan, inputs).await? {
            Done::Generation(outcome) => Ok(respond(outcome)),
            _ => Err(ApiError::internal(
                "a generation produced another kind of result",
            )),
        },
    }
}

pub const OPTION_FIELDS: [&str; 9] = [
    "model",
    "response_modalities",
    "temperature",
    "aspect_ratio",
    "image_size",
    "seed",
    RawRouting::FIELDS[0],
    RawRouting::FIELDS[1],
    RawRouting::FIELDS[2],
];

pub fn raw_options(form: &Form) -> Result<RawOptions, ApiError> {
    Ok(RawOptions {
        model: form.text("model")?,
        response_modalities: form.list("response_modalities")?,
        temperature: form.number("temperature")?,
        aspect_ratio: form.text("aspect_ratio")?,
        image_size: form.text("image_size")?,
        seed: form.integer("seed")?,
        routing: RawRouting {
            service_tier: form.text("service_tier")?,
            thinking_level: form.text("thinking_level")?,
            fallback: form.bool("fallback")?,
        },
    })
}

/// The form fields a generation route takes: its own, the shared options, async.
pub fn fields(own: &[&'static str]) -> Vec<&'static str> {
    own.iter()
        .copied()
        .chain(OPTION_FIELDS)
        .chain(ASYNC_FIELDS)
        .collect()
}

/// Reads a generation route's multipart body through the one bounded intake.
pub async fn read_form(
    state: &AppState,
    request: Request,
    own: &[&'static str],
    files: &[&str],
) -> Result<Form, ApiError> {
    let text_fields = fields(own);
    let spec = FormSpec {
        text_fields: &text_fields,
        file_fields: files,
        max_file_bytes: state.limits.max_file_bytes,
    };
    Form::from_request(request, &spec, state.body_limits()).await
}

pub fn form_quality(form: &Form) -> Result<QualityAsk, ApiError> {
    Ok(QualityAsk {
        include_quality: form.bool("include_quality")?,
        min_quality_score: form.number("min_quality_score")?,
    })
}

const EDIT_FIELDS: &[&str] = &[
    "prompt",
    "preserve_subject",
    "edit_strength",
    "include_quality",
    "min_quality_score",
];

/// `/edit-image` as a unit of work.
pub fn edit_work(form: &mut Form, uploads: &mut Uploads) -> Result<Work, ApiError> {
    Ok(Work::Edit {
        prompt: form.text("prompt")?,
        edit_strength: form.number("edit_strength")?,
        preserve_subject: form.bool("preserve_subject")?,
        quality: form_quality(form)?,
        options: raw_options(form)?,
        images: uploads.take(form, "image", ImageRole::Input),
    })
}

pub async fn edit_image(
    State(state): State<AppState>,
    Queueable { ctx, refused }: Queueable,
    request: Request,
) -> Result<Response, ApiError> {
    let mut form = read_form(&state, request, EDIT_FIELDS, &["image"]).await?;
    let submission = Submission::from_form(&form)?;
    let mut uploads = Uploads::default();
    let work = edit_work(&mut form, &mut uploads)?;
    run_generation(
        &state,
        &ctx,
        refused,
        "/edit-image",
        work,
        uploads,
        submission,
    )
    .await
}

const COMPOSE_FIELDS: &[&str] = &[
    "prompt",
    "composition_style",
    "include_quality",
    "min_quality_score",
];

/// `/compose-images` as a unit of work.
pub fn compose_work(form: &mut Form, uploads: &mut Uploads) -> Result<Work, ApiError> {
    Ok(Work::Compose {
        prompt: form.text("prompt")?,
        composition_style: form.text("composition_style")?,
        quality: form_quality(form)?,
        options: raw_options(form)?,
        images: uploads.take(form, "images", ImageRole::Input),
    })
}

pub async fn compose_images(
    State(state): State<AppState>,
    Queueable { ctx, refused }: Queueable,
    request: Request,
) -> Result<Response, ApiError> {
    let mut form = read_form(&state, request, COMPOSE_FIELDS, &["images"]).await?;
    let submission = Submission::from_form(&form)?;
    let mut uploads = Uploads::default();
    let work = compose_work(&mut form, &mut uploads)?;
    run_generation(
        &state,
        &ctx,
        refused,
        "/compose-images",
        work,
        uploads,
        submission,
    )
    .await
}

/// The generation response, with the model-substitution headers when a retired name
/// was routed to its successor or a fallback served (RFC 9745 `Deprecation` for a
/// retirement, plus the model actually used), and the service tier that served.
pub fn respond(outcome: Outcome) -> Response {
    let headers = model_headers(&outcome);
    (headers, generation_body::json(outcome.response)).into_response()
}

pub fn model_headers(outcome: &Outcome) -> HeaderMap {
    let mut headers = substitution_headers(&outcome.response.model, outcome.substituted.as_ref());
    service_tier_header(&mut headers, outcome.generated.served.service_tier);
    headers
}

/// `x-imagegate-service-tier`: the tier that served, when one was asked for.
pub fn service_tier_header(headers: &mut HeaderMap, tier: Option<ServiceTier>) {
    if let Some(tier) = tier {
        headers.insert(
            "x-imagegate-service-tier",
            HeaderValue::from_static(tier.as_str()),
        );
    }
}

pub fn substitution_headers(
    model: &str,
    substituted: Option<&(String, Substitution)>,
) -> HeaderMap {
    let mut headers = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_str(model) {
        headers.insert("x-imagegate-model", v);
    }
    if let Some((requested, substitution)) = substituted {
        let mut pairs = vec![
            ("x-imagegate-requested-model", requested.clone()),
            (
                "x-imagegate-model-substituted",
                format!("{requested} -> {}", substitution.successor),
            ),
            (
                "x-imagegate-substitution-reason",
                substitution.reason.as_str().to_owned(),
            ),
        ];
        // Only a retired name is deprecated; an overloaded one is still the right name.
        if substitution.reason == Reason::Retired {
            let deprecation = substitution
                .shut_down
                .as_deref()
                .and_then(date_to_unix)
                .map_or_else(|| "?1".to_owned(), |ts| format!("@{ts}"));
            pairs.push(("deprecation", deprecation));
        }
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

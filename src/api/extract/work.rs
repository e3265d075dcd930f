//! What every generation route reads besides its own fields: the shared options, the
//! async fields, and the uploads a unit of work names.

use std::collections::HashMap;

use axum::extract::Request;
use bytes::Bytes;
use serde::{Deserialize, Deserializer};

use crate::api::AppState;
use crate::api::extract::form::{Form, FormSpec};
use crate::error::ApiError;
use crate::generation::params::{RawOptions, RawRouting};
use crate::generation::work::{ImageRef, ImageRole, QualityAsk, Work};
use crate::jobs::webhooks;

/// A generation request as its handler read it: the unit of work, the uploads it names
/// and how it was submitted.
pub struct Submitted {
    pub work: Work,
    pub uploads: Uploads,
    pub submission: Submission,
}

impl Submitted {
    /// Work that names no uploads.
    pub fn without_uploads(work: Work, submission: Submission) -> Self {
        Self {
            work,
            uploads: Uploads::default(),
            submission,
        }
    }
}

/// The form fields every generation route takes besides its own.
pub const ASYNC_FIELDS: [&str; 2] = ["async", "webhook_url"];

/// `"async"` and `"webhook_url"`, as sent.
#[derive(Debug, Default)]
pub struct Submission {
    pub run_async: bool,
    pub webhook_url: Option<String>,
}

fn bad_async() -> ApiError {
    ApiError::invalid("async", "The field 'async' must be true or false.")
}

impl Submission {
    pub fn from_json(
        run_async: Option<serde_json::Value>,
        webhook_url: Option<String>,
    ) -> Result<Self, ApiError> {
        let run_async = match run_async {
            None | Some(serde_json::Value::Null) => false,
            Some(serde_json::Value::Bool(b)) => b,
            Some(_) => return Err(bad_async()),
        };
        Ok(Self {
            run_async,
            webhook_url,
        })
    }

    pub fn from_form(form: &Form) -> Result<Self, ApiError> {
        Ok(Self {
            run_async: form
                .bool("async")
                .map_err(|_| bad_async())?
                .unwrap_or(false),
            webhook_url: form.text("webhook_url")?.filter(|u| !u.trim().is_empty()),
        })
    }

    pub async fn check(&self, state: &AppState) -> Result<(), ApiError> {
        match (&self.webhook_url, self.run_async) {
            (Some(_), false) => Err(ApiError::invalid(
                "webhook_url",
                "A webhook is sent when async work finishes; set \"async\": true.",
            )),
            (Some(url), true) => webhooks::check(url, state.jobs.config.webhooks.allow_private)
                .await
                .map(|_| ())
                .map_err(ApiError::from),
            (None, _) => Ok(()),
        }
    }
}

/// The uploads of one request, by the key their [`ImageRef`] names.
#[derive(Default)]
pub struct Uploads(HashMap<String, Bytes>);

impl Uploads {
    /// Takes the form's files under `field` as references to uploads.
    pub fn take(&mut self, form: &mut Form, field: &str, role: ImageRole) -> Vec<ImageRef> {
        self.add(form.files(field), field, role)
    }

    pub fn add(&mut self, files: Vec<Bytes>, field: &str, role: ImageRole) -> Vec<ImageRef> {
        files
            .into_iter()
            .map(|bytes| {
                let key = format!("upload{}", self.0.len());
                self.0.insert(key.clone(), bytes);
                ImageRef {
                    key,
                    field: field.to_owned(),
                    role,
                }
            })
            .collect()
    }

    pub fn into_map(self) -> HashMap<String, Bytes> {
        self.0
    }
}

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

pub fn form_quality(form: &Form) -> Result<QualityAsk, ApiError> {
    Ok(QualityAsk {
        include_quality: form.bool("include_quality")?,
        min_quality_score: form.number("min_quality_score")?,
    })
}

/// A generation route that reads a multipart form: its path, its own text fields (the
/// shared options and the async fields come with every one), its file fields, and how the
/// form becomes a unit of work. Requests queued before typed work are read through the
/// same table (`routes::jobs`).
pub struct FormRoute {
    pub path: &'static str,
    pub fields: &'static [&'static str],
    pub files: &'static [&'static str],
    pub build: fn(&mut Form, &mut Uploads) -> Result<Work, ApiError>,
}

/// The form fields a generation route takes: its own, the shared options, async.
pub fn fields(own: &[&'static str]) -> Vec<&'static str> {
    own.iter()
        .copied()
        .chain(OPTION_FIELDS)
        .chain(ASYNC_FIELDS)
        .collect()
}

/// Reads a generation route's multipart body through the one bounded intake, and
/// `build`s its unit of work from the form.
pub async fn read_form(
    state: &AppState,
    request: Request,
    own: &[&'static str],
    files: &[&str],
    build: impl FnOnce(&mut Form, &mut Uploads) -> Result<Work, ApiError>,
) -> Result<Submitted, ApiError> {
    let text_fields = fields(own);
    let spec = FormSpec {
        text_fields: &text_fields,
        file_fields: files,
        max_file_bytes: state.limits.max_file_bytes,
    };
    let mut form = Form::from_request(request, &spec, state.body_limits()).await?;
    let submission = Submission::from_form(&form)?;
    let mut uploads = Uploads::default();
    let work = build(&mut form, &mut uploads)?;
    Ok(Submitted {
        work,
        uploads,
        submission,
    })
}

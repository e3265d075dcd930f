//! Multipart bodies: files read chunk by chunk with a per-file limit (reading stops at
//! the limit), text fields as Python `requests` sends them, unknown fields refused.
//!
//! The one intake for multipart: the whole body, each file, each text field and the
//! number of parts are bounded while the body streams in (chunked bodies included),
//! so nothing past a limit is ever buffered.

use axum::extract::Request;
use axum::http::header;
use bytes::{Bytes, BytesMut};

use crate::api::extract::part_headers;
use crate::error::{ApiError, ErrorKind};
use crate::imaging;

/// Text fields are short (the longest is a 2000-character prompt); this only bounds memory.
const MAX_TEXT_FIELD_BYTES: usize = 64 * 1024;

/// A body no route could use: more parts than any form has fields several times over.
pub const MAX_PARTS: usize = 32;

pub struct FormSpec<'a> {
    pub text_fields: &'a [&'a str],
    pub file_fields: &'a [&'a str],
    pub max_file_bytes: usize,
}

/// The whole body's limit (`limits.max_multipart_bytes`).
#[derive(Debug, Clone, Copy)]
pub struct BodyLimits {
    pub max_body_bytes: usize,
}

type Multipart = multer::Multipart<'static>;

#[derive(Default)]
pub struct Form {
    texts: Vec<(String, String)>,
    files: Vec<(String, Bytes)>,
}

fn multipart_error(e: multer::Error) -> ApiError {
    if let multer::Error::StreamReadFailed(inner) = &e
        && inner.is::<part_headers::PartHeaderTooLarge>()
    {
        return ApiError::new(ErrorKind::InvalidRequest, "A part's headers are too large.")
            .detail("field", "body")
            .detail("max_part_header_bytes", part_headers::MAX_PART_HEADER_BYTES);
    }
    match e {
        multer::Error::StreamSizeExceeded { limit } => {
            ApiError::new(ErrorKind::FileTooLarge, "The request body is too large.")
                .detail("max_bytes", limit)
        }
        other => ApiError::new(
            ErrorKind::InvalidRequest,
            "The multipart body is malformed.",
        )
        .detail("field", "body")
        .caused_by(other),
    }
}

fn malformed(cause: impl std::fmt::Display) -> ApiError {
    ApiError::invalid("body", "The multipart body is malformed.").caused_by(cause)
}

/// Is the request's body `multipart/form-data`?
pub fn is_multipart(request: &Request) -> bool {
    request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().starts_with("multipart/form-data"))
}

impl Form {
    /// Reads a request's multipart body within `limits` and `spec`.
    pub async fn from_request(
        request: Request,
        spec: &FormSpec<'_>,
        limits: BodyLimits,
    ) -> Result<Self, ApiError> {
        let content_type = request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        if !content_type
            .to_ascii_lowercase()
            .starts_with("multipart/form-data")
        {
            return Err(ApiError::new(
                ErrorKind::InvalidRequest,
                "Expected a multipart/form-data body.",
            )
            .detail("field", "Content-Type"));
        }
        let boundary = multer::parse_boundary(&content_type).map_err(malformed)?;
        let stream = part_headers::Bounded::new(request.into_body().into_data_stream(), &boundary);
        Self::read(multer_for(stream, boundary, limits), spec).await
    }

    /// Reads a multipart body already in memory (a request stored by an older version).
    pub async fn from_bytes(
        content_type: &str,
        body: Bytes,
        spec: &FormSpec<'_>,
        limits: BodyLimits,
    ) -> Result<Self, ApiError> {
        let boundary = multer::parse_boundary(content_type).map_err(malformed)?;
        let stream = futures_util::stream::once(async move { Ok::<_, std::io::Error>(body) });
        let stream = part_headers::Bounded::new(Box::pin(stream), &boundary);
        Self::read(multer_for(stream, boundary, limits), spec).await
    }

    async fn read(mut multipart: Multipart, spec: &FormSpec<'_>) -> Result<Self, ApiError> {
        let mut form = Self::default();
        let outcome = form.read_fields(&mut multipart, spec).await;
        if let Err(e) = &outcome
            && e.kind == ErrorKind::FileTooLarge
        {
            discard_rest(multipart);
        }
        outcome.map(|()| form)
    }

    async fn read_fields(
        &mut self,
        multipart: &mut Multipart,
        spec: &FormSpec<'_>,
    ) -> Result<(), ApiError> {
        let mut parts = 0;
        while let Some(mut field) = multipart.next_field().await.map_err(multipart_error)? {
            parts += 1;
            if parts > MAX_PARTS {
                return Err(ApiError::invalid(
                    "body",
                    format!("The form has too many parts; at most {MAX_PARTS} are read."),
                )
                .detail("max_parts", MAX_PARTS));
            }
            let name = field.name().unwrap_or_default().to_owned();
            let is_file = spec.file_fields.contains(&name.as_str());
            if !is_file && !spec.text_fields.contains(&name.as_str()) {
                let mut allowed: Vec<&str> = spec.file_fields.to_vec();
                allowed.extend_from_slice(spec.text_fields);
                return Err(ApiError::invalid(&name, format!("Unknown field '{name}'."))
                    .detail("reason", "unknown_field")
                    .detail("allowed", allowed));
            }
            let limit = if is_file {
                spec.max_file_bytes
            } else {
                MAX_TEXT_FIELD_BYTES
            };
            let mut buf = BytesMut::new();
            while let Some(chunk) = field.chunk().await.map_err(multipart_error)? {
                if buf.len() + chunk.len() > limit {
                    // Stop here: nothing past the limit is kept.
                    return Err(if is_file {
                        imaging::file_too_large(&name, limit).into()
                    } else {
                        ApiError::new(
                            ErrorKind::FileTooLarge,
                            format!("The field '{name}' is too large."),
                        )
                        .detail("field", name.as_str())
                        .detail("max_bytes", limit)
                    });
                }
                buf.extend_from_slice(&chunk);
            }
            if is_file {
                self.files.push((name, buf.freeze()));
            } else {
                let text = String::from_utf8(buf.to_vec()).map_err(|_| {
                    ApiError::invalid(&name, format!("The field '{name}' is not valid UTF-8."))
                })?;
                self.texts.push((name, text));
            }
        }
        Ok(())
    }

    fn values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.texts
            .iter()
            .filter(move |(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// A single-valued text field; sending it twice is an error, not a silent pick.
    pub fn text(&self, name: &str) -> Result<Option<String>, ApiError> {
        let mut values = self.values(name);
        let first = values.next().map(str::to_owned);
        if values.next().is_some() {
            return Err(ApiError::invalid(
                name,
                format!("The field '{name}' was sent more than once."),
            ));
        }
        Ok(first)
    }

    /// `true/false/True/False/1/0`, as Python `requests` sends booleans.
    pub fn bool(&self, name: &str) -> Result<Option<bool>, ApiError> {
        self.text(name)?
            .map(|v| match v.trim().to_ascii_lowercase().as_str() {
                "true" | "1" => Ok(true),
                "false" | "0" => Ok(false),
                _ => Err(ApiError::invalid(
                    name,
                    format!("The field '{name}' must be true or false."),
                )
                .detail("value", v)),
            })
            .transpose()
    }

    pub fn number(&self, name: &str) -> Result<Option<f64>, ApiError> {
        self.text(name)?
            .map(|v| {
                v.trim()
                    .parse::<f64>()
                    .ok()
                    .filter(|n| n.is_finite())
                    .ok_or_else(|| {
                        ApiError::invalid(name, format!("The field '{name}' must be a number."))
                            .detail("value", v)
                    })
            })
            .transpose()
    }

    pub fn integer(&self, name: &str) -> Result<Option<i64>, ApiError> {
        self.text(name)?
            .map(|v| {
                v.trim().parse::<i64>().map_err(|_| {
                    ApiError::invalid(name, format!("The field '{name}' must be an integer."))
                        .detail("value", v)
                })
            })
            .transpose()
    }

    /// A list sent as repeated fields, a comma-separated value or a JSON array.
    pub fn list(&self, name: &str) -> Result<Option<Vec<String>>, ApiError> {
        let mut out = Vec::new();
        let mut seen = false;
        for raw in self.values(name) {
            seen = true;
            let raw = raw.trim();
            if raw.starts_with('[') {
                let items: Vec<String> = serde_json::from_str(raw).map_err(|_| {
                    ApiError::invalid(
                        name,
                        format!("The field '{name}' is not a valid JSON array of strings."),
                    )
                })?;
                out.extend(items);
            } else {
                out.extend(
                    raw.split(',')
                        .map(|s| s.trim().to_owned())
                        .filter(|s| !s.is_empty()),
                );
            }
        }
        Ok(seen.then_some(out))
    }

    /// Whether a text field was sent at all.
    pub fn has(&self, name: &str) -> bool {
        self.values(name).next().is_some()
    }

    pub fn files(&mut self, name: &str) -> Vec<Bytes> {
        let (taken, kept) = std::mem::take(&mut self.files)
            .into_iter()
            .partition(|(n, _)| n == name);
        self.files = kept;
        taken.into_iter().map(|(_, b)| b).collect()
    }
}

fn multer_for<S, E>(stream: S, boundary: String, limits: BodyLimits) -> Multipart
where
    S: futures_util::Stream<Item = Result<Bytes, E>> + Send + 'static,
    E: Into<Box<dyn std::error::Error + Send + Sync>> + 'static,
{
    let constraints = multer::Constraints::new()
        .size_limit(multer::SizeLimit::new().whole_stream(limits.max_body_bytes as u64));
    multer::Multipart::with_constraints(stream, boundary, constraints)
}

/// After an early 413 the answer goes out at once, but a client that writes its whole
/// body before reading (Python `requests`) would see a connection reset instead if we
/// closed with unread data. So the rest is read and thrown away in the background —
/// never buffered — bounded by the body limit and by time ("lingering close").
fn discard_rest(mut multipart: Multipart) {
    const LINGER: std::time::Duration = std::time::Duration::from_secs(30);
    crate::tasks::spawn(async move {
        let drain = async {
            while let Ok(Some(mut field)) = multipart.next_field().await {
                while let Ok(Some(_)) = field.chunk().await {}
            }
        };
        let _ = tokio::time::timeout(LINGER, drain).await;
    });
}

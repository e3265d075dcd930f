//! Multipart bodies: files read chunk by chunk with a per-file limit (reading stops at
//! the limit), text fields as Python `requests` sends them, unknown fields refused.

use axum::extract::Multipart;
use axum::extract::multipart::MultipartError;
use bytes::{Bytes, BytesMut};

use crate::error::{ApiError, ErrorKind};
use crate::imaging;

/// Text fields are short (the longest is a 2000-character prompt); this only bounds memory.
const MAX_TEXT_FIELD_BYTES: usize = 64 * 1024;

pub struct FormSpec<'a> {
    pub text_fields: &'a [&'a str],
    pub file_fields: &'a [&'a str],
    pub max_file_bytes: usize,
}

#[derive(Default)]
pub struct Form {
    texts: Vec<(String, String)>,
    files: Vec<(String, Bytes)>,
}

fn multipart_error(e: MultipartError) -> ApiError {
    if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::new(ErrorKind::FileTooLarge, "The request body is too large.")
    } else {
        ApiError::new(
            ErrorKind::InvalidRequest,
            "The multipart body is malformed.",
        )
        .detail("field", "body")
        .caused_by(e.body_text())
    }
}

impl Form {
    pub async fn read(mut multipart: Multipart, spec: &FormSpec<'_>) -> Result<Self, ApiError> {
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
        while let Some(mut field) = multipart.next_field().await.map_err(multipart_error)? {
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
                        imaging::file_too_large(&name, limit)
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

    pub fn files(&mut self, name: &str) -> Vec<Bytes> {
        let (taken, kept) = std::mem::take(&mut self.files)
            .into_iter()
            .partition(|(n, _)| n == name);
        self.files = kept;
        taken.into_iter().map(|(_, b)| b).collect()
    }
}

/// After an early 413 the answer goes out at once, but a client that writes its whole
/// body before reading (Python `requests`) would see a connection reset instead if we
/// closed with unread data. So the rest is read and thrown away in the background —
/// never buffered — bounded by the route's body limit and by time ("lingering close").
fn discard_rest(mut multipart: Multipart) {
    const LINGER: std::time::Duration = std::time::Duration::from_secs(30);
    tokio::spawn(async move {
        let drain = async {
            while let Ok(Some(mut field)) = multipart.next_field().await {
                while let Ok(Some(_)) = field.chunk().await {}
            }
        };
        let _ = tokio::time::timeout(LINGER, drain).await;
    });
}

//! Signed, expiring image URLs for clients that expect a plain URL they can fetch
//! without credentials (OpenAI's `response_format: "url"`). The signature is an
//! HMAC-SHA256 of `id.expires` under a key kept in the data directory, so URLs survive
//! restarts and work on every instance sharing that directory.

use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use hmac::{Hmac, Mac};
use rand::RngCore as _;
use serde::Deserialize;
use sha2::Sha256;

use crate::api::AppState;
use crate::error::ApiError;
use crate::imaging::ImageFormat;

/// OpenAI's image URLs expire after an hour; ours do the same.
const URL_TTL_MS: i64 = 60 * 60 * 1000;

#[derive(Clone)]
pub struct UrlSigner {
    /// Keyed once; each signature starts from a clone.
    keyed: Hmac<Sha256>,
}

impl UrlSigner {
    /// Reads the key from `<data_dir>/url-signing.key`, creating it on first start.
    pub fn load_or_create(data_dir: &std::path::Path) -> std::io::Result<Self> {
        let path = data_dir.join("url-signing.key");
        match std::fs::read(&path) {
            Ok(bytes) if bytes.len() == 32 => Self::from_key(&bytes),
            Ok(_) => Err(std::io::Error::other(format!(
                "{} is not a 32-byte key",
                path.display()
            ))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut key = [0u8; 32];
                rand::rng().fill_bytes(&mut key);
                write_private(&path, &key)?;
                Self::from_key(&key)
            }
            Err(e) => Err(e),
        }
    }

    fn from_key(key: &[u8]) -> std::io::Result<Self> {
        let keyed = <Hmac<Sha256> as Mac>::new_from_slice(key)
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        Ok(Self { keyed })
    }

    fn mac(&self, id: &str, expires_ms: i64) -> Hmac<Sha256> {
        let mut mac = self.keyed.clone();
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(expires_ms.to_string().as_bytes());
        mac
    }

    fn sign(&self, id: &str, expires_ms: i64) -> String {
        hex::encode(self.mac(id, expires_ms).finalize().into_bytes())
    }

    fn verify(&self, id: &str, expires_ms: i64, signature: &str, now_ms: i64) -> bool {
        let Ok(given) = hex::decode(signature) else {
            return false;
        };
        // `verify_slice` compares in constant time.
        now_ms <= expires_ms && self.mac(id, expires_ms).verify_slice(&given).is_ok()
    }
}

#[cfg(unix)]
fn write_private(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(bytes)
}

#[cfg(not(unix))]
fn write_private(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::write(path, bytes)
}

/// A path (to prefix with the server's origin) that serves `id` for the next hour.
pub fn url(signer: &UrlSigner, id: &str, now_ms: i64) -> String {
    let expires = now_ms + URL_TTL_MS;
    format!(
        "/v1/files/{id}?expires={expires}&signature={}",
        signer.sign(id, expires)
    )
}

#[derive(Deserialize)]
pub struct Signature {
    expires: i64,
    signature: String,
}

pub async fn get_file(
    State(state): State<AppState>,
    Path(image_id): Path<String>,
    Query(sig): Query<Signature>,
) -> Result<Response, ApiError> {
    if !state
        .url_signer
        .verify(&image_id, sig.expires, &sig.signature, state.clock.now_ms())
    {
        return Err(ApiError::not_found("The file"));
    }
    let bytes = state
        .images
        .get_unchecked(&image_id)
        .await?
        .ok_or_else(|| ApiError::not_found("The file"))?;
    let mime = ImageFormat::sniff(&bytes).map_or("application/octet-stream", ImageFormat::mime);
    Ok(([(header::CONTENT_TYPE, mime)], bytes).into_response())
}

//! Signed, expiring image URLs for clients that expect a plain URL they can fetch
//! without credentials (OpenAI's `response_format: "url"`). The signature is an
//! HMAC-SHA256 of `id.expires` under a secret kept in the database, so URLs survive
//! restarts and work on every instance sharing the database. Links start with the
//! request's public origin (`middleware::origin`).

use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;

use crate::api::AppState;
use crate::error::{ApiError, ErrorKind};
use crate::imaging::ImageFormat;
use crate::jobs::webhooks;
use crate::store::StoreError;
use crate::store::requests::RequestStore;
use base64::Engine as _;

/// The row of the secrets table that holds the URL signing secret (no key id has a `:`).
const SECRET_OWNER: &str = "server:url-signing";

/// OpenAI's image URLs expire after an hour; ours do the same.
const URL_TTL_MS: i64 = 60 * 60 * 1000;

#[derive(Clone)]
pub struct UrlSigner {
    /// Keyed once; each signature starts from a clone.
    keyed: Hmac<Sha256>,
}

impl UrlSigner {
    /// The signer for a server-wide secret kept in the shared database (so every
    /// instance signs and verifies alike), made once on first start.
    pub async fn shared(requests: &RequestStore, now_ms: i64) -> Result<Self, StoreError> {
        // The secrets table's get-or-create is one atomic statement on both backends, so
        // instances starting together still agree on one key.
        let secret = requests
            .webhook_secret(SECRET_OWNER, &webhooks::new_secret, now_ms)
            .await?;
        let key = base64::engine::general_purpose::STANDARD
            .decode(secret.trim_start_matches("whsec_"))
            .map_err(|e| StoreError::malformed("URL signing secret", e))?;
        Self::from_key(&key).map_err(|e| StoreError::malformed("URL signing secret", e))
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

    /// Why a link does not open, if it does not: a bad signature first (an expiry a
    /// client made up is not worth reporting as "expired").
    fn verify(
        &self,
        id: &str,
        expires_ms: i64,
        signature: &str,
        now_ms: i64,
    ) -> Result<(), ApiError> {
        let valid = hex::decode(signature)
            // `verify_slice` compares in constant time.
            .is_ok_and(|given| self.mac(id, expires_ms).verify_slice(&given).is_ok());
        if !valid {
            return Err(ApiError::new(
                ErrorKind::InvalidSignature,
                "The link's signature is not valid for this file. Use the URL exactly as it was returned.",
            ));
        }
        if now_ms > expires_ms {
            return Err(ApiError::new(
                ErrorKind::LinkExpired,
                "The link has expired (links are valid for one hour). Request the image again for a new link.",
            )
            .detail("expired_at", crate::clock::rfc3339(expires_ms)));
        }
        Ok(())
    }
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
    state
        .url_signer
        .verify(&image_id, sig.expires, &sig.signature, state.clock.now_ms())?;
    let bytes = state
        .images
        .get_any_owner(&image_id)
        .await?
        .ok_or_else(|| ApiError::not_found("The file"))?;
    let mime = ImageFormat::sniff(&bytes).map_or("application/octet-stream", ImageFormat::mime);
    Ok(([(header::CONTENT_TYPE, mime)], bytes).into_response())
}

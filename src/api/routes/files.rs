//! Signed, expiring image URLs for clients that expect a plain URL they can fetch
//! without credentials (OpenAI's `response_format: "url"`). The signature is an
//! HMAC-SHA256 of `id.expires` under a secret kept in the database, so URLs survive
//! restarts and work on every instance sharing the database.
//!
//! Links start with the service's public origin: `public_base_url` when configured;
//! otherwise `X-Forwarded-Proto`/`X-Forwarded-Host` when the request came from a trusted
//! proxy (`trusted_proxies`); otherwise `http://` + `Host`. A forwarded header from
//! anyone else is ignored, so a client cannot make the links point elsewhere.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hmac::{Hmac, Mac};
use ipnet::IpNet;
use serde::Deserialize;
use sha2::Sha256;

use crate::api::AppState;
use crate::config::{Config, ConfigError};
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

/// The request header the origin middleware sets for handlers that build links; any
/// value a client sent under this name is replaced.
pub const ORIGIN_HEADER: &str = "x-imagegate-origin";

#[derive(Clone)]
pub struct UrlSigner {
    /// Keyed once; each signature starts from a clone.
    keyed: Hmac<Sha256>,
    origin: PublicOrigin,
}

/// How the public origin of a request is found (module documentation).
#[derive(Clone, Debug, Default)]
pub struct PublicOrigin {
    base: Option<String>,
    trusted: Vec<IpNet>,
}

impl PublicOrigin {
    pub fn from_config(config: &Config) -> Result<Self, ConfigError> {
        Ok(Self {
            base: config.public_base(),
            trusted: config.trusted_proxy_nets()?,
        })
    }

    /// `scheme://host[:port][/prefix]`, without a trailing slash.
    pub fn of(&self, headers: &HeaderMap, peer: Option<IpAddr>) -> String {
        if let Some(base) = &self.base {
            return base.clone();
        }
        let value = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                // A proxy chain appends: the first value is what the client sent us.
                .and_then(|v| v.split(',').next())
                .map(str::trim)
                .filter(|v| !v.is_empty() && is_host_like(v))
        };
        let trusted = peer.is_some_and(|ip| self.trusted.iter().any(|net| net.contains(&ip)));
        let host = trusted
            .then(|| value("x-forwarded-host"))
            .flatten()
            .or_else(|| value(header::HOST.as_str()))
            .unwrap_or("localhost");
        let scheme = trusted
            .then(|| value("x-forwarded-proto"))
            .flatten()
            .filter(|p| matches!(*p, "http" | "https"))
            .unwrap_or("http");
        format!("{scheme}://{host}")
    }
}

/// A host (and port) as it may appear in a link: no path, query, user or spaces.
fn is_host_like(value: &str) -> bool {
    value
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'))
}

/// Sets [`ORIGIN_HEADER`] on every request from the connection's peer address and the
/// configuration, replacing whatever the client sent under that name.
pub async fn set_origin(
    State(signer): State<UrlSigner>,
    mut request: Request,
    next: Next,
) -> Response {
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    let origin = signer.origin.of(request.headers(), peer);
    match HeaderValue::from_str(&origin) {
        Ok(value) => {
            request.headers_mut().insert(ORIGIN_HEADER, value);
        }
        Err(_) => {
            request.headers_mut().remove(ORIGIN_HEADER);
        }
    }
    next.run(request).await
}

/// The origin [`set_origin`] found for this request.
pub fn origin(headers: &HeaderMap) -> String {
    headers
        .get(ORIGIN_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("http://localhost")
        .to_owned()
}

impl UrlSigner {
    /// The signer for a server-wide secret kept in the shared database (so every
    /// instance signs and verifies alike), made once on first start.
    pub async fn shared(requests: &dyn RequestStore, now_ms: i64) -> Result<Self, StoreError> {
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
        Ok(Self {
            keyed,
            origin: PublicOrigin::default(),
        })
    }

    /// Links are built for this public origin.
    pub fn with_origin(mut self, origin: PublicOrigin) -> Self {
        self.origin = origin;
        self
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
        .get_unchecked(&image_id)
        .await?
        .ok_or_else(|| ApiError::not_found("The file"))?;
    let mime = ImageFormat::sniff(&bytes).map_or("application/octet-stream", ImageFormat::mime);
    Ok(([(header::CONTENT_TYPE, mime)], bytes).into_response())
}

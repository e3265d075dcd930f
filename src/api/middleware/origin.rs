//! The public origin of each request, for links it is answered with: `public_base_url`
//! when configured; otherwise `X-Forwarded-Proto`/`X-Forwarded-Host` when the request
//! came from a trusted proxy (`trusted_proxies`); otherwise `http://` + `Host`. A
//! forwarded header from anyone else is ignored, so a client cannot make the links point
//! elsewhere.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;
use ipnet::IpNet;

use crate::config::{Config, ConfigError};

/// The request header the origin middleware sets for handlers that build links; any
/// value a client sent under this name is replaced.
pub const ORIGIN_HEADER: &str = "x-imagegate-origin";

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
    State(origin): State<PublicOrigin>,
    mut request: Request,
    next: Next,
) -> Response {
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    let origin = origin.of(request.headers(), peer);
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

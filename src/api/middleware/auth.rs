//! The authentication layer: every route but the public ones needs
//! `Authorization: Bearer <key>`. Requests without a valid key never reach a handler;
//! those with one carry their [`Caller`] in the request extensions.

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::api::AppState;
use crate::auth::Identity;
use crate::auth::keys::KeyDigest;
use crate::caller::Caller;
use crate::error::{ApiError, ErrorKind};

/// Longer than any key we issue or Google's; anything longer is not a key.
const MAX_TOKEN_LEN: usize = 512;

/// Liveness, readiness, metrics and documentation are for operators and load
/// balancers, which hold no key; the playground's page and assets hold no data (it calls
/// the API with the key the user types in), and must load before a key is entered.
fn is_public(method: &Method, path: &str) -> bool {
    let read = method == Method::GET || method == Method::HEAD;
    matches!(
        path,
        "/health" | "/ready" | "/metrics" | "/openapi.json" | "/docs"
    ) || path.starts_with("/docs/")
        || (read && (path == "/" || path.starts_with("/playground/")))
        // Signed, expiring URLs carry their own authorisation (src/api/routes/files.rs).
        || (read && path.starts_with("/v1/files/"))
        // Google's batch events carry a Standard Webhooks signature instead of a key.
        || (method == Method::POST && path == "/gemini/batch-events")
}

pub async fn authenticate(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    if is_public(request.method(), request.uri().path()) {
        return next.run(request).await;
    }
    // The admin API takes the admin token and nothing else: an ordinary key, however
    // privileged its tier, never manages keys.
    let path = request.uri().path();
    if path == "/admin" || path.starts_with("/admin/") {
        return match authorize_admin(state.access.admin_token.as_ref(), request.headers()) {
            Ok(()) => {
                request.headers_mut().remove(header::AUTHORIZATION);
                next.run(request).await
            }
            Err(e) if e.kind == ErrorKind::Unauthorized => unauthorized(&e.message),
            Err(e) => e.into_response(),
        };
    }
    let token = match bearer(request.headers()) {
        Ok(token) => token,
        // Google's SDKs send the key as `x-goog-api-key` (or `?key=`) on its own surface.
        Err(reason) => match google_key(&request) {
            Some(token) => {
                request.extensions_mut().insert(GoogleAuth);
                token
            }
            None => return unauthorized(reason),
        },
    };
    request.headers_mut().remove("x-goog-api-key");
    let now = state.access.clock.now_ms();
    match state.access.authenticator.identify(&token, now).await {
        Ok(Identity::Caller(caller)) => {
            if let Err(refusal) = check_scope(&caller, request.method(), request.uri().path()) {
                return refusal.into_response();
            }
            // Nothing downstream needs the key; dropping it keeps it out of anything
            // that might copy or log request headers.
            request.headers_mut().remove(header::AUTHORIZATION);
            request.extensions_mut().insert(caller);
            next.run(request).await
        }
        Ok(Identity::Unknown) => {
            unauthorized("The API key is not valid. Create one with `imagegate keys create`.")
        }
        Ok(Identity::Expired) => unauthorized("The API key has expired. Ask for a new one."),
        Ok(Identity::Rotated { successor }) => unauthorized(&format!(
            "The API key was rotated (its successor is {successor}) and its grace period is over. Use the new key."
        )),
        Err(e) => ApiError::from(e).into_response(),
    }
}

/// Whether the request carries the admin token. Digests of both are compared in
/// constant time, so neither the token's bytes nor its length leak through timing.
/// With no token configured the admin API does not exist (404).
fn authorize_admin(admin: Option<&KeyDigest>, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(admin) = admin else {
        return Err(ApiError::new(ErrorKind::NotFound, "No such endpoint."));
    };
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| KeyDigest::of(token.trim()));
    match presented {
        Some(digest) if admin.matches(&digest) => Ok(()),
        Some(_) => Err(ApiError::new(
            ErrorKind::Unauthorized,
            "The admin token is not valid.",
        )),
        None => Err(ApiError::new(
            ErrorKind::Unauthorized,
            "The admin API needs `Authorization: Bearer <admin token>`.",
        )),
    }
}

/// The endpoint group a route belongs to, for key scopes; `None` for routes every key
/// may use (reading its own images, requests, usage, models and settings).
pub fn scope_of(method: &Method, path: &str) -> Option<&'static str> {
    let group = |prefix: &str| path == prefix || path.starts_with(&format!("{prefix}/"));
    if is_native_path(path) {
        // Listing models is reading; generating through Google's surface is not.
        return (method == Method::POST).then_some("gemini");
    }
    Some(match () {
        () if path == "/generate-image" => "generate",
        () if path == "/edit-image" => "edit",
        () if path == "/compose-images" => "compose",
        () if group("/chat") => "chat",
        () if group("/story") => "story",
        () if group("/advanced") => "advanced",
        () if group("/batches") => "batches",
        () if group("/v1/images") => "openai",
        () if group("/v1/batches") => "batches",
        () => return None,
    })
}

/// 403 for a route outside the key's scopes, before anything else runs.
fn check_scope(caller: &Caller, method: &Method, path: &str) -> Result<(), ApiError> {
    match scope_of(method, path) {
        Some(scope) if !caller.settings.allows_scope(scope) => Err(ApiError::new(
            ErrorKind::Forbidden,
            format!("This API key may not use the `{scope}` endpoints."),
        )
        .detail("scope", scope)
        .detail(
            "allowed_scopes",
            caller.settings.scopes.clone().unwrap_or_default(),
        )),
        _ => Ok(()),
    }
}

/// Marks a request whose key came Google's way (`x-goog-api-key` or `?key=`): on
/// `/v1/models`, claimed by both SDKs, it is then Google's client calling.
#[derive(Debug, Clone, Copy)]
pub struct GoogleAuth;

/// Whether the native surface serves `path`: every `/v1beta/…` path, and the Gemini
/// paths of `/v1` (google-genai 3.6 defaults to `v1`).
pub fn is_native_path(path: &str) -> bool {
    path.starts_with("/v1beta/") || path == "/v1/models" || path.starts_with("/v1/models/")
}

/// Whether the caller sent a key Google's way, whether or not it is valid.
pub fn sends_google_key(request: &Request) -> bool {
    request.headers().contains_key("x-goog-api-key")
        || request
            .uri()
            .query()
            .is_some_and(|q| q.split('&').any(|pair| pair.starts_with("key=")))
}

/// The key as Google's clients send it, accepted on the native surface only.
fn google_key(request: &Request) -> Option<String> {
    if !is_native_path(request.uri().path()) {
        return None;
    }
    let header = request
        .headers()
        .get("x-goog-api-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let query = || {
        request.uri().query().and_then(|q| {
            q.split('&')
                .filter_map(|pair| pair.split_once('='))
                .find(|(k, _)| *k == "key")
                .map(|(_, v)| v.to_owned())
        })
    };
    header
        .or_else(query)
        .map(|k| k.trim().to_owned())
        .filter(|k| {
            !k.is_empty() && k.len() <= MAX_TOKEN_LEN && k.bytes().all(|b| b.is_ascii_graphic())
        })
}

/// The bearer token, or why the header is refused. The token is never put in a message.
fn bearer(headers: &HeaderMap) -> Result<String, &'static str> {
    const MALFORMED: &str =
        "Malformed Authorization header. Expected `Authorization: Bearer <key>`.";
    let value = headers
        .get(header::AUTHORIZATION)
        .ok_or("Missing API key. Send it as `Authorization: Bearer <key>`.")?;
    let value = value.to_str().map_err(|_| MALFORMED)?;
    let (scheme, token) = value.trim().split_once(' ').ok_or(MALFORMED)?;
    let token = token.trim();
    let well_formed = scheme.eq_ignore_ascii_case("bearer")
        && !token.is_empty()
        && token.len() <= MAX_TOKEN_LEN
        && token.bytes().all(|b| b.is_ascii_graphic());
    if well_formed {
        Ok(token.to_owned())
    } else {
        Err(MALFORMED)
    }
}

fn unauthorized(message: &str) -> Response {
    let mut response = ApiError::new(ErrorKind::Unauthorized, message).into_response();
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"imagegate\""),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, HeaderValue::from_str(value).unwrap());
        h
    }

    #[test]
    fn only_a_bearer_scheme_with_one_printable_token_is_accepted() {
        assert_eq!(
            bearer(&headers("Bearer igk_abc")).ok().as_deref(),
            Some("igk_abc")
        );
        assert_eq!(
            bearer(&headers("bearer  igk_abc ")).ok().as_deref(),
            Some("igk_abc")
        );
        for bad in [
            "Basic dXNlcjpwYXNz",
            "Bearer",
            "Bearer ",
            "igk_abc",
            "Bearer a b",
        ] {
            assert!(bearer(&headers(bad)).is_err(), "{bad:?}");
        }
        assert!(bearer(&HeaderMap::new()).is_err());
        assert!(bearer(&headers(&format!("Bearer {}", "a".repeat(513)))).is_err());
    }

    #[test]
    fn operator_endpoints_are_public_and_nothing_else() {
        assert!(is_public(&Method::GET, "/health"));
        assert!(is_public(&Method::GET, "/"));
        assert!(is_public(&Method::GET, "/docs/index.html"));
        assert!(!is_public(&Method::POST, "/"));
        assert!(is_public(&Method::GET, "/playground/app.js"));
        assert!(!is_public(&Method::POST, "/playground/app.js"));
        assert!(!is_public(&Method::GET, "/usage"));
        assert!(!is_public(&Method::GET, "/healthz"));
    }
}

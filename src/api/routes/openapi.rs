//! `GET /openapi.json` and `GET /docs`: the API described in OpenAPI 3.1, and a page that
//! renders it. Both are embedded in the binary, so the docs work offline and always match
//! the build. The document is written by hand in `docs/openapi.json`; the test
//! `every_route_in_the_router_is_in_the_openapi_document` keeps it complete.

use axum::http::header;
use axum::response::IntoResponse;

const DOCUMENT: &str = include_str!("../../../docs/openapi.json");
const DOCS_PAGE: &str = include_str!("docs.html");

pub async fn document() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], DOCUMENT)
}

/// Plain HTML and script, no external assets: it renders `/openapi.json` without network
/// access beyond this server.
pub async fn docs_page() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            // The page loads nothing from elsewhere, and says so to the browser.
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'",
            ),
        ],
        DOCS_PAGE,
    )
}

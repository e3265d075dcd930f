//! The browser playground: `GET /` and its assets under `/playground/`, compiled into the
//! binary from `web/` (plain HTML, CSS and ES modules; no build step, no CDN, nothing
//! fetched at run time). Public like `/docs`: the page holds no data, and everything it
//! shows comes from API calls made with the key the user types in.
//!
//! `GET /playground/catalog.json` tells the page what the server accepts (models with
//! their aspect ratios and sizes, style presets, composition styles, story content
//! types, limits), read from the same tables the endpoints validate against, so the
//! page's choices never drift from the server's.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderName, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::api::AppState;
use crate::error::ApiError;
use crate::generation::{prompts, story, styles};

/// Everything from this origin only. `blob:` images are the ones the page itself builds
/// from API responses (an `<img>` cannot send the bearer key, so the page fetches bytes
/// and shows them as blobs). No inline script or style anywhere, so no `'unsafe-inline'`.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob:; \
connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

struct Asset {
    name: &'static str,
    mime: &'static str,
    body: &'static str,
}

macro_rules! web {
    ($name:literal, $mime:expr) => {
        Asset {
            name: $name,
            mime: $mime,
            body: include_str!(concat!("../../../web/", $name)),
        }
    };
}

const JS: &str = "text/javascript; charset=utf-8";

const INDEX: Asset = web!("index.html", "text/html; charset=utf-8");
const ASSETS: &[Asset] = &[
    web!("app.css", "text/css; charset=utf-8"),
    web!("icon.svg", "image/svg+xml"),
    web!("app.js", JS),
    web!("api.js", JS),
    web!("jobs.js", JS),
    web!("ui.js", JS),
    web!("options.js", JS),
    web!("forms.js", JS),
    web!("mask.js", JS),
    web!("chat.js", JS),
    web!("story.js", JS),
    web!("gallery.js", JS),
    web!("usage.js", JS),
    web!("batches.js", JS),
];

fn serve(asset: &Asset) -> Response {
    let headers = [
        (header::CONTENT_TYPE, HeaderValue::from_static(asset.mime)),
        (
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CSP),
        ),
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
        (
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ),
        (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
        // Revalidated every time, so a new binary's page is never mixed with old modules.
        (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        (
            HeaderName::from_static("cross-origin-opener-policy"),
            HeaderValue::from_static("same-origin"),
        ),
    ];
    (headers, asset.body).into_response()
}

pub async fn index() -> Response {
    serve(&INDEX)
}

pub async fn asset(Path(file): Path<String>) -> Result<Response, ApiError> {
    ASSETS
        .iter()
        .find(|a| a.name == file)
        .map(serve)
        .ok_or_else(|| ApiError::not_found("The playground file"))
}

pub async fn catalog(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let mut models = Vec::new();
    for name in state.models.names() {
        let resolved = state.models.resolve(&name)?;
        // A retired name is served by the end of its successor chain, which is what the
        // page shows and whose ratios and sizes apply.
        let retired = resolved
            .substituted
            .map(|(_, r)| json!({"shut_down": r.shut_down, "served_by": resolved.entry.name}));
        models.push(json!({
            "name": name,
            "aspect_ratios": resolved.entry.aspect_ratios,
            "image_sizes": resolved.entry.image_sizes,
            "retired": retired,
        }));
    }
    Ok(Json(json!({
        "default_model": state.default_model,
        "models": models,
        "styles": styles::STYLE_PRESETS
            .iter()
            .map(|s| json!({"name": s.name, "label": s.label}))
            .collect::<Vec<_>>(),
        "composition_styles": prompts::COMPOSITION_STYLES.iter().map(|(n, _)| n).collect::<Vec<_>>(),
        "default_composition_style": prompts::DEFAULT_COMPOSITION_STYLE,
        "content_types": story::CONTENT_TYPES.iter().map(|(n, d)| json!({"name": n, "description": d})).collect::<Vec<_>>(),
        "story_steps": {"min": story::MIN_STEPS, "max": story::MAX_STEPS, "default": story::DEFAULT_STEPS},
        "limits": {
            "max_prompt_chars": state.limits.max_prompt_chars,
            "max_file_bytes": state.limits.max_file_bytes,
        },
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_script_the_page_imports_is_served() {
        // A module missing from ASSETS would 404 only in the browser; catch it here.
        let served: Vec<&str> = ASSETS.iter().map(|a| a.name).collect();
        let sources = ASSETS.iter().chain(std::iter::once(&INDEX)).map(|a| a.body);
        for source in sources {
            for piece in source.split(['"', '\'']) {
                let name = piece
                    .strip_prefix("./")
                    .or_else(|| piece.strip_prefix("/playground/"));
                if let Some(name) = name.filter(|n| n.ends_with(".js") || n.ends_with(".css")) {
                    assert!(served.contains(&name), "{name} is imported but not served");
                }
            }
        }
    }

    #[test]
    fn the_pages_stepwise_story_uses_the_servers_step_prompts() {
        // web/story.js repeats `step_prompt` of src/generation/story.rs so a story run as
        // chat turns is the same conversation; a change of wording on one side fails here.
        let server = include_str!("../../generation/story.rs");
        let page = ASSETS
            .iter()
            .find(|a| a.name == "story.js")
            .map(|a| a.body)
            .unwrap_or_default();
        for fragment in [
            "Keep the same characters, setting, objects and visual style in every step.",
            "Visual style for every step: ",
            "steps, about: ",
            ": generate its image, and write a one-sentence caption for it.",
            ", continuing from the previous step with the same characters, ",
            "setting and style. Generate its image and write a one-sentence caption for it.",
        ] {
            assert!(
                server.contains(fragment),
                "story.rs no longer says {fragment:?}"
            );
            assert!(
                page.contains(fragment),
                "story.js does not say {fragment:?}"
            );
        }
    }

    #[test]
    fn the_page_has_no_inline_script_or_style_and_no_external_url() {
        for asset in ASSETS.iter().chain(std::iter::once(&INDEX)) {
            // An XML namespace is a name, not a fetch.
            let body = asset.body.replace("http://www.w3.org/2000/svg", "");
            assert!(!body.contains("http://"), "{}", asset.name);
            assert!(!body.contains("https://"), "{}", asset.name);
        }
        assert!(!INDEX.body.contains("<style"));
        assert!(!INDEX.body.contains(" style="));
        assert!(!INDEX.body.contains("<script>"));
    }
}

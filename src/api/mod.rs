//! HTTP only: extractors, one file per group of routes, and the router on one screen.

pub mod access;
pub mod admin;
pub mod advanced;
pub mod auth;
pub mod batches;
pub mod caller;
pub mod chat;
pub mod context;
pub mod form;
pub mod gallery;
pub mod gemini_intake;
pub mod gemini_native;
pub mod gemini_offline;
pub mod generate;
pub mod generation_body;
pub mod idempotency;
pub mod images;
pub mod jobs;
pub mod json;
pub mod limits;
pub mod models;
pub mod monitoring;
pub mod openai;
pub mod openapi;
pub mod part_headers;
pub mod playground;
pub mod quality;
pub mod signed;
pub mod story;
pub mod submit;
pub mod usage;

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, Request};
use axum::http::header;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use tower_http::catch_panic::CatchPanicLayer;

use crate::clock::Clock;
use crate::config::LimitsConfig;
use crate::error::{ApiError, ErrorKind};
use crate::generation::Generator;
use crate::generation::chat::ChatService;
use crate::imaging::IntakeLimits;
use crate::models::ModelTable;
use crate::monitoring::Monitoring;
use crate::store::ImageStore;

#[derive(Clone)]
pub struct AppState {
    pub generator: Generator,
    pub models: Arc<ModelTable>,
    pub images: Arc<dyn ImageStore>,
    pub limits: LimitsConfig,
    pub default_model: String,
    pub clock: Arc<dyn Clock>,
    pub chat: Arc<ChatService>,
    /// Keys, limits, idempotent replays and usage.
    pub access: access::Access,
    pub url_signer: signed::UrlSigner,
    /// The Gemini client when that is the provider, for the native surface's relay.
    pub gemini: Option<Arc<crate::provider::gemini::GeminiProvider>>,
    /// Async requests and webhooks.
    pub jobs: Arc<crate::jobs::Jobs>,
    /// Batches through the upstream's Batch API.
    pub batches: Arc<crate::batches::Batches>,
    /// Runs units of work, for requests and for the async workers alike.
    pub executor: Arc<crate::generation::execute::Executor>,
    /// Metrics, `/stats` and readiness.
    pub monitoring: Arc<Monitoring>,
}

impl AppState {
    pub fn intake_limits(&self) -> IntakeLimits {
        IntakeLimits {
            max_file_bytes: self.limits.max_file_bytes,
            max_pixels: self.limits.max_input_pixels,
            max_edge: self.limits.max_input_edge,
        }
    }

    /// The largest body any route accepts.
    fn max_body_bytes(&self) -> usize {
        self.limits
            .max_multipart_bytes
            .max(self.limits.max_json_bytes)
    }

    pub fn body_limits(&self) -> form::BodyLimits {
        form::BodyLimits {
            max_body_bytes: self.limits.max_multipart_bytes,
        }
    }
}

/// Every route, without the layers.
fn routes() -> Router<AppState> {
    Router::new()
        .route("/generate-image", post(generate::generate_image))
        .route("/edit-image", post(generate::edit_image))
        .route("/compose-images", post(generate::compose_images))
        .route("/chat/create", post(chat::create))
        .route("/chat/{session_id}/message", post(chat::message))
        .route(
            "/chat/{session_id}",
            get(chat::history).delete(chat::delete),
        )
        .route("/story/generate", post(story::generate))
        .route("/advanced/inpaint", post(advanced::inpaint))
        .route("/advanced/outpaint", post(advanced::outpaint))
        .route("/advanced/style-transfer", post(advanced::style_transfer))
        // Google's surface on both API versions; `GET /v1/models` also answers OpenAI's SDK.
        .route("/v1beta/models", get(gemini_native::list_models))
        .route(
            "/v1beta/models/{target}",
            get(gemini_native::get_model).post(gemini_native::model_action),
        )
        .route("/v1/models", get(gemini_native::list_models))
        .route(
            "/v1/models/{target}",
            get(gemini_native::get_model).post(gemini_native::model_action),
        )
        .route("/models", get(models::list))
        .route("/v1/images/generations", post(openai::generations))
        .route("/v1/images/edits", post(openai::edits))
        .route("/v1/files/{image_id}", get(signed::get_file))
        .route("/requests/{request_id}", get(jobs::status))
        .route("/requests/{request_id}/cancel", post(jobs::cancel))
        .route("/webhooks/secret", get(jobs::webhook_secret))
        .route("/batches", get(batches::list).post(batches::submit))
        .route("/batches/{batch_id}", get(batches::status))
        .route("/batches/{batch_id}/results", get(batches::results))
        .route("/batches/{batch_id}/cancel", post(batches::cancel))
        .route("/gemini/batch-events", post(batches::google_event))
        .route("/images", get(gallery::list_images))
        .route("/images/{image_id}", get(images::get_image))
        .route("/usage", get(usage::get_usage))
        .route("/keys/me", get(admin::me))
        .route("/admin/keys", get(admin::list).post(admin::create))
        .route(
            "/admin/keys/{key_id}",
            get(admin::get).patch(admin::update).delete(admin::revoke),
        )
        .route("/admin/keys/{key_id}/rotate", post(admin::rotate))
        .route("/admin/usage", get(admin::usage))
        .route("/quality", post(quality::assess))
        .route(
            "/health",
            get(|| async { Json(serde_json::json!({"status": "ok"})) }),
        )
        .route("/ready", get(monitoring::ready))
        .route("/metrics", get(monitoring::metrics))
        .route("/stats", get(monitoring::stats))
        .route("/openapi.json", get(openapi::document))
        .route("/docs", get(openapi::docs_page))
        .route("/", get(playground::index))
        .route("/playground/catalog.json", get(playground::catalog))
        .route("/playground/{file}", get(playground::asset))
        .fallback(|| async { ApiError::new(ErrorKind::NotFound, "No such endpoint.") })
}

pub fn router(state: AppState) -> Router {
    let max_body = state.max_body_bytes();
    routes()
        // Innermost first: replay of idempotent POSTs, then limits, then who is calling.
        // Routes added after these lines would bypass authentication.
        .layer(middleware::from_fn_with_state(
            state.clone(),
            idempotency::replay_or_run,
        ))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            limits::enforce,
        ))
        .layer(middleware::from_fn(context::record_caller))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            auth::authenticate,
        ))
        .layer(DefaultBodyLimit::max(max_body))
        .layer(middleware::from_fn_with_state(
            max_body,
            refuse_declared_oversize,
        ))
        .layer(CatchPanicLayer::custom(context::panic_response))
        .layer(middleware::from_fn_with_state(
            state.url_signer.clone(),
            signed::set_origin,
        ))
        .layer(middleware::from_fn_with_state(
            state.monitoring.clone(),
            context::request_context,
        ))
        .with_state(state)
}

/// A body that announces itself as over the limit is refused before a byte is read.
async fn refuse_declared_oversize(
    axum::extract::State(max): axum::extract::State<usize>,
    request: Request,
    next: Next,
) -> Response {
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    match declared {
        Some(len) if len > max as u64 => {
            ApiError::new(ErrorKind::FileTooLarge, "The request body is too large.")
                .detail("max_bytes", max)
                .into_response()
        }
        _ => next.run(request).await,
    }
}

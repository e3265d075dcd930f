//! HTTP only: extractors, one file per group of routes, and the router on one screen.

pub mod access;
pub mod advanced;
pub mod auth;
pub mod caller;
pub mod chat;
pub mod context;
pub mod form;
pub mod generate;
pub mod idempotency;
pub mod images;
pub mod json;
pub mod limits;
pub mod story;
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
}

impl AppState {
    pub fn intake_limits(&self) -> IntakeLimits {
        IntakeLimits {
            max_file_bytes: self.limits.max_file_bytes,
            max_pixels: self.limits.max_input_pixels,
            max_edge: self.limits.max_input_edge,
        }
    }

    /// The largest body any route accepts: three files at the limit plus the text fields.
    fn max_body_bytes(&self) -> usize {
        self.limits.max_file_bytes * 3 + 1024 * 1024
    }
}

pub fn router(state: AppState) -> Router {
    let max_body = state.max_body_bytes();
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
        .route("/images/{image_id}", get(images::get_image))
        .route("/usage", get(usage::get_usage))
        .route(
            "/health",
            get(|| async { Json(serde_json::json!({"status": "ok"})) }),
        )
        .fallback(|| async { ApiError::new(ErrorKind::NotFound, "No such endpoint.") })
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
        .layer(middleware::from_fn(context::request_context))
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

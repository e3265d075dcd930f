//! HTTP only. `middleware/`: the layers every request passes; `extract/`: what handlers
//! read; `routes/`: one file per group of routes; `submit`: the one path of every
//! generation request; `respond`: the one writer of their answers. Here: the state
//! handlers share and the router, on one screen.

pub mod extract;
pub mod middleware;
pub mod respond;
pub mod routes;
pub mod submit;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::middleware::{from_fn, from_fn_with_state as layer_with};
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
use middleware::origin::PublicOrigin;
use middleware::{access, auth, body_size, context, idempotency, limits, origin};
use routes::{
    admin, advanced, batches, chat, files, gemini_native, generate, images, jobs, models,
    monitoring, openai, openapi, playground, quality, story, usage,
};

#[derive(Clone)]
pub struct AppState {
    pub generator: Generator,
    pub models: Arc<ModelTable>,
    pub images: Arc<ImageStore>,
    pub limits: LimitsConfig,
    pub default_model: String,
    pub clock: Arc<dyn Clock>,
    pub chat: Arc<ChatService>,
    /// Keys, limits, idempotent replays and usage.
    pub access: access::Access,
    pub url_signer: files::UrlSigner,
    /// How each request's public origin is found, for the links it is answered with.
    pub origin: PublicOrigin,
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

    pub fn body_limits(&self) -> extract::form::BodyLimits {
        extract::form::BodyLimits {
            max_body_bytes: self.limits.max_multipart_bytes,
        }
    }
}

/// Declares the route table once: [`ROUTES`] lists every `(method, path)` the router
/// serves (the OpenAPI test checks the document against it), and `routes()` builds the
/// router from the same lines, so the two cannot differ.
macro_rules! route_table {
    ($($method:ident $path:literal => $handler:expr,)*) => {
        /// Every `(METHOD, path template)` the router serves.
        pub const ROUTES: &[(&str, &str)] = &[$((route_table!(@upper $method), $path)),*];

        /// Every route, without the layers.
        fn routes() -> Router<AppState> {
            Router::new()
                $(.route($path, axum::routing::$method($handler)))*
                .fallback(|| async { ApiError::new(ErrorKind::NotFound, "No such endpoint.") })
        }
    };
    (@upper get) => { "GET" };
    (@upper post) => { "POST" };
    (@upper patch) => { "PATCH" };
    (@upper delete) => { "DELETE" };
}

route_table! {
    post "/generate-image" => generate::generate_image,
    post "/edit-image" => generate::edit_image,
    post "/compose-images" => generate::compose_images,
    post "/chat/create" => chat::create,
    post "/chat/{session_id}/message" => chat::message,
    get "/chat/{session_id}" => chat::history,
    delete "/chat/{session_id}" => chat::delete,
    post "/story/generate" => story::generate,
    post "/advanced/inpaint" => advanced::inpaint,
    post "/advanced/outpaint" => advanced::outpaint,
    post "/advanced/style-transfer" => advanced::style_transfer,
    // Google's surface on both API versions; `GET /v1/models` also answers OpenAI's SDK.
    get "/v1beta/models" => gemini_native::list_models,
    get "/v1beta/models/{target}" => gemini_native::get_model,
    post "/v1beta/models/{target}" => gemini_native::model_action,
    get "/v1/models" => gemini_native::list_models,
    get "/v1/models/{target}" => gemini_native::get_model,
    post "/v1/models/{target}" => gemini_native::model_action,
    get "/models" => models::list,
    post "/v1/images/generations" => openai::generations,
    post "/v1/images/edits" => openai::edits,
    get "/v1/files/{image_id}" => files::get_file,
    get "/requests/{request_id}" => jobs::status,
    post "/requests/{request_id}/cancel" => jobs::cancel,
    get "/webhooks/secret" => jobs::webhook_secret,
    get "/batches" => batches::list,
    post "/batches" => batches::submit,
    get "/batches/{batch_id}" => batches::status,
    get "/batches/{batch_id}/results" => batches::results,
    post "/batches/{batch_id}/cancel" => batches::cancel,
    post "/gemini/batch-events" => batches::google_event,
    get "/images" => images::list_images,
    get "/images/{image_id}" => images::get_image,
    get "/usage" => usage::get_usage,
    get "/keys/me" => admin::me,
    get "/admin/keys" => admin::list,
    post "/admin/keys" => admin::create,
    get "/admin/keys/{key_id}" => admin::get,
    patch "/admin/keys/{key_id}" => admin::update,
    delete "/admin/keys/{key_id}" => admin::revoke,
    post "/admin/keys/{key_id}/rotate" => admin::rotate,
    get "/admin/usage" => admin::usage,
    post "/quality" => quality::assess,
    get "/health" => || async { Json(serde_json::json!({"status": "ok"})) },
    get "/ready" => monitoring::ready,
    get "/metrics" => monitoring::metrics,
    get "/stats" => monitoring::stats,
    get "/openapi.json" => openapi::document,
    get "/docs" => openapi::docs_page,
    get "/" => playground::index,
    get "/playground/catalog.json" => playground::catalog,
    get "/playground/{file}" => playground::asset,
}

pub fn router(state: AppState) -> Router {
    let max_body = state.max_body_bytes();
    routes()
        // Innermost first: replay of idempotent POSTs, then limits, then who is calling.
        // Routes added after these lines would bypass authentication.
        .layer(layer_with(state.clone(), idempotency::replay_or_run))
        .layer(layer_with(state.clone(), limits::enforce))
        .layer(from_fn(context::record_caller))
        .layer(layer_with(state.clone(), auth::authenticate))
        .layer(DefaultBodyLimit::max(max_body))
        .layer(layer_with(max_body, body_size::refuse_declared_oversize))
        .layer(CatchPanicLayer::custom(context::panic_response))
        .layer(layer_with(state.origin.clone(), origin::set_origin))
        .layer(layer_with(
            state.monitoring.clone(),
            context::request_context,
        ))
        .with_state(state)
}

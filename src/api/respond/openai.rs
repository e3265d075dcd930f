//! OpenAI's answer shape for `/v1/images/*`: every image of the request's outcomes as
//! `b64_json` or a signed link, and the usage summed over them.

use axum::Json;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::api::AppState;
use crate::api::respond::body;
use crate::api::routes::files::url;
use crate::error::ApiError;
use crate::generation::openai::Format;
use crate::generation::{Outcome, Usage};

pub fn answer(state: &AppState, origin: &str, outcomes: Vec<Outcome>, format: Format) -> Response {
    let mut usage = Usage {
        input_tokens: 0,
        output_tokens: 0,
        image_tokens: 0,
        thought_tokens: 0,
        cost_usd: 0.0,
    };
    let model = outcomes
        .first()
        .map(|o| o.response.model.clone())
        .unwrap_or_default();
    let (mut links, mut images) = (Vec::new(), Vec::new());
    for outcome in outcomes {
        let r = outcome.response;
        usage.input_tokens += r.usage.input_tokens;
        usage.output_tokens += r.usage.output_tokens + r.usage.thought_tokens;
        usage.image_tokens += r.usage.image_tokens;
        usage.cost_usd += r.usage.cost_usd;
        let count = r.images.len().min(r.image_ids.len());
        match format {
            // Moved into the body as they are (`body::spliced`), not copied into a `Value`.
            Format::B64 => images.extend(r.images.into_iter().take(count)),
            Format::Url => links.extend(r.image_ids.iter().take(count).map(|id| {
                let link = url(&state.url_signer, id, state.clock.now_ms());
                json!({"url": format!("{origin}{link}"), "revised_prompt": Value::Null})
            })),
        }
    }
    let body = json!({
        "created": state.clock.now_ms() / 1000,
        "data": links,
        "usage": {
            "input_tokens": usage.input_tokens,
            "output_tokens": usage.output_tokens,
            "total_tokens": usage.input_tokens + usage.output_tokens,
            "output_tokens_details": {"image_tokens": usage.image_tokens},
            "cost_usd": (usage.cost_usd * 1e6).round() / 1e6,
        },
    });
    let (before, after) = (br#"{"b64_json":"#, br#","revised_prompt":null}"#);
    let mut response = match format {
        Format::Url => Json(body).into_response(),
        // `data` above is the empty list the splice fills.
        Format::B64 => body::spliced(&body, br#""data":[]"#, images, before, after)
            .unwrap_or_else(|_| ApiError::internal("no data list to fill").into_response()),
    };
    if let Ok(v) = model.parse() {
        response.headers_mut().insert("x-imagegate-model", v);
    }
    response
}

//! OpenAI's answer shape for `/v1/images/*`: every image of the request's outcomes as
//! `b64_json` or a signed link, and the usage summed over them.

use axum::Json;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::api::AppState;
use crate::api::routes::files::url;
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
    let mut data = Vec::new();
    for outcome in &outcomes {
        let r = &outcome.response;
        usage.input_tokens += r.usage.input_tokens;
        usage.output_tokens += r.usage.output_tokens + r.usage.thought_tokens;
        usage.image_tokens += r.usage.image_tokens;
        usage.cost_usd += r.usage.cost_usd;
        for (image, id) in r.images.iter().zip(&r.image_ids) {
            data.push(match format {
                Format::B64 => json!({"b64_json": image, "revised_prompt": Value::Null}),
                Format::Url => json!({"url": format!("{origin}{}", url(&state.url_signer, id, state.clock.now_ms())), "revised_prompt": Value::Null}),
            });
        }
    }
    let model = outcomes
        .first()
        .map(|o| o.response.model.clone())
        .unwrap_or_default();
    let body = json!({
        "created": state.clock.now_ms() / 1000,
        "data": data,
        "usage": {
            "input_tokens": usage.input_tokens,
            "output_tokens": usage.output_tokens,
            "total_tokens": usage.input_tokens + usage.output_tokens,
            "output_tokens_details": {"image_tokens": usage.image_tokens},
            "cost_usd": (usage.cost_usd * 1e6).round() / 1e6,
        },
    });
    let mut response = Json(body).into_response();
    if let Ok(v) = model.parse() {
        response.headers_mut().insert("x-imagegate-model", v);
    }
    response
}

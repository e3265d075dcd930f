//! The one writer of every generation answer: what a unit of work produced
//! ([`Done`]), with the headers saying which model and service tier served, or the 202 of
//! queued work. Bodies that carry base64 images go through the zero-copy writer
//! ([`body::json`], and [`body::spliced`] for OpenAI's `b64_json` list); streamed answers
//! are written while their work runs ([`story_events`], [`native_stream`]).

pub mod body;
pub mod native_stream;
mod openai;
pub mod story_events;

use axum::Json;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::json;

use crate::api::AppState;
use crate::api::extract::reply::Reply;
use crate::generation::Outcome;
use crate::generation::execute::{Done, MessageResponse};
use crate::models::{Reason, ServiceTier, Substitution};
use crate::provider::ServedAs;

/// The answer to work that ran to its end.
pub fn answer(state: &AppState, reply: &Reply, done: Done) -> Response {
    match done {
        Done::Generation(outcome) => {
            (model_headers(&outcome), body::json(outcome.response)).into_response()
        }
        Done::Chat(chat) => {
            let headers = model_headers(&chat.outcome);
            let body = MessageResponse {
                generation: chat.outcome.response,
                session_id: chat.session_id,
                turn: chat.turn,
            };
            (headers, body::json(body)).into_response()
        }
        Done::Story(outcome) => {
            let response = outcome.response;
            let model = &response.generation.model;
            let headers = substitution_headers(model, outcome.substituted.as_ref());
            (headers, body::json(response)).into_response()
        }
        Done::OpenAi { outcomes, format } => openai::answer(state, &reply.origin, outcomes, format),
        Done::Native(answer) => native(&answer.served, google_json(answer.status, answer.body)),
    }
}

/// 202 for work stored for a worker, with where to poll for it.
pub fn queued(request_id: &str, reply: &Reply) -> Response {
    let status_url = format!("/requests/{request_id}");
    let body = json!({"request_id": request_id, "status": "queued", "status_url": status_url});
    let mut response = (StatusCode::ACCEPTED, Json(body)).into_response();
    let headers = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&status_url) {
        headers.insert(header::LOCATION, v);
    }
    if reply.prefers_async {
        headers.insert(
            "preference-applied",
            HeaderValue::from_static("respond-async"),
        );
    }
    response
}

/// A JSON body of Google's, as it came.
pub fn google_json(status: u16, body: Bytes) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
    (
        status,
        [(header::CONTENT_TYPE, "application/json; charset=UTF-8")],
        body,
    )
        .into_response()
}

/// A native answer with the model and service tier that served it.
fn native(served: &ServedAs, mut response: Response) -> Response {
    let model = &served.model;
    let headers = response.headers_mut();
    headers.extend(substitution_headers(
        &model.entry.upstream_id,
        model.substituted.as_ref(),
    ));
    service_tier_header(headers, served.service_tier);
    response
}

fn model_headers(outcome: &Outcome) -> HeaderMap {
    let mut headers = substitution_headers(&outcome.response.model, outcome.substituted.as_ref());
    service_tier_header(&mut headers, outcome.generated.served.service_tier);
    headers
}

/// `x-imagegate-service-tier`: the tier that served, when one was asked for.
fn service_tier_header(headers: &mut HeaderMap, tier: Option<ServiceTier>) {
    if let Some(tier) = tier {
        headers.insert(
            "x-imagegate-service-tier",
            HeaderValue::from_static(tier.as_str()),
        );
    }
}

/// The model that served, and when another served than the one named (a retired name
/// routed to its successor, or a fallback), which and why: RFC 9745 `Deprecation` for a
/// retirement.
pub fn substitution_headers(
    model: &str,
    substituted: Option<&(String, Substitution)>,
) -> HeaderMap {
    let mut headers = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_str(model) {
        headers.insert("x-imagegate-model", v);
    }
    if let Some((requested, substitution)) = substituted {
        let mut pairs = vec![
            ("x-imagegate-requested-model", requested.clone()),
            (
                "x-imagegate-model-substituted",
                format!("{requested} -> {}", substitution.successor),
            ),
            (
                "x-imagegate-substitution-reason",
                substitution.reason.as_str().to_owned(),
            ),
        ];
        // Only a retired name is deprecated; an overloaded one is still the right name.
        if substitution.reason == Reason::Retired {
            let deprecation = substitution
                .shut_down
                .as_deref()
                .and_then(date_to_unix)
                .map_or_else(|| "?1".to_owned(), |ts| format!("@{ts}"));
            pairs.push(("deprecation", deprecation));
        }
        for (name, value) in pairs {
            if let Ok(v) = HeaderValue::from_str(&value) {
                headers.insert(name, v);
            }
        }
    }
    headers
}

/// `YYYY-MM-DD` → seconds since the epoch (days-from-civil, proleptic Gregorian).
fn date_to_unix(date: &str) -> Option<i64> {
    let mut it = date.splitn(3, '-').map(|p| p.parse::<i64>().ok());
    let (y, m, d) = (it.next()??, it.next()??, it.next()??);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    Some((era * 146_097 + doe - 719_468) * 86_400)
}

#[cfg(test)]
mod tests {
    #[test]
    fn dates_convert_to_unix_seconds() {
        assert_eq!(super::date_to_unix("1970-01-01"), Some(0));
        assert_eq!(super::date_to_unix("2026-01-15"), Some(1_768_435_200));
        assert_eq!(super::date_to_unix("2026-13-01"), None);
    }
}

//! Google's error envelope (docs/upstream.md#errors-and-retries):
//! `{"error":{code,message,status,details[]}}`.

use serde_json::{Value, json};

use super::Reply;
use super::wire::ParseError;

const TROUBLESHOOTING: &str =
    "Please retry or report in https://developers.generativeai.google/guide/troubleshooting";

pub fn envelope(code: u16, status: &str, message: &str, details: Vec<Value>) -> Reply {
    let mut error = json!({ "code": code, "message": message, "status": status });
    if !details.is_empty() {
        error["details"] = Value::Array(details);
    }
    Reply::Json {
        status: code,
        body: json!({ "error": error }),
    }
}

pub fn invalid_argument(message: &str) -> Reply {
    envelope(400, "INVALID_ARGUMENT", message, Vec::new())
}

/// A 400 whose `BadRequest` detail names the offending field (snake_case path).
pub fn field_violation(field: &str, message: &str) -> Reply {
    let mut violation = json!({ "description": message });
    if !field.is_empty() {
        violation["field"] = json!(field);
    }
    let detail = json!({
        "@type": "type.googleapis.com/google.rpc.BadRequest",
        "fieldViolations": [violation],
    });
    envelope(400, "INVALID_ARGUMENT", message, vec![detail])
}

pub fn malformed_json(detail: &str) -> Reply {
    let message = format!("Invalid JSON payload received. {detail}");
    field_violation("", &message)
}

pub fn parse_error(err: ParseError) -> Reply {
    match err {
        ParseError::UnknownField { name, at } => {
            let location = if at.is_empty() {
                String::new()
            } else {
                format!(" at '{at}'")
            };
            let message = format!(
                "Invalid JSON payload received. Unknown name \"{name}\"{location}: Cannot find field."
            );
            field_violation(&at, &message)
        }
        ParseError::InvalidValue { at, detail } => {
            field_violation(&at, &format!("Invalid value at '{at}' ({detail})"))
        }
    }
}

/// Base64 failures name the field and quote (a prefix of) the bad value, as the transcoder does.
pub fn bad_base64(field: &str, value: &str) -> Reply {
    let shown: String = value.chars().take(40).collect();
    field_violation(
        field,
        &format!("Invalid value at '{field}' (TYPE_BYTES), Base64 decoding failed for \"{shown}\""),
    )
}

pub fn missing_key() -> Reply {
    envelope(
        403,
        "PERMISSION_DENIED",
        "Method doesn't allow unregistered callers (callers without established identity). Please use API Key or other form of API consumer identity to call this API.",
        Vec::new(),
    )
}

pub fn invalid_key() -> Reply {
    let message = "API key not valid. Please pass a valid API key.";
    let details = vec![
        json!({
            "@type": "type.googleapis.com/google.rpc.ErrorInfo",
            "reason": "API_KEY_INVALID",
            "domain": "googleapis.com",
            "metadata": { "service": "generativelanguage.googleapis.com" },
        }),
        json!({
            "@type": "type.googleapis.com/google.rpc.LocalizedMessage",
            "locale": "en-US",
            "message": message,
        }),
    ];
    envelope(400, "INVALID_ARGUMENT", message, details)
}

pub fn model_not_found(model: &str, version: &str, method: &str) -> Reply {
    let message = format!(
        "models/{model} is not found for API version {version}, or is not supported for {method}. Call ListModels to see the list of available models and their supported methods."
    );
    envelope(404, "NOT_FOUND", &message, Vec::new())
}

/// Any path or method the fake does not serve.
pub fn route_not_found() -> Reply {
    envelope(404, "NOT_FOUND", "Method not found.", Vec::new())
}

pub fn payload_too_large() -> Reply {
    invalid_argument("Request payload size exceeds the limit: 20971520 bytes.")
}

/// The full quota 429 (docs/upstream.md#errors-and-retries); the delay appears both in the
/// message and in `RetryInfo`.
pub fn quota_exhausted(model: &str, retry_delay: &str) -> Reply {
    let metric = "generativelanguage.googleapis.com/generate_content_free_tier_requests";
    let message = format!(
        "You exceeded your current quota, please check your plan and billing details. For more information on this error, head to: https://ai.google.dev/gemini-api/docs/rate-limits. To monitor your current usage, head to: https://ai.dev/usage?tab=rate-limit. \n* Quota exceeded for metric: {metric}, limit: 10, model: {model}\nPlease retry in {retry_delay}."
    );
    let details = vec![
        json!({
            "@type": "type.googleapis.com/google.rpc.QuotaFailure",
            "violations": [{
                "quotaMetric": metric,
                "quotaId": "GenerateRequestsPerMinutePerProjectPerModel-FreeTier",
                "quotaDimensions": { "location": "global", "model": model },
                "quotaValue": "10",
            }],
        }),
        json!({
            "@type": "type.googleapis.com/google.rpc.Help",
            "links": [{
                "description": "Learn more about Gemini API quotas",
                "url": "https://ai.google.dev/gemini-api/docs/rate-limits",
            }],
        }),
        json!({ "@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": retry_delay }),
    ];
    envelope(429, "RESOURCE_EXHAUSTED", &message, details)
}

pub fn bare_exhausted() -> Reply {
    envelope(
        429,
        "RESOURCE_EXHAUSTED",
        "Resource has been exhausted (e.g. check quota).",
        Vec::new(),
    )
}

pub fn credits_depleted() -> Reply {
    envelope(
        402,
        "RESOURCE_EXHAUSTED",
        "Your prepayment credits are depleted. Please go to AI Studio at https://ai.studio/projects to manage your project and billing. For more information on this error, head to: https://ai.google.dev/gemini-api/docs/billing.",
        Vec::new(),
    )
}

pub fn permission_denied() -> Reply {
    envelope(
        403,
        "PERMISSION_DENIED",
        "The caller does not have permission",
        Vec::new(),
    )
}

pub fn unprocessable_image() -> Reply {
    invalid_argument(&format!("Unable to process input image. {TROUBLESHOOTING}"))
}

pub fn internal() -> Reply {
    envelope(
        500,
        "INTERNAL",
        &format!("An internal error has occurred. {TROUBLESHOOTING}"),
        Vec::new(),
    )
}

pub fn overloaded() -> Reply {
    envelope(
        503,
        "UNAVAILABLE",
        "The model is overloaded. Please try again later.",
        Vec::new(),
    )
}

pub fn deadline_exceeded() -> Reply {
    envelope(
        504,
        "DEADLINE_EXCEEDED",
        "Deadline expired before operation could complete.",
        Vec::new(),
    )
}

/// The front end gave up waiting for the request: HTML, not the JSON envelope.
pub fn request_timeout_html() -> Reply {
    Reply::Html {
        status: 408,
        body: "<html><body>408 Request Timeout</body></html>",
    }
}

/// A front-end failure that never reached the API: HTML, not the JSON envelope.
pub fn bad_gateway_html() -> Reply {
    Reply::Html {
        status: 502,
        body: "<html><body>502 Bad Gateway</body></html>",
    }
}

/// A flex call shed for lack of capacity (Google's optimisation guide: flex "may be shed").
pub fn flex_shed() -> Reply {
    envelope(
        429,
        "RESOURCE_EXHAUSTED",
        "Resource has been exhausted (e.g. check quota). Flex capacity is not available; retry later or use the standard service tier.",
        Vec::new(),
    )
}

//! Scripted behaviour, driven by `[[fake:NAME]]` / `[[fake:NAME:N]]` markers in the text of the
//! last user turn. `N` limits a marker to the first N attempts of that exact text, which is how
//! tests script "fail twice, then succeed".

use std::time::Duration;

use serde_json::{Value, json};

use super::Reply;
use super::errors;

/// Markers that only change a successful answer (or delay any answer).
const MODIFIERS: [&str; 7] = [
    "thoughts",
    "png",
    "two_images",
    "urlsafe",
    "mime_mismatch",
    "stream_error",
    "text_only",
];
/// Markers that replace the answer with an HTTP error.
const ERRORS: [&str; 10] = [
    "429", "429_bare", "402", "403", "400", "408_html", "500", "503", "504", "502_html",
];
/// Markers that replace the answer with a 200 carrying no image.
const BLOCKS: [&str; 11] = [
    "image_safety",
    "image_prohibited",
    "image_recitation",
    "safety",
    "recitation",
    "no_image",
    "max_tokens",
    "image_other",
    "other",
    "prompt_blocked",
    "empty",
];

/// A marker found in the prompt: its name and optional attempt limit.
#[derive(Debug, Clone, PartialEq)]
pub struct Marker {
    pub name: String,
    pub limit: Option<u32>,
}

pub fn parse_markers(text: &str) -> Vec<Marker> {
    let mut markers = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("[[fake:") {
        rest = &rest[start + "[[fake:".len()..];
        let Some(end) = rest.find("]]") else { break };
        let inner = &rest[..end];
        rest = &rest[end + 2..];
        // `NAME@K` markers are turn markers, read by `turn_markers`.
        if inner.contains('@') {
            continue;
        }
        let (name, limit) = match inner.rsplit_once(':') {
            Some((name, n)) => match n.parse() {
                Ok(n) => (name, Some(n)),
                Err(_) => (inner, None),
            },
            None => (inner, None),
        };
        markers.push(Marker {
            name: name.to_string(),
            limit,
        });
    }
    markers
}

/// What the active markers ask for on this attempt.
#[derive(Debug, Default, Clone)]
pub struct Script {
    /// First active error or block marker; `None` means a normal answer.
    pub outcome: Option<String>,
    pub slow: Option<Duration>,
    pub thoughts: bool,
    pub png: bool,
    pub two_images: bool,
    pub urlsafe: bool,
    pub mime_mismatch: bool,
    pub stream_error: bool,
    pub text_only: bool,
}

impl Script {
    /// Builds the script for attempt number `attempt` (1-based). Unknown names are an error so a
    /// typo in a test fails loudly instead of silently succeeding.
    pub fn for_attempt(markers: &[Marker], attempt: u32) -> Result<Script, Reply> {
        let mut script = Script::default();
        for marker in markers {
            let name = marker.name.as_str();
            let slow = name
                .strip_prefix("slow_")
                .and_then(|ms| ms.parse::<u64>().ok());
            let known = slow.is_some()
                || MODIFIERS.contains(&name)
                || ERRORS.contains(&name)
                || BLOCKS.contains(&name);
            if !known {
                return Err(errors::invalid_argument(&format!(
                    "fake-gemini: unknown scenario marker [[fake:{name}]]"
                )));
            }
            if marker.limit.is_some_and(|limit| attempt > limit) {
                continue;
            }
            match name {
                "thoughts" => script.thoughts = true,
                "png" => script.png = true,
                "two_images" => script.two_images = true,
                "urlsafe" => script.urlsafe = true,
                "mime_mismatch" => script.mime_mismatch = true,
                "stream_error" => script.stream_error = true,
                "text_only" => script.text_only = true,
                _ if slow.is_some() => script.slow = slow.map(Duration::from_millis),
                _ => {
                    script.outcome.get_or_insert_with(|| name.to_string());
                }
            }
        }
        Ok(script)
    }
}

/// The HTTP error a scripted outcome stands for, if it is an error.
pub fn scripted_error(name: &str, model: &str, retry_delay: &str) -> Option<Reply> {
    Some(match name {
        "429" => errors::quota_exhausted(model, retry_delay),
        "429_bare" => errors::bare_exhausted(),
        "402" => errors::credits_depleted(),
        "403" => errors::permission_denied(),
        "400" => errors::unprocessable_image(),
        "500" => errors::internal(),
        "503" => errors::overloaded(),
        "504" => errors::deadline_exceeded(),
        "502_html" => errors::bad_gateway_html(),
        "408_html" => errors::request_timeout_html(),
        _ => return None,
    })
}

const IMAGE_BLOCKED: &str = "Unable to show the generated image. The generated image was filtered out because it violated Google's Generative AI Prohibited Use policy. You will not be charged for blocked images. Try rephrasing the prompt. If you think this was a mistake, send feedback.";

/// The 200 body of a block-type outcome, minus `modelVersion`/`responseId`. `usage` is the
/// prompt-only usage: nothing was generated, so nothing else is billed.
pub fn scripted_block(name: &str, usage: Value) -> Option<Value> {
    let role_only = json!({ "role": "model" });
    let candidate = match name {
        "image_safety" => json!({
            "content": role_only, "finishReason": "IMAGE_SAFETY", "index": 0,
            "finishMessage": IMAGE_BLOCKED,
        }),
        "image_prohibited" => json!({
            "content": role_only, "finishReason": "IMAGE_PROHIBITED_CONTENT", "index": 0,
            "finishMessage": format!("{IMAGE_BLOCKED} Support code: 42876398."),
        }),
        "image_recitation" => {
            json!({ "content": role_only, "finishReason": "IMAGE_RECITATION", "index": 0 })
        }
        "image_other" => json!({ "content": role_only, "finishReason": "IMAGE_OTHER", "index": 0 }),
        "other" => json!({ "content": role_only, "finishReason": "OTHER", "index": 0 }),
        "safety" => json!({
            "finishReason": "SAFETY", "index": 0,
            "safetyRatings": [
                { "category": "HARM_CATEGORY_SEXUALLY_EXPLICIT", "probability": "HIGH", "blocked": true },
                { "category": "HARM_CATEGORY_HATE_SPEECH", "probability": "NEGLIGIBLE" },
                { "category": "HARM_CATEGORY_HARASSMENT", "probability": "NEGLIGIBLE" },
                { "category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "NEGLIGIBLE" },
            ],
        }),
        "recitation" => json!({ "finishReason": "RECITATION", "index": 0 }),
        "no_image" => json!({ "finishReason": "NO_IMAGE", "index": 0 }),
        "max_tokens" => json!({ "finishReason": "MAX_TOKENS", "index": 0 }),
        "prompt_blocked" => {
            return Some(json!({
                "promptFeedback": { "blockReason": "PROHIBITED_CONTENT" },
                "usageMetadata": usage,
            }));
        }
        "empty" => return Some(json!({})),
        _ => return None,
    };
    Some(json!({ "candidates": [candidate], "usageMetadata": usage }))
}

/// Text of the last non-model turn, parts joined by newlines. Works on the raw body so it is
/// also available for requests that failed to parse.
/// `[[fake:NAME@K]]` anywhere in a user turn applies `NAME` only to a request whose
/// conversation has exactly K user turns (for example the second step of a story).
/// Returned as plain `[[fake:NAME]]` markers to add to the scripted text.
pub fn turn_markers(body: &Value) -> String {
    let users: Vec<&Value> = body
        .get("contents")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|c| c.get("role").and_then(Value::as_str) != Some("model"))
        .collect();
    let mut out = String::new();
    for text in users
        .iter()
        .filter_map(|c| c.get("parts").and_then(Value::as_array))
        .flatten()
        .filter_map(|p| p.get("text").and_then(Value::as_str))
    {
        let mut rest = text;
        while let Some(start) = rest.find("[[fake:") {
            rest = &rest[start + "[[fake:".len()..];
            let Some(end) = rest.find("]]") else { break };
            if let Some((name, turn)) = rest[..end].split_once('@')
                && turn.parse::<usize>() == Ok(users.len())
            {
                out.push_str(&format!("[[fake:{name}]]"));
            }
            rest = &rest[end + 2..];
        }
    }
    out
}

pub fn last_user_text(body: &Value) -> String {
    let Some(contents) = body.get("contents").and_then(Value::as_array) else {
        return String::new();
    };
    let Some(last) = contents
        .iter()
        .rev()
        .find(|c| c.get("role").and_then(Value::as_str) != Some("model"))
    else {
        return String::new();
    };
    last.get("parts")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|p| p.get("text").and_then(Value::as_str))
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_with_and_without_limits_are_parsed() {
        let markers = parse_markers("a [[fake:429:2]] b [[fake:slow_300]] [[fake:thoughts]]");
        assert_eq!(markers.len(), 3);
        assert_eq!(
            markers[0],
            Marker {
                name: "429".into(),
                limit: Some(2)
            }
        );
        assert_eq!(markers[1].name, "slow_300");
        assert_eq!(markers[2].limit, None);
    }
}

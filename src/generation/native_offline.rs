//! The native Gemini surface on the offline provider: a `generateContent` request read
//! from Google's wire format (camelCase or snake_case, either base64 alphabet), served by
//! the same pipeline as every other endpoint, and answered in Google's response format.
//! Nothing is forwarded anywhere; answers say `"modelVersion": "offline"`.

use bytes::Bytes;
use serde_json::{Value, json};

use crate::caller::RequestContext;
use crate::generation::GenerationError;
use crate::generation::native::Relay;
use crate::generation::params::{RawOptions, RawRouting};
use crate::imaging::ImageFormat;
use crate::models::ResolvedModel;
use crate::provider::native::decode_base64;
use crate::provider::{Part, PartData, ProviderRequest, Role, Task, Turn};

/// A field under its camelCase or snake_case name, as Google accepts both.
fn field<'a>(value: &'a Value, camel: &str, snake: &str) -> &'a Value {
    match &value[camel] {
        Value::Null => &value[snake],
        v => v,
    }
}

fn invalid(message: impl Into<String>) -> GenerationError {
    GenerationError::invalid("body", message)
}

fn parse_body(body: &[u8]) -> Result<Value, GenerationError> {
    serde_json::from_slice(body).map_err(|e| invalid(format!("Invalid JSON payload received. {e}")))
}

fn turns(request: &Value) -> Result<Vec<Turn>, GenerationError> {
    let contents = request["contents"]
        .as_array()
        .filter(|c| !c.is_empty())
        .ok_or_else(|| invalid("contents is required and must not be empty."))?;
    contents
        .iter()
        .map(|content| {
            let role = if content["role"] == "model" {
                Role::Model
            } else {
                Role::User
            };
            let parts = content["parts"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default();
            let parts = parts
                .iter()
                .map(|p| {
                    let signature = p["thoughtSignature"]
                        .as_str()
                        .or_else(|| p["thought_signature"].as_str());
                    let thought_signature = signature
                        .and_then(decode_base64)
                        .map(|(b, _)| Bytes::from(b));
                    let blob = field(p, "inlineData", "inline_data");
                    let data = if blob.is_object() {
                        let (bytes, _) = blob["data"]
                            .as_str()
                            .and_then(decode_base64)
                            .ok_or_else(|| invalid("inlineData.data is not valid base64."))?;
                        let format = ImageFormat::sniff(&bytes).ok_or_else(|| {
                            invalid("Unable to process input image. Send PNG, JPEG or WebP.")
                        })?;
                        PartData::Image {
                            format,
                            bytes: Bytes::from(bytes),
                        }
                    } else {
                        PartData::Text(p["text"].as_str().unwrap_or_default().to_owned())
                    };
                    Ok(Part {
                        data,
                        thought: p["thought"] == true,
                        thought_signature,
                    })
                })
                .collect::<Result<Vec<_>, GenerationError>>()?;
            Ok(Turn { role, parts })
        })
        .collect()
}

fn request(
    relay: &Relay<'_>,
    model: ResolvedModel,
    body: &[u8],
) -> Result<ProviderRequest, GenerationError> {
    let req = parse_body(body)?;
    let config = field(&req, "generationConfig", "generation_config");
    let image_config = field(config, "imageConfig", "image_config");
    let modalities = field(config, "responseModalities", "response_modalities")
        .as_array()
        .map(|m| {
            m.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect::<Vec<_>>()
        });
    let options = RawOptions {
        model: Some(model.entry.name.clone()),
        response_modalities: modalities,
        temperature: config["temperature"].as_f64(),
        aspect_ratio: field(image_config, "aspectRatio", "aspect_ratio")
            .as_str()
            .map(str::to_owned),
        image_size: field(image_config, "imageSize", "image_size")
            .as_str()
            .map(str::to_owned),
        seed: config["seed"].as_i64(),
        routing: RawRouting {
            service_tier: field(&req, "serviceTier", "service_tier")
                .as_str()
                .map(str::to_owned)
                // google-genai's enum has `unspecified`: the upstream's default.
                .filter(|t| !t.eq_ignore_ascii_case("unspecified")),
            thinking_level: field(
                field(config, "thinkingConfig", "thinking_config"),
                "thinkingLevel",
                "thinking_level",
            )
            .as_str()
            .map(str::to_owned),
            fallback: None,
        },
    }
    .parse_native(relay.models, relay.default_model)?;
    let system = field(&req, "systemInstruction", "system_instruction")["parts"]
        .as_array()
        .map(|parts| {
            parts
                .iter()
                .filter_map(|p| p["text"].as_str())
                .collect::<Vec<_>>()
                .join("\n")
        })
        .filter(|s| !s.is_empty());
    Ok(ProviderRequest::new(options, Task::Chat, turns(&req)?).with_system_instruction(system))
}

fn answer_parts(text: Option<&str>, images: &[(String, &'static str)]) -> Vec<Value> {
    let mut parts: Vec<Value> = text.map(|t| json!({"text": t})).into_iter().collect();
    parts.extend(
        images
            .iter()
            .map(|(data, mime)| json!({"inlineData": {"mimeType": mime, "data": data}})),
    );
    parts
}

fn envelope(parts: Vec<Value>, finish: Option<&str>, request_id: &str) -> Value {
    let mut candidate = json!({"content": {"role": "model", "parts": parts}, "index": 0});
    if let Some(f) = finish {
        candidate["finishReason"] = f.into();
    }
    json!({
        "candidates": [candidate],
        "usageMetadata": {"promptTokenCount": 0, "candidatesTokenCount": 0, "totalTokenCount": 0},
        "modelVersion": "offline",
        "responseId": request_id,
    })
}

/// Runs the translated request; the answer's text and its images with their types.
async fn run(
    relay: &Relay<'_>,
    ctx: &RequestContext,
    model: ResolvedModel,
    body: &[u8],
) -> Result<(Option<String>, Vec<(String, &'static str)>, String, String), GenerationError> {
    let outcome = relay
        .generator
        .run(ctx, request(relay, model, body)?)
        .await?;
    let r = outcome.response;
    let images = r.images.into_iter().zip(r.mime_types).collect();
    Ok((r.text, images, r.finish_reason, r.request_id))
}

pub async fn generate(
    relay: &Relay<'_>,
    ctx: &RequestContext,
    model: ResolvedModel,
    body: &[u8],
) -> Result<Value, GenerationError> {
    let (text, images, finish, id) = run(relay, ctx, model, body).await?;
    Ok(envelope(
        answer_parts(text.as_deref(), &images),
        Some(&finish),
        &id,
    ))
}

/// The same answer as server-sent events: text first, then the image with the finish.
pub async fn stream(
    relay: &Relay<'_>,
    ctx: &RequestContext,
    model: ResolvedModel,
    body: &[u8],
) -> Result<String, GenerationError> {
    let (text, images, finish, id) = run(relay, ctx, model, body).await?;
    let mut events = Vec::new();
    if let Some(text) = text.as_deref() {
        events.push(envelope(answer_parts(Some(text), &[]), None, &id));
    }
    events.push(envelope(answer_parts(None, &images), Some(&finish), &id));
    Ok(events
        .iter()
        .map(|e| format!("data: {e}\r\n\r\n"))
        .collect())
}

/// Offline token count: words of text plus 258 per input image (the per-tile figure of
/// docs/upstream.md#response) — an estimate, since no tokenizer runs offline.
pub fn count_tokens(body: &[u8]) -> Result<Value, GenerationError> {
    let req = parse_body(body)?;
    let inner = field(&req, "generateContentRequest", "generate_content_request");
    let source = if inner.is_object() { inner } else { &req };
    let (mut text, mut images) = (0u64, 0u64);
    for content in source["contents"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
    {
        for part in content["parts"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
        {
            if let Some(t) = part["text"].as_str() {
                text += t.split_whitespace().count() as u64;
            } else if field(part, "inlineData", "inline_data").is_object() {
                images += 1;
            }
        }
    }
    let mut details = vec![json!({"modality": "TEXT", "tokenCount": text})];
    if images > 0 {
        details.push(json!({"modality": "IMAGE", "tokenCount": images * 258}));
    }
    Ok(json!({"totalTokens": text + images * 258, "promptTokensDetails": details}))
}

//! Successful `GenerateContentResponse` bodies (docs/upstream.md#response) and their SSE
//! chunking (docs/upstream.md#streaming).

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Value, json};

use super::images::{self, Format};
use super::models::{ModelSpec, dimensions};
use super::scenarios::Script;
use super::validate::{Plan, PromptTokens};

const REPLY_TEXT: &str = "Here is the image you asked for.";
const TEXT_ONLY_REPLY: &str =
    "I can describe that scene in words, but I did not create an image for this request.";
const THOUGHT_TEXT: &str = "**Composing the scene**\nI'll lay out the subject first, then settle the lighting and palette before rendering.";
/// Thinking tokens billed when thoughts are shown (the figure of the spec's example).
const THOUGHT_TOKENS: u32 = 238;

/// Everything needed to render one successful answer.
pub struct Request<'a> {
    pub spec: &'a ModelSpec,
    pub plan: &'a Plan,
    pub script: &'a Script,
    /// Palette index derived from the prompt.
    pub colour: u8,
}

/// Builds the candidate and usage; `sign` mints a fresh thought signature for each
/// non-thought part (every answering model is a Gemini 3 model).
pub async fn success(req: Request<'_>, mut sign: impl FnMut() -> String) -> Value {
    let (width, height) = dimensions(req.plan.ratio, req.plan.size);
    let format = if req.script.png {
        Format::Png
    } else {
        Format::Jpeg
    };
    let image_part = |bytes: &[u8], thought: bool| {
        let data = if req.script.urlsafe {
            URL_SAFE_NO_PAD.encode(bytes)
        } else {
            STANDARD.encode(bytes)
        };
        // The mismatch scenario reproduces python-genai#1824: declared PNG, JPEG bytes.
        let mime = if req.script.mime_mismatch {
            "image/png"
        } else {
            format.mime()
        };
        let mut part = json!({ "inlineData": { "mimeType": mime, "data": data } });
        if thought {
            part["thought"] = json!(true);
        }
        part
    };

    let mut parts = Vec::new();
    let thoughts = req.script.thoughts || req.plan.include_thoughts;
    if thoughts {
        parts.push(json!({ "text": THOUGHT_TEXT, "thought": true }));
        let interim = images::other_colour(req.colour, images::PALETTE_SIZE / 2);
        let bytes = images::render(width, height, interim, format).await;
        parts.push(image_part(&bytes, true));
    }
    let text = if req.script.text_only {
        Some(TEXT_ONLY_REPLY)
    } else {
        req.plan.want_text.then_some(REPLY_TEXT)
    };
    if let Some(text) = text {
        parts.push(json!({ "text": text, "thoughtSignature": sign() }));
    }
    let mut image_count = 0;
    if !req.script.text_only {
        let colours = if req.script.two_images {
            vec![req.colour, images::other_colour(req.colour, 5)]
        } else {
            vec![req.colour]
        };
        for colour in colours {
            let bytes = images::render(width, height, colour, format).await;
            let mut part = image_part(&bytes, false);
            part["thoughtSignature"] = json!(sign());
            parts.push(part);
            image_count += 1;
        }
    }

    let output = Output {
        image: image_count * req.spec.output_tokens(req.plan.size),
        text: text.map_or(0, word_count),
        thoughts: if thoughts { THOUGHT_TOKENS } else { 0 },
    };
    json!({
        "candidates": [{
            "content": { "role": "model", "parts": parts },
            "finishReason": "STOP",
            "index": 0,
        }],
        "usageMetadata": usage(req.plan.prompt, output),
    })
}

fn word_count(text: &str) -> u32 {
    u32::try_from(text.split_whitespace().count()).unwrap_or(u32::MAX)
}

#[derive(Debug, Clone, Copy, Default)]
pub struct Output {
    pub image: u32,
    pub text: u32,
    pub thoughts: u32,
}

/// `usageMetadata` in proto3 JSON style: zero counts and empty detail lists are omitted.
pub fn usage(prompt: PromptTokens, output: Output) -> Value {
    let details = |pairs: [(&str, u32); 2]| -> Vec<Value> {
        pairs
            .iter()
            .filter(|(_, n)| *n > 0)
            .map(|(modality, n)| json!({ "modality": modality, "tokenCount": n }))
            .collect()
    };
    let prompt_total = prompt.text + prompt.image;
    let candidates = output.image + output.text;
    let mut usage = serde_json::Map::new();
    let mut put = |key: &str, value: Value| {
        let empty = value == json!(0) || value == json!([]);
        if !empty {
            usage.insert(key.to_string(), value);
        }
    };
    put("promptTokenCount", json!(prompt_total));
    put("candidatesTokenCount", json!(candidates));
    put("thoughtsTokenCount", json!(output.thoughts));
    put(
        "totalTokenCount",
        json!(prompt_total + candidates + output.thoughts),
    );
    put(
        "promptTokensDetails",
        json!(details([("TEXT", prompt.text), ("IMAGE", prompt.image)])),
    );
    put(
        "candidatesTokensDetails",
        json!(details([("IMAGE", output.image), ("TEXT", output.text)])),
    );
    Value::Object(usage)
}

/// Splits a complete answer into SSE chunks: one part per event, running (prompt-only) usage on
/// all but the last, and `finishReason` plus the full usage only on the last. Bodies without
/// several parts (blocks, text-only) go out as a single event.
pub fn stream_chunks(body: &Value, prompt: PromptTokens, stream_error: bool) -> Vec<Value> {
    let candidate = body.pointer("/candidates/0");
    let parts = candidate
        .and_then(|c| c.pointer("/content/parts"))
        .and_then(Value::as_array);
    let mut chunks = match (candidate, parts) {
        (Some(candidate), Some(parts)) if parts.len() > 1 => {
            let last = parts.len() - 1;
            parts
                .iter()
                .enumerate()
                .map(|(i, part)| {
                    let mut chunk = body.clone();
                    let mut cand = if i == last {
                        candidate.clone()
                    } else {
                        json!({ "index": 0 })
                    };
                    cand["content"] = json!({ "role": "model", "parts": [part] });
                    chunk["candidates"] = json!([cand]);
                    if i != last {
                        chunk["usageMetadata"] = usage(prompt, Output::default());
                    }
                    chunk
                })
                .collect()
        }
        _ => vec![body.clone()],
    };
    if stream_error {
        chunks.truncate(1);
        chunks.push(json!({ "error": {
            "code": 500,
            "message": "An internal error has occurred. Please retry or report in https://developers.generativeai.google/guide/troubleshooting",
            "status": "INTERNAL",
        }}));
    }
    chunks
}

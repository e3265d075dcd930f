//! Per-model request validation (docs/upstream.md: request, models and limits, multi-turn).
//! Every rejection is the 400 the real service gives; where Google's exact wording is
//! unknown the message is a plausible stand-in.

use std::collections::HashSet;
use std::io::Cursor;

use base64::Engine as _;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use serde_json::Value;

use super::Reply;
use super::errors::{bad_base64, field_violation, invalid_argument, unprocessable_image};
use super::models::ModelSpec;
use super::wire::{Content, GenerateContentRequest};

const INPUT_MIME_TYPES: [&str; 5] = [
    "image/png",
    "image/jpeg",
    "image/webp",
    "image/heic",
    "image/heif",
];
const MAX_INPUT_IMAGES: usize = 14;
/// Documented escape hatches for history that came from elsewhere
/// (docs/upstream.md#multi-turn-and-thought-signatures).
pub const DUMMY_SIGNATURES: [&str; 2] = [
    "context_engineering_is_the_way_to_go",
    "skip_thought_signature_validator",
];

/// What a valid request asks the fake to produce.
#[derive(Debug, Clone)]
pub struct Plan {
    pub ratio: &'static str,
    pub size: &'static str,
    pub want_text: bool,
    pub include_thoughts: bool,
    pub prompt: PromptTokens,
}

#[derive(Debug, Clone, Copy, Default)]
pub struct PromptTokens {
    pub text: u32,
    pub image: u32,
}

/// Accepts standard and URL-safe alphabets, padded or not (the Python SDK sends URL-safe).
pub fn decode_base64(data: &str) -> Option<Vec<u8>> {
    let engine = GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
    );
    engine.decode(data.replace('-', "+").replace('_', "/")).ok()
}

pub fn validate(
    req: &GenerateContentRequest,
    spec: &ModelSpec,
    issued: Option<&HashSet<Vec<u8>>>,
) -> Result<Plan, Reply> {
    let stats = check_contents(&req.contents, spec, issued)?;
    let mut prompt = stats.tokens;
    if let Some(system) = &req.system_instruction {
        prompt.text += text_tokens(std::slice::from_ref(system));
    }
    let config = req.generation_config.as_ref();
    let model = format!("models/{}", spec.id);

    if let Some(config) = config {
        for (name, set) in [
            (
                "response_mime_type",
                config
                    .response_mime_type
                    .as_deref()
                    .is_some_and(|m| !m.is_empty()),
            ),
            ("response_schema", config.response_schema.is_some()),
            (
                "response_json_schema",
                config.response_json_schema.is_some(),
            ),
        ] {
            if set {
                return Err(invalid_argument(&format!(
                    "Parameter {name} is not supported for generating image response."
                )));
            }
        }
        if config.candidate_count.is_some_and(|n| n > 1) {
            return Err(invalid_argument(&format!(
                "Multiple candidates is not enabled for {model}"
            )));
        }
    }

    service_tier(req.service_tier.as_ref())?;
    thinking_level(
        config
            .and_then(|c| c.thinking_config.as_ref())
            .and_then(|t| t.thinking_level.as_ref()),
        spec,
        &model,
    )?;
    let want_text = modalities(
        config.and_then(|c| c.response_modalities.as_deref()),
        &model,
    )?;
    let image_config = config.and_then(|c| c.image_config.as_ref());
    let ratio = match image_config.and_then(|c| c.aspect_ratio.as_deref()) {
        None | Some("") => stats
            .last_user_image_dims
            .map_or("1:1", |(w, h)| spec.closest_ratio(w, h)),
        Some(ratio) => pick(ratio, spec.ratios, "aspect ratio", "aspect_ratio", &model)?,
    };
    let sizes: Vec<&'static str> = spec.sizes.iter().map(|(s, _)| *s).collect();
    let size = match image_config.and_then(|c| c.image_size.as_deref()) {
        None | Some("") => "1K",
        // Exact match: Google rejects a lowercase "1k".
        Some(size) => pick(size, &sizes, "image size", "image_size", &model)?,
    };
    let include_thoughts = config
        .and_then(|c| c.thinking_config.as_ref())
        .and_then(|t| t.include_thoughts)
        .unwrap_or(false);
    Ok(Plan {
        ratio,
        size,
        want_text,
        include_thoughts,
        prompt,
    })
}

/// The allowed value equal to `value`, or the 400 naming the `image_config` field.
fn pick(
    value: &str,
    allowed: &[&'static str],
    what: &str,
    field: &str,
    model: &str,
) -> Result<&'static str, Reply> {
    allowed
        .iter()
        .find(|a| **a == value)
        .copied()
        .ok_or_else(|| {
            field_violation(
                &format!("generation_config.image_config.{field}"),
                &format!(
                    "Unsupported {what} \"{value}\" for {model}. Supported values: {}.",
                    allowed.join(", ")
                ),
            )
        })
}

/// `serviceTier` as google-genai sends it: lower case, one of its enum's values.
fn service_tier(value: Option<&Value>) -> Result<(), Reply> {
    const TIERS: [&str; 4] = ["unspecified", "standard", "flex", "priority"];
    match value {
        None => Ok(()),
        Some(Value::String(tier)) if TIERS.contains(&tier.as_str()) => Ok(()),
        Some(other) => Err(field_violation(
            "service_tier",
            &format!(
                "Invalid value at 'service_tier' (type.googleapis.com/google.ai.generativelanguage.v1beta.ServiceTier), {other}"
            ),
        )),
    }
}

/// `thinkingConfig.thinkingLevel`: a level of the enum, and one this model takes.
fn thinking_level(value: Option<&Value>, spec: &ModelSpec, model: &str) -> Result<(), Reply> {
    const LEVELS: [&str; 6] = [
        "THINKING_LEVEL_UNSPECIFIED",
        "MINIMAL",
        "LOW",
        "MEDIUM",
        "HIGH",
        "XHIGH",
    ];
    let Some(value) = value else {
        return Ok(());
    };
    let field = "generation_config.thinking_config.thinking_level";
    let level = match value.as_str().map(str::to_ascii_uppercase) {
        Some(level) if LEVELS.contains(&level.as_str()) => level,
        _ => {
            return Err(field_violation(
                field,
                &format!(
                    "Invalid value at '{field}' (type.googleapis.com/google.ai.generativelanguage.v1beta.ThinkingConfig.ThinkingLevel), {value}"
                ),
            ));
        }
    };
    if level == "THINKING_LEVEL_UNSPECIFIED" || spec.thinking_levels.contains(&level.as_str()) {
        return Ok(());
    }
    if spec.thinking_levels.is_empty() {
        return Err(invalid_argument(&format!(
            "Thinking level is not supported for {model}."
        )));
    }
    Err(invalid_argument(&format!(
        "Thinking level {level} is not supported for {model}. Supported levels: {}.",
        spec.thinking_levels.join(", ")
    )))
}

/// Returns whether TEXT was requested; an absent or empty list means text and image.
fn modalities(values: Option<&[Value]>, model: &str) -> Result<bool, Reply> {
    let mut names = Vec::new();
    for (i, value) in values.unwrap_or_default().iter().enumerate() {
        let name = match value {
            Value::String(s) => s.to_ascii_uppercase(),
            Value::Number(n) => match n.as_u64() {
                Some(0) => "MODALITY_UNSPECIFIED".into(),
                Some(1) => "TEXT".into(),
                Some(2) => "IMAGE".into(),
                Some(3) => "AUDIO".into(),
                _ => String::new(),
            },
            _ => String::new(),
        };
        if !["MODALITY_UNSPECIFIED", "TEXT", "IMAGE", "AUDIO"].contains(&name.as_str()) {
            let field = format!("generation_config.response_modalities[{i}]");
            return Err(field_violation(
                &field,
                &format!(
                    "Invalid value at '{field}' (type.googleapis.com/google.ai.generativelanguage.v1beta.GenerationConfig.Modality), {value}"
                ),
            ));
        }
        if name != "MODALITY_UNSPECIFIED" && !names.contains(&name) {
            names.push(name);
        }
    }
    if names.is_empty() {
        return Ok(true);
    }
    if !names.iter().any(|n| n == "IMAGE") || names.iter().any(|n| n == "AUDIO") {
        return Err(invalid_argument(&format!(
            "The requested combination of response modalities ({}) is not supported by the model {model}.",
            names.join(", ")
        )));
    }
    Ok(names.iter().any(|n| n == "TEXT"))
}

pub struct ContentStats {
    pub tokens: PromptTokens,
    /// Size of the last image in the last user turn: an edit keeps its shape by default.
    pub last_user_image_dims: Option<(u32, u32)>,
}

/// Structural checks on `contents`, shared with countTokens. `issued` is `Some` in strict
/// signature mode.
pub fn check_contents(
    contents: &[Content],
    spec: &ModelSpec,
    issued: Option<&HashSet<Vec<u8>>>,
) -> Result<ContentStats, Reply> {
    if contents.is_empty() {
        return Err(invalid_argument(
            "* GenerateContentRequest.contents: contents is not specified\n",
        ));
    }
    let last_user = contents
        .iter()
        .rposition(|c| c.role.as_deref() != Some("model"));
    let mut stats = ContentStats {
        tokens: PromptTokens::default(),
        last_user_image_dims: None,
    };
    let mut last_user_images = 0;
    for (ci, content) in contents.iter().enumerate() {
        let parts = content.parts.as_deref().unwrap_or_default();
        if parts.is_empty() {
            return Err(invalid_argument(&format!(
                "* GenerateContentRequest.contents[{ci}].parts: contents.parts must not be empty.\n"
            )));
        }
        let is_model = content.role.as_deref() == Some("model");
        for (pi, part) in parts.iter().enumerate() {
            let at = format!("contents[{ci}].parts[{pi}]");
            match part.data_fields() {
                1 => {}
                0 => {
                    return Err(invalid_argument(&format!(
                        "* GenerateContentRequest.{at}.data: required oneof field 'data' must have one initialized field\n"
                    )));
                }
                _ => {
                    return Err(invalid_argument(&format!(
                        "* GenerateContentRequest.{at}.data: oneof field 'data' is already set. Only one field may be set\n"
                    )));
                }
            }
            let signature = match part.thought_signature.as_deref() {
                Some(sig) if DUMMY_SIGNATURES.contains(&sig) => Signature::Dummy,
                Some(sig) => Signature::Bytes(
                    decode_base64(sig)
                        .ok_or_else(|| bad_base64(&format!("{at}.thought_signature"), sig))?,
                ),
                None => Signature::Missing,
            };
            if let Some(file) = &part.file_data {
                if file
                    .mime_type
                    .as_deref()
                    .is_some_and(|m| m.starts_with("image/"))
                {
                    stats.tokens.image += spec.input_image_tokens;
                }
                continue;
            }
            let Some(blob) = &part.inline_data else {
                continue;
            };
            let mime = blob.mime_type.as_deref().unwrap_or_default();
            if !INPUT_MIME_TYPES.contains(&mime) {
                return Err(invalid_argument(&format!("Unsupported MIME type: {mime}")));
            }
            let data = blob.data.as_deref().unwrap_or_default();
            let bytes = decode_base64(data)
                .ok_or_else(|| bad_base64(&format!("{at}.inline_data.data"), data))?;
            // The declared type may disagree with the bytes (Google tolerates that), but the
            // bytes must be some image.
            if !looks_like_image(&bytes) {
                return Err(unprocessable_image());
            }
            if is_model && part.thought != Some(true) {
                check_signature(issued, &signature, ci, pi)?;
            }
            stats.tokens.image += spec.input_image_tokens;
            if Some(ci) == last_user {
                last_user_images += 1;
                stats.last_user_image_dims = image_dims(&bytes).or(stats.last_user_image_dims);
            }
        }
    }
    if last_user_images > MAX_INPUT_IMAGES {
        return Err(invalid_argument(&format!(
            "Too many images in the request: {last_user_images} were provided but models/{} accepts at most {MAX_INPUT_IMAGES}.",
            spec.id
        )));
    }
    stats.tokens.text = text_tokens(contents);
    Ok(stats)
}

enum Signature {
    Missing,
    Dummy,
    Bytes(Vec<u8>),
}

fn check_signature(
    issued: Option<&HashSet<Vec<u8>>>,
    signature: &Signature,
    ci: usize,
    pi: usize,
) -> Result<(), Reply> {
    let Some(issued) = issued else { return Ok(()) };
    let docs = "Please refer to https://ai.google.dev/gemini-api/docs/thought-signatures for more details.";
    match signature {
        Signature::Dummy => Ok(()),
        Signature::Bytes(bytes) if issued.contains(bytes) => Ok(()),
        Signature::Bytes(_) => Err(invalid_argument(&format!(
            "Thought signature is not valid in inlineData parts. Additional data, content position {ci}, part position {pi}. {docs}"
        ))),
        Signature::Missing => Err(invalid_argument(&format!(
            "Image part is missing a thought_signature in inlineData parts. This is required for image editing to work correctly, and missing thought_signature may lead to degraded model performance. Additional data, content position {ci}, part position {pi}. {docs}"
        ))),
    }
}

/// "Roughly one token per word" keeps the numbers predictable for tests.
fn text_tokens(contents: &[Content]) -> u32 {
    let words: usize = contents
        .iter()
        .flat_map(|c| c.parts.as_deref().unwrap_or_default())
        .filter_map(|p| p.text.as_deref())
        .map(|t| t.split_whitespace().count())
        .sum();
    u32::try_from(words).unwrap_or(u32::MAX)
}

fn looks_like_image(bytes: &[u8]) -> bool {
    bytes.starts_with(b"\x89PNG\r\n\x1a\n")
        || bytes.starts_with(&[0xFF, 0xD8, 0xFF])
        || (bytes.starts_with(b"RIFF") && bytes.get(8..12) == Some(b"WEBP"))
        || bytes.get(4..8) == Some(b"ftyp")
}

fn image_dims(bytes: &[u8]) -> Option<(u32, u32)> {
    image::ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .ok()?
        .into_dimensions()
        .ok()
}

//! Strict request types. Google's JSON transcoder accepts the proto's lowerCamelCase `json_name`
//! and the original snake_case name for every field, and rejects anything else, so every struct
//! denies unknown fields and every multi-word field carries a snake_case alias.
// Most fields exist only so that requests Google accepts also parse here; the fake never
// reads them.
#![allow(dead_code)]

use serde::Deserialize;
use serde_json::Value;
use serde_path_to_error::Segment;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct GenerateContentRequest {
    #[serde(default)]
    pub contents: Vec<Content>,
    #[serde(alias = "system_instruction")]
    pub system_instruction: Option<Content>,
    #[serde(alias = "generation_config")]
    pub generation_config: Option<GenerationConfig>,
    #[serde(alias = "safety_settings")]
    pub safety_settings: Option<Vec<SafetySetting>>,
    pub tools: Option<Vec<Tool>>,
    #[serde(alias = "tool_config")]
    pub tool_config: Option<Value>,
    #[serde(alias = "cached_content")]
    pub cached_content: Option<String>,
    #[serde(alias = "service_tier")]
    pub service_tier: Option<Value>,
    /// Only meaningful inside batch/countTokens requests, but harmless here.
    pub model: Option<String>,
}

/// `countTokens` takes either bare `contents` or a whole nested generate request.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CountTokensRequest {
    pub contents: Option<Vec<Content>>,
    #[serde(alias = "generate_content_request")]
    pub generate_content_request: Option<GenerateContentRequest>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Content {
    pub role: Option<String>,
    pub parts: Option<Vec<Part>>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Part {
    pub text: Option<String>,
    #[serde(alias = "inline_data")]
    pub inline_data: Option<Blob>,
    #[serde(alias = "file_data")]
    pub file_data: Option<FileData>,
    #[serde(alias = "function_call")]
    pub function_call: Option<Value>,
    #[serde(alias = "function_response")]
    pub function_response: Option<Value>,
    #[serde(alias = "executable_code")]
    pub executable_code: Option<Value>,
    #[serde(alias = "code_execution_result")]
    pub code_execution_result: Option<Value>,
    pub thought: Option<bool>,
    #[serde(alias = "thought_signature")]
    pub thought_signature: Option<String>,
    #[serde(alias = "video_metadata")]
    pub video_metadata: Option<Value>,
    #[serde(alias = "media_resolution")]
    pub media_resolution: Option<Value>,
    #[serde(alias = "part_metadata")]
    pub part_metadata: Option<Value>,
}

impl Part {
    /// How many members of the proto `data` oneof are set (exactly one is required).
    pub fn data_fields(&self) -> usize {
        [
            self.text.is_some(),
            self.inline_data.is_some(),
            self.file_data.is_some(),
            self.function_call.is_some(),
            self.function_response.is_some(),
            self.executable_code.is_some(),
            self.code_execution_result.is_some(),
        ]
        .iter()
        .filter(|set| **set)
        .count()
    }
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Blob {
    #[serde(alias = "mime_type")]
    pub mime_type: Option<String>,
    pub data: Option<String>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct FileData {
    #[serde(alias = "mime_type")]
    pub mime_type: Option<String>,
    #[serde(alias = "file_uri")]
    pub file_uri: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct GenerationConfig {
    #[serde(alias = "stop_sequences")]
    pub stop_sequences: Option<Vec<String>>,
    #[serde(alias = "response_mime_type")]
    pub response_mime_type: Option<String>,
    #[serde(alias = "response_schema")]
    pub response_schema: Option<Value>,
    #[serde(alias = "response_json_schema")]
    pub response_json_schema: Option<Value>,
    /// Enum values: strings in any case (the SDK passes them verbatim) or proto numbers.
    #[serde(alias = "response_modalities")]
    pub response_modalities: Option<Vec<Value>>,
    #[serde(alias = "candidate_count")]
    pub candidate_count: Option<i64>,
    #[serde(alias = "max_output_tokens")]
    pub max_output_tokens: Option<i64>,
    pub temperature: Option<f64>,
    #[serde(alias = "top_p")]
    pub top_p: Option<f64>,
    #[serde(alias = "top_k")]
    pub top_k: Option<f64>,
    pub seed: Option<i64>,
    #[serde(alias = "presence_penalty")]
    pub presence_penalty: Option<f64>,
    #[serde(alias = "frequency_penalty")]
    pub frequency_penalty: Option<f64>,
    #[serde(alias = "response_logprobs")]
    pub response_logprobs: Option<bool>,
    pub logprobs: Option<i64>,
    #[serde(alias = "enable_enhanced_civic_answers")]
    pub enable_enhanced_civic_answers: Option<bool>,
    #[serde(alias = "speech_config")]
    pub speech_config: Option<Value>,
    #[serde(alias = "thinking_config")]
    pub thinking_config: Option<ThinkingConfig>,
    #[serde(alias = "image_config")]
    pub image_config: Option<ImageConfig>,
    #[serde(alias = "media_resolution")]
    pub media_resolution: Option<Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ThinkingConfig {
    #[serde(alias = "include_thoughts")]
    pub include_thoughts: Option<bool>,
    #[serde(alias = "thinking_budget")]
    pub thinking_budget: Option<i64>,
    #[serde(alias = "thinking_level")]
    pub thinking_level: Option<Value>,
}

/// Only the Gemini API fields: Vertex's `personGeneration`, `outputMimeType`, … are unknown here,
/// which is exactly how the real service answers clients that send them by mistake.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ImageConfig {
    #[serde(alias = "aspect_ratio")]
    pub aspect_ratio: Option<String>,
    #[serde(alias = "image_size")]
    pub image_size: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SafetySetting {
    pub category: Option<Value>,
    pub threshold: Option<Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Tool {
    #[serde(alias = "function_declarations")]
    pub function_declarations: Option<Value>,
    #[serde(alias = "google_search_retrieval")]
    pub google_search_retrieval: Option<Value>,
    #[serde(alias = "code_execution")]
    pub code_execution: Option<Value>,
    #[serde(alias = "google_search")]
    pub google_search: Option<Value>,
    #[serde(alias = "url_context")]
    pub url_context: Option<Value>,
    #[serde(alias = "computer_use")]
    pub computer_use: Option<Value>,
    #[serde(alias = "file_search")]
    pub file_search: Option<Value>,
    #[serde(alias = "google_maps")]
    pub google_maps: Option<Value>,
}

/// Why a body could not be turned into a typed request, with the snake_case path Google reports.
#[derive(Debug, Clone, PartialEq)]
pub enum ParseError {
    /// `name` is spelled as the client sent it; `at` is the snake_case path of its parent.
    UnknownField { name: String, at: String },
    /// Wrong JSON type or similar; `at` is the snake_case path of the offending value.
    InvalidValue { at: String, detail: String },
}

/// Deserializes `value` strictly. With `lenient`, unknown fields are deleted and parsing retried,
/// so one set of types serves both modes.
pub fn parse<T: for<'de> Deserialize<'de>>(
    mut value: Value,
    lenient: bool,
) -> Result<T, ParseError> {
    // Each retry removes one key, so the loop is bounded by the number of keys in the body.
    loop {
        let err = match serde_path_to_error::deserialize::<_, T>(&value) {
            Ok(parsed) => return Ok(parsed),
            Err(err) => err,
        };
        let segments: Vec<Segment> = err.path().iter().cloned().collect();
        let message = err.inner().to_string();
        let Some(name) = unknown_field_name(&message) else {
            return Err(ParseError::InvalidValue {
                at: snake_path(&segments),
                detail: message,
            });
        };
        // The path ends with the unknown key itself; its parent is what Google names.
        let parent = match segments.last() {
            Some(Segment::Map { key }) if *key == name => &segments[..segments.len() - 1],
            _ => &segments[..],
        };
        if !lenient || !remove_key(&mut value, parent, &name) {
            return Err(ParseError::UnknownField {
                name,
                at: snake_path(parent),
            });
        }
    }
}

/// serde's wording is "unknown field `x`, expected one of …".
fn unknown_field_name(message: &str) -> Option<String> {
    let rest = message.strip_prefix("unknown field `")?;
    Some(rest[..rest.find('`')?].to_string())
}

fn remove_key(value: &mut Value, parent: &[Segment], name: &str) -> bool {
    let mut cursor = value;
    for segment in parent {
        let next = match segment {
            Segment::Map { key } => cursor.get_mut(key.as_str()),
            Segment::Seq { index } => cursor.get_mut(*index),
            _ => None,
        };
        match next {
            Some(next) => cursor = next,
            None => return false,
        }
    }
    cursor
        .as_object_mut()
        .and_then(|map| map.remove(name))
        .is_some()
}

/// Renders a path the way Google's error messages do: `contents[0].parts[1].inline_data`.
pub fn snake_path(segments: &[Segment]) -> String {
    let mut out = String::new();
    for segment in segments {
        match segment {
            Segment::Seq { index } => out.push_str(&format!("[{index}]")),
            Segment::Map { key } => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(&to_snake(key));
            }
            _ => {}
        }
    }
    out
}

pub fn to_snake(key: &str) -> String {
    let mut out = String::with_capacity(key.len() + 4);
    for ch in key.chars() {
        if ch.is_ascii_uppercase() {
            out.push('_');
            out.push(ch.to_ascii_lowercase());
        } else {
            out.push(ch);
        }
    }
    out
}

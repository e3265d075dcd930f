//! Google's `generateContent` wire format (docs/upstream.md). Private to the
//! Gemini provider: nothing outside `provider::gemini` sees these types.
//!
//! Requests are written in camelCase as Google documents; responses are read leniently
//! (camelCase or snake_case, unknown fields ignored, every count defaulting to 0 because
//! proto3 JSON omits zeros).

use serde::{Deserialize, Serialize};

// ---- request ---------------------------------------------------------------------------

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GenerateContentRequest<'a> {
    pub contents: Vec<Content<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub system_instruction: Option<Content<'a>>,
    pub generation_config: GenerationConfig<'a>,
    /// `flex`, `standard` or `priority`, lower case as google-genai sends it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_tier: Option<&'static str>,
}

#[derive(Serialize)]
pub struct Content<'a> {
    pub role: &'static str,
    pub parts: Vec<Part<'a>>,
}

#[derive(Serialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct Part<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inline_data: Option<Blob>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub thought: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thought_signature: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Blob {
    pub mime_type: &'static str,
    pub data: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GenerationConfig<'a> {
    pub response_modalities: Vec<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image_config: Option<ImageConfig<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thinking_config: Option<ThinkingConfig>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ThinkingConfig {
    /// `MINIMAL`, `MEDIUM` or `HIGH`: upper case, as google-genai sends its enum.
    pub thinking_level: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageConfig<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aspect_ratio: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image_size: Option<&'a str>,
}

// ---- response --------------------------------------------------------------------------

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct GenerateContentResponse {
    #[serde(default)]
    pub candidates: Vec<Candidate>,
    #[serde(default, alias = "prompt_feedback")]
    pub prompt_feedback: Option<PromptFeedback>,
    #[serde(default, alias = "usage_metadata")]
    pub usage_metadata: Option<UsageMetadata>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Candidate {
    #[serde(default)]
    pub content: Option<ResponseContent>,
    #[serde(default, alias = "finish_reason")]
    pub finish_reason: Option<String>,
    #[serde(default, alias = "finish_message")]
    pub finish_message: Option<String>,
}

#[derive(Deserialize)]
pub struct ResponseContent {
    #[serde(default)]
    pub parts: Vec<ResponsePart>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResponsePart {
    #[serde(default)]
    pub text: Option<String>,
    #[serde(default, alias = "inline_data")]
    pub inline_data: Option<ResponseBlob>,
    #[serde(default)]
    pub thought: bool,
    #[serde(default, alias = "thought_signature")]
    pub thought_signature: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResponseBlob {
    #[serde(default, alias = "mime_type")]
    pub mime_type: Option<String>,
    pub data: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PromptFeedback {
    #[serde(default, alias = "block_reason")]
    pub block_reason: Option<String>,
    #[serde(default, alias = "block_reason_message")]
    pub block_reason_message: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct UsageMetadata {
    #[serde(default, alias = "prompt_token_count")]
    pub prompt_token_count: u64,
    #[serde(default, alias = "candidates_token_count")]
    pub candidates_token_count: u64,
    #[serde(default, alias = "thoughts_token_count")]
    pub thoughts_token_count: u64,
    #[serde(default, alias = "candidates_tokens_details")]
    pub candidates_tokens_details: Vec<ModalityTokenCount>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ModalityTokenCount {
    #[serde(default)]
    pub modality: String,
    #[serde(default, alias = "token_count")]
    pub token_count: u64,
}

// ---- models.list ---------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListModelsResponse {
    #[serde(default)]
    pub models: Vec<ModelResource>,
    #[serde(default, alias = "next_page_token")]
    pub next_page_token: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ModelResource {
    pub name: String,
    #[serde(default, alias = "display_name")]
    pub display_name: Option<String>,
}

// ---- errors (google.rpc.Status) --------------------------------------------------------

#[derive(Deserialize)]
#[serde(untagged)]
pub enum ErrorBody {
    Envelope {
        error: GoogleError,
    },
    /// Some proxies wrap the envelope in a one-element array
    /// (docs/upstream.md#errors-and-retries).
    Wrapped([ErrorEnvelope; 1]),
}

#[derive(Deserialize)]
pub struct ErrorEnvelope {
    pub error: GoogleError,
}

#[derive(Deserialize)]
pub struct GoogleError {
    #[serde(default)]
    pub message: String,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub details: Vec<serde_json::Value>,
}

impl ErrorBody {
    pub fn into_error(self) -> GoogleError {
        match self {
            Self::Envelope { error } => error,
            Self::Wrapped([ErrorEnvelope { error }]) => error,
        }
    }
}

impl GoogleError {
    fn detail(&self, type_suffix: &str) -> Option<&serde_json::Value> {
        self.details.iter().find(|d| {
            d.get("@type")
                .and_then(|t| t.as_str())
                .is_some_and(|t| t.ends_with(type_suffix))
        })
    }

    /// `RetryInfo.retryDelay`, a protobuf Duration string such as `"36.406458091s"`.
    pub fn retry_delay(&self) -> Option<std::time::Duration> {
        let delay = self
            .detail("google.rpc.RetryInfo")?
            .get("retryDelay")?
            .as_str()?;
        let secs: f64 = delay.trim().strip_suffix('s')?.parse().ok()?;
        (secs.is_finite() && secs >= 0.0).then(|| std::time::Duration::from_secs_f64(secs))
    }

    /// `ErrorInfo.reason`, e.g. `API_KEY_INVALID`.
    pub fn reason(&self) -> Option<&str> {
        self.detail("google.rpc.ErrorInfo")?.get("reason")?.as_str()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_delay_reads_fractional_durations() {
        let body: ErrorBody = serde_json::from_str(
            r#"{"error":{"code":429,"message":"x","status":"RESOURCE_EXHAUSTED","details":[
                {"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"36.5s"}]}}"#,
        )
        .unwrap();
        let delay = body.into_error().retry_delay().unwrap();
        assert_eq!(delay.as_millis(), 36_500);
    }

    #[test]
    fn the_array_wrapped_envelope_is_understood() {
        let body: ErrorBody = serde_json::from_str(
            r#"[{"error":{"code":500,"message":"boom","status":"INTERNAL"}}]"#,
        )
        .unwrap();
        assert_eq!(body.into_error().message, "boom");
    }

    #[test]
    fn snake_case_responses_are_read() {
        let r: GenerateContentResponse = serde_json::from_str(
            r#"{"candidates":[{"content":{"parts":[{"inline_data":{"mime_type":"image/png","data":"AA=="}}]},"finish_reason":"STOP"}],
                "usage_metadata":{"prompt_token_count":3}}"#,
        )
        .unwrap();
        assert_eq!(r.candidates[0].finish_reason.as_deref(), Some("STOP"));
        assert!(
            r.candidates[0].content.as_ref().unwrap().parts[0]
                .inline_data
                .is_some()
        );
        assert_eq!(r.usage_metadata.unwrap().prompt_token_count, 3);
    }
}

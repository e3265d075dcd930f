//! Between the domain and the wire: building the request body, and turning every
//! response shape of docs/upstream.md#finish-and-block-reasons into a result or an
//! error of docs/api.md#errors — a refusal is never passed on as an empty success.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use bytes::Bytes;

use super::wire;
use crate::imaging::ImageFormat;
use crate::provider::{
    Generated, OutputImage, Part, PartData, ProviderError, ProviderRequest, Role, ServedAs,
    TokenUsage, Turn,
};

pub fn request_body(req: &ProviderRequest) -> serde_json::Result<Vec<u8>> {
    let contents = req.contents.iter().map(content).collect();
    let system_instruction = req.system_instruction.as_deref().map(|text| wire::Content {
        // The official SDK sends the system instruction with role "user"
        // (docs/upstream.md#request).
        role: "user",
        parts: vec![wire::Part {
            text: Some(text),
            ..Default::default()
        }],
    });
    let mut modalities = Vec::new();
    if req.modalities.text {
        modalities.push("TEXT");
    }
    if req.modalities.image {
        modalities.push("IMAGE");
    }
    let image_config =
        (req.aspect_ratio.is_some() || req.image_size.is_some()).then(|| wire::ImageConfig {
            aspect_ratio: req.aspect_ratio.as_ref().map(|a| a.as_str()),
            image_size: req.image_size.as_ref().map(|s| s.as_str()),
        });
    serde_json::to_vec(&wire::GenerateContentRequest {
        contents,
        system_instruction,
        generation_config: wire::GenerationConfig {
            response_modalities: modalities,
            temperature: req.temperature.map(|t| t.get()),
            seed: req.seed,
            image_config,
            thinking_config: req.routing.thinking_level.as_ref().map(|level| {
                wire::ThinkingConfig {
                    thinking_level: level.wire(),
                }
            }),
        },
        service_tier: req.routing.service_tier.map(|t| t.as_str()),
    })
}

fn content(turn: &Turn) -> wire::Content<'_> {
    wire::Content {
        role: match turn.role {
            Role::User => "user",
            Role::Model => "model",
        },
        parts: turn
            .parts
            .iter()
            .map(|part| {
                let mut wire_part = wire::Part {
                    thought: part.thought,
                    thought_signature: part.thought_signature.as_ref().map(|s| STANDARD.encode(s)),
                    ..Default::default()
                };
                match &part.data {
                    PartData::Text(t) => wire_part.text = Some(t),
                    PartData::Image { format, bytes } => {
                        wire_part.inline_data = Some(wire::Blob {
                            mime_type: format.mime(),
                            data: STANDARD.encode(bytes),
                        })
                    }
                }
                wire_part
            })
            .collect(),
    }
}

/// Decodes base64 in either alphabet, padded or not (Google accepts all;
/// docs/upstream.md#request).
/// Returns the bytes and whether the input was already canonical standard base64.
pub fn decode_base64(data: &str) -> Option<(Vec<u8>, bool)> {
    if let Ok(bytes) = STANDARD.decode(data) {
        return Some((bytes, true));
    }
    let normalised: String = data
        .trim_end_matches('=')
        .chars()
        .filter(|c| !c.is_ascii_whitespace())
        .map(|c| match c {
            '-' => '+',
            '_' => '/',
            c => c,
        })
        .collect();
    STANDARD_NO_PAD.decode(normalised).ok().map(|b| (b, false))
}

/// Finish reasons that mean the model refused on policy grounds
/// (docs/upstream.md#finish-and-block-reasons).
const BLOCKING_REASONS: &[&str] = &[
    "SAFETY",
    "RECITATION",
    "BLOCKLIST",
    "PROHIBITED_CONTENT",
    "SPII",
    "IMAGE_SAFETY",
    "IMAGE_PROHIBITED_CONTENT",
    "IMAGE_RECITATION",
];

fn bad(message: &str, cause: impl Into<String>) -> ProviderError {
    ProviderError::BadResponse {
        status: Some(200),
        message: message.into(),
        cause: cause.into(),
    }
}

/// Reads an answer of the model `served` names (priced as `served`).
pub fn interpret(body: &[u8], served: ServedAs) -> Result<Generated, ProviderError> {
    let response: wire::GenerateContentResponse = serde_json::from_slice(body).map_err(|e| {
        bad(
            "The upstream model returned an unreadable answer.",
            e.to_string(),
        )
    })?;
    let usage = response
        .usage_metadata
        .map(|u| TokenUsage {
            input: u.prompt_token_count,
            output: u.candidates_token_count,
            image_output: u
                .candidates_tokens_details
                .iter()
                .filter(|d| d.modality.eq_ignore_ascii_case("IMAGE"))
                .map(|d| d.token_count)
                .sum(),
            thoughts: u.thoughts_token_count,
        })
        .unwrap_or_default();
    let Some(candidate) = response.candidates.into_iter().next() else {
        return Err(
            match response
                .prompt_feedback
                .and_then(|f| f.block_reason.map(|r| (r, f.block_reason_message)))
            {
                Some((reason, message)) => ProviderError::Blocked {
                    reason,
                    prompt_blocked: true,
                    message,
                    usage,
                },
                None => bad(
                    "The upstream model returned no result.",
                    "response had neither candidates nor promptFeedback.blockReason",
                ),
            },
        );
    };
    let finish_reason = candidate
        .finish_reason
        .unwrap_or_else(|| "FINISH_REASON_UNSPECIFIED".into());
    if BLOCKING_REASONS.contains(&finish_reason.as_str()) {
        return Err(ProviderError::Blocked {
            reason: finish_reason,
            prompt_blocked: false,
            message: candidate.finish_message,
            usage,
        });
    }

    let mut turn = Turn {
        role: Role::Model,
        parts: Vec::new(),
    };
    let mut images = Vec::new();
    let mut text = String::new();
    for part in candidate.content.map(|c| c.parts).unwrap_or_default() {
        let signature = match &part.thought_signature {
            Some(s) => Some(Bytes::from(
                decode_base64(s)
                    .ok_or_else(|| {
                        bad(
                            "The upstream model returned an unreadable answer.",
                            "undecodable thoughtSignature",
                        )
                    })?
                    .0,
            )),
            None => None,
        };
        let data = if let Some(blob) = part.inline_data {
            let (bytes, canonical) = decode_base64(&blob.data).ok_or_else(|| {
                bad(
                    "The upstream model returned an unreadable image.",
                    "undecodable inlineData",
                )
            })?;
            // Trust the bytes, not the declared type: they have been seen to
            // disagree (docs/upstream.md#response).
            let format = ImageFormat::sniff(&bytes).ok_or_else(|| {
                bad(
                    "The upstream model returned an image in an unrecognised format.",
                    format!("declared {:?}, {} bytes", blob.mime_type, bytes.len()),
                )
            })?;
            let bytes = Bytes::from(bytes);
            if !part.thought {
                images.push(OutputImage {
                    format,
                    bytes: bytes.clone(),
                    base64: canonical.then_some(blob.data),
                });
            }
            PartData::Image { format, bytes }
        } else {
            let t = part.text.unwrap_or_default();
            if !part.thought && !t.is_empty() {
                if !text.is_empty() {
                    text.push('\n');
                }
                text.push_str(&t);
            }
            PartData::Text(t)
        };
        turn.parts.push(Part {
            data,
            thought: part.thought,
            thought_signature: signature,
        });
    }
    let text = (!text.is_empty()).then_some(text);
    if images.is_empty() && finish_reason != "STOP" {
        return Err(ProviderError::NoImage {
            finish_reason,
            text,
            usage,
        });
    }
    Ok(Generated {
        model: served.model.entry.upstream_id.clone(),
        served,
        images,
        text,
        finish_reason,
        usage,
        model_turn: turn,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn served() -> ServedAs {
        ServedAs {
            model: crate::models::ModelTable::embedded()
                .resolve("gemini-3-pro-image")
                .unwrap(),
            service_tier: None,
        }
    }

    #[test]
    fn both_base64_alphabets_decode_to_the_same_bytes() {
        let bytes = [0xfbu8, 0xff, 0xbf, 0x00, 0x01];
        let standard = STANDARD.encode(bytes);
        let urlsafe = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
        assert_ne!(standard, urlsafe);
        assert_eq!(decode_base64(&standard).unwrap(), (bytes.to_vec(), true));
        assert_eq!(decode_base64(&urlsafe).unwrap(), (bytes.to_vec(), false));
        assert!(decode_base64("not base64!").is_none());
    }

    #[test]
    fn a_role_only_content_with_image_safety_is_blocked_not_empty() {
        let body = br#"{"candidates":[{"content":{"role":"model"},"finishReason":"IMAGE_SAFETY","index":0,"finishMessage":"Unable to show"}]}"#;
        match interpret(body, served()) {
            Err(ProviderError::Blocked {
                reason,
                prompt_blocked,
                message,
                ..
            }) => {
                assert_eq!(reason, "IMAGE_SAFETY");
                assert!(!prompt_blocked);
                assert_eq!(message.as_deref(), Some("Unable to show"));
            }
            other => panic!("expected Blocked, got {other:?}"),
        }
    }

    #[test]
    fn thought_parts_are_kept_in_history_but_not_returned() {
        let png =
            crate::imaging::encode(&image::DynamicImage::new_rgb8(2, 2), ImageFormat::Png).unwrap();
        let data = STANDARD.encode(&png);
        let body = format!(
            r#"{{"candidates":[{{"content":{{"role":"model","parts":[
                {{"text":"thinking","thought":true}},
                {{"inlineData":{{"mimeType":"image/png","data":"{data}"}},"thought":true}},
                {{"text":"Here it is","thoughtSignature":"AAEC"}},
                {{"inlineData":{{"mimeType":"image/jpeg","data":"{data}"}},"thoughtSignature":"AwQF"}}]}},"finishReason":"STOP"}}]}}"#
        );
        let g = interpret(body.as_bytes(), served()).unwrap();
        assert_eq!(
            g.images.len(),
            1,
            "the interim thought image is not a result"
        );
        assert_eq!(
            g.images[0].format,
            ImageFormat::Png,
            "type sniffed from bytes"
        );
        assert_eq!(g.text.as_deref(), Some("Here it is"));
        assert_eq!(g.model_turn.parts.len(), 4);
        assert_eq!(
            g.model_turn.parts[3].thought_signature.as_deref(),
            Some(&[3u8, 4, 5][..])
        );
    }
}

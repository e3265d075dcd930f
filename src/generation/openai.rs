//! OpenAI's image parameters mapped onto imagegate's (documented in docs/openai-compat.md):
//! `size` → nearest `aspect_ratio` and `image_size` of the model; `n` → that many upstream
//! calls; `quality` `hd`/`high` → one size bucket up when `size` is `auto`; `style` → a
//! sentence in the prompt; OpenAI model names → the default model.

use serde::{Deserialize, Serialize};

use crate::generation::GenerationError;
use crate::generation::params::{Options, Prompt, RawOptions, RawRouting, nearest_shape};
use crate::generation::work::WorkEnv;

/// OpenAI's own model names; requests naming them are served by the default model.
const OPENAI_MODELS: &[&str] = &[
    "dall-e-2",
    "dall-e-3",
    "gpt-image-1",
    "gpt-image-1-mini",
    "gpt-image-1.5",
];
pub const MAX_N: i64 = 10;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    B64,
    Url,
}

/// The fields both endpoints share, as sent.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OpenAiFields {
    pub prompt: Option<String>,
    pub model: Option<String>,
    pub n: Option<i64>,
    pub size: Option<String>,
    pub response_format: Option<String>,
    pub quality: Option<String>,
    pub style: Option<String>,
    /// `service_tier`, `thinking_level`, `fallback` (through the client's `extra_body`);
    /// absent from work stored before they existed.
    #[serde(default)]
    pub routing: RawRouting,
}

pub struct OpenAiPlan {
    pub prompt: Prompt,
    pub n: usize,
    pub format: Format,
    pub options: Options,
}

/// The upstream calls a request asks for (`n`), for the per-minute budget.
pub fn count(fields: &OpenAiFields) -> u32 {
    fields
        .n
        .filter(|n| (1..=MAX_N).contains(n))
        .map_or(1, |n| n as u32)
}

/// One image (with an optional mask) or two to three images without a mask.
pub fn check_edit_files(images: usize, masks: usize) -> Result<(), GenerationError> {
    if images == 0 {
        return Err(
            GenerationError::invalid("image", "The image is required.").detail("reason", "missing")
        );
    }
    if images > 3 || masks > 1 || (images > 1 && masks > 0) {
        return Err(GenerationError::invalid(
            "image",
            "Send one image (with an optional mask) or two to three images without a mask.",
        )
        .detail("count", images));
    }
    Ok(())
}

pub fn plan(env: &WorkEnv, fields: OpenAiFields) -> Result<OpenAiPlan, GenerationError> {
    let OpenAiFields {
        prompt,
        model,
        n,
        size,
        response_format,
        quality,
        style,
        routing,
    } = fields;
    let style_sentence = match style.as_deref().map(str::trim) {
        None | Some("") => None,
        Some("vivid") => Some("Render it vivid: hyper-real, dramatic, saturated."),
        Some("natural") => Some("Render it natural: true-to-life, not hyper-real."),
        Some(other) => {
            return Err(
                GenerationError::invalid("style", format!("Unknown style '{other}'."))
                    .detail("allowed", vec!["vivid", "natural"]),
            );
        }
    };
    let prompt = Prompt::parse("prompt", prompt, env.max_prompt_chars)?;
    let prompt = match style_sentence {
        Some(s) => Prompt::parse(
            "prompt",
            Some(format!("{}\n\n{s}", prompt.as_str())),
            env.max_prompt_chars + 100,
        )?,
        None => prompt,
    };
    let n = n.unwrap_or(1);
    if !(1..=MAX_N).contains(&n) {
        return Err(
            GenerationError::invalid("n", format!("n must be between 1 and {MAX_N}."))
                .detail("min", 1)
                .detail("max", MAX_N),
        );
    }
    let format = match response_format.as_deref() {
        None | Some("b64_json") => Format::B64,
        Some("url") => Format::Url,
        Some(other) => {
            return Err(GenerationError::invalid(
                "response_format",
                format!("Unknown response_format '{other}'."),
            )
            .detail("allowed", vec!["b64_json", "url"]));
        }
    };
    let model = model.filter(|m| !OPENAI_MODELS.contains(&m.as_str()));
    let mut options = RawOptions {
        model,
        routing,
        ..RawOptions::default()
    }
    .parse(&env.models, &env.default_model)?;
    let quality = quality.as_deref().map(str::trim);
    if !matches!(
        quality,
        None | Some("auto" | "standard" | "hd" | "low" | "medium" | "high")
    ) {
        return Err(
            GenerationError::invalid("quality", "Unknown quality.").detail(
                "allowed",
                vec!["auto", "standard", "hd", "low", "medium", "high"],
            ),
        );
    }
    let pixels = match size.as_deref().map(str::trim) {
        None | Some("auto") => match quality {
            Some("hd" | "high") => Some((2048, 2048)),
            Some("low") => Some((512, 512)),
            _ => None,
        },
        Some(s) => Some(
            s.split_once('x')
                .and_then(|(w, h)| Some((w.parse::<u32>().ok()?, h.parse::<u32>().ok()?)))
                .filter(|(w, h)| *w > 0 && *h > 0 && *w <= 16_384 && *h <= 16_384)
                .ok_or_else(|| {
                    GenerationError::invalid(
                        "size",
                        "size must be 'auto' or WIDTHxHEIGHT, e.g. 1024x1024.",
                    )
                })?,
        ),
    };
    if let Some((w, h)) = pixels {
        let (ratio, image_size) = nearest_shape(w, h, &options.model);
        options.aspect_ratio = ratio;
        options.image_size = image_size;
    }
    Ok(OpenAiPlan {
        prompt,
        n: n as usize,
        format,
        options,
    })
}

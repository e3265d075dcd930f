//! The model catalogue (docs/upstream.md#models-and-limits): which ids answer, what each
//! accepts, what it costs in tokens and how large its images are.

use serde_json::{Value, json};

/// Models that answer `generateContent`. Every one is a Gemini 3 model, so all of them return
/// JPEG images and thought signatures. `gemini-3.1-flash-image` was deprecated on 2026-10-06;
/// tests retire it (`FakeGemini::retire`) to see it shut down.
pub const ACTIVE_MODELS: [&str; 4] = [
    "gemini-nano-banana-2.1",
    "gemini-3-pro-image",
    "gemini-3.1-flash-image",
    "gemini-3.1-flash-lite-image",
];

/// Shut-down ids; like any unknown id they answer 404 NOT_FOUND.
pub const RETIRED_MODELS: [&str; 5] = [
    "gemini-2.5-flash-image-preview",
    "gemini-2.5-flash-image",
    "gemini-3-pro-image-preview",
    "gemini-3.1-flash-image-preview",
    "gemini-2.0-flash-preview-image-generation",
];

const RATIOS_10: &[&str] = &[
    "1:1", "2:3", "3:2", "3:4", "4:3", "4:5", "5:4", "9:16", "16:9", "21:9",
];
const RATIOS_14: &[&str] = &[
    "1:1", "2:3", "3:2", "3:4", "4:3", "4:5", "5:4", "9:16", "16:9", "21:9", "1:4", "4:1", "1:8",
    "8:1",
];

pub struct ModelSpec {
    pub id: &'static str,
    display_name: &'static str,
    pub ratios: &'static [&'static str],
    /// `(imageSize, output tokens per image)`; the wire value needs an uppercase K.
    pub sizes: &'static [(&'static str, u32)],
    /// Tokens charged per input image at default media resolution.
    pub input_image_tokens: u32,
    input_token_limit: u32,
    output_token_limit: u32,
    /// `thinkingLevel` values the model takes; empty: it takes none (Pro always thinks).
    pub thinking_levels: &'static [&'static str],
}

const SPECS: [ModelSpec; 4] = [
    // Nano Banana 2.1 (GA 2026-10-06): 1K/2K/4K only, `512` refused; per-size image tokens are
    // not published, so 3.1 Flash's are used (docs/upstream.md#models-and-limits).
    ModelSpec {
        id: "gemini-nano-banana-2.1",
        display_name: "Nano Banana 2.1",
        ratios: RATIOS_14,
        sizes: &[("1K", 1120), ("2K", 1680), ("4K", 2520)],
        input_image_tokens: 1120,
        input_token_limit: 131_072,
        output_token_limit: 32_768,
        thinking_levels: &["MINIMAL", "MEDIUM", "HIGH"],
    },
    ModelSpec {
        id: "gemini-3-pro-image",
        display_name: "Nano Banana Pro",
        ratios: RATIOS_10,
        sizes: &[("1K", 1120), ("2K", 1120), ("4K", 2000)],
        input_image_tokens: 560,
        input_token_limit: 65_536,
        output_token_limit: 32_768,
        thinking_levels: &[],
    },
    ModelSpec {
        id: "gemini-3.1-flash-image",
        display_name: "Nano Banana 2",
        ratios: RATIOS_14,
        sizes: &[("512", 747), ("1K", 1120), ("2K", 1680), ("4K", 2520)],
        input_image_tokens: 1120,
        input_token_limit: 131_072,
        output_token_limit: 32_768,
        thinking_levels: &["MINIMAL", "HIGH"],
    },
    // The Lite model card lists 10 ratios but its text says 14: accept 14
    // (docs/upstream.md#models-and-limits).
    ModelSpec {
        id: "gemini-3.1-flash-lite-image",
        display_name: "Nano Banana 2 Lite",
        ratios: RATIOS_14,
        sizes: &[("1K", 1120)],
        input_image_tokens: 1120,
        input_token_limit: 65_536,
        output_token_limit: 4_096,
        thinking_levels: &["MINIMAL", "HIGH"],
    },
];

pub fn spec(model: &str) -> Option<&'static ModelSpec> {
    SPECS.iter().find(|spec| spec.id == model)
}

pub fn specs() -> impl Iterator<Item = &'static ModelSpec> {
    SPECS.iter()
}

impl ModelSpec {
    pub fn output_tokens(&self, size: &str) -> u32 {
        self.sizes
            .iter()
            .find(|(name, _)| *name == size)
            .map_or(1120, |(_, tokens)| *tokens)
    }

    /// Closest supported ratio to `width:height`, used when an edit request names no ratio
    /// (the real models keep the input image's shape).
    pub fn closest_ratio(&self, width: u32, height: u32) -> &'static str {
        let target = (f64::from(width) / f64::from(height.max(1))).ln();
        let distance = |ratio: &&str| {
            let (w, h) = grid_1k(ratio);
            ((f64::from(w) / f64::from(h)).ln() - target).abs()
        };
        self.ratios
            .iter()
            .min_by(|a, b| distance(a).total_cmp(&distance(b)))
            .copied()
            .unwrap_or("1:1")
    }

    /// The `Model` resource of `GET /{ver}/models/{id}`, listed under `id` (a model released
    /// with `FakeGemini::release` is served with the spec of an existing one).
    pub fn resource_as(&self, id: &str) -> Value {
        json!({
            "name": format!("models/{id}"),
            "baseModelId": id,
            "version": "3.0",
            "displayName": self.display_name,
            "description": format!("{} image generation and editing", self.display_name),
            "inputTokenLimit": self.input_token_limit,
            "outputTokenLimit": self.output_token_limit,
            "supportedGenerationMethods": ["generateContent", "countTokens", "batchGenerateContent"],
            "temperature": 1,
            "topP": 0.95,
            "topK": 64,
            "maxTemperature": 2,
            "thinking": true,
        })
    }
}

/// Gemini 3 grid at 1K (docs/upstream.md#models-and-limits); 512 is exactly half, 2K and
/// 4K exactly double and quadruple.
fn grid_1k(ratio: &str) -> (u32, u32) {
    match ratio {
        "2:3" => (848, 1264),
        "3:2" => (1264, 848),
        "3:4" => (896, 1200),
        "4:3" => (1200, 896),
        "4:5" => (928, 1152),
        "5:4" => (1152, 928),
        "9:16" => (768, 1376),
        "16:9" => (1376, 768),
        "21:9" => (1584, 672),
        "1:4" => (512, 2048),
        "4:1" => (2048, 512),
        "1:8" => (384, 3072),
        "8:1" => (3072, 384),
        _ => (1024, 1024),
    }
}

/// Output pixel size for a validated ratio and size.
pub fn dimensions(ratio: &str, size: &str) -> (u32, u32) {
    let (w, h) = grid_1k(ratio);
    match size {
        "512" => (w / 2, h / 2),
        "2K" => (w * 2, h * 2),
        "4K" => (w * 4, h * 4),
        _ => (w, h),
    }
}

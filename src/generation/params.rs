//! Parsed request values. Each type is built only through `parse`, which produces the
//! contract's error `details` on failure, so later code never re-checks a range.

use serde::{Deserialize, Serialize};

use crate::generation::GenerationError;
use crate::models::{ModelTable, ResolvedModel, ServiceTier};
use crate::provider::Routing;

#[derive(Debug, Clone, PartialEq)]
pub struct Prompt(String);

impl Prompt {
    pub fn parse(
        field: &str,
        value: Option<String>,
        max_chars: usize,
    ) -> Result<Self, GenerationError> {
        let value = value.ok_or_else(|| {
            GenerationError::invalid(field, format!("The {field} is required."))
                .detail("reason", "missing")
        })?;
        if value.trim().is_empty() {
            return Err(
                GenerationError::invalid(field, format!("The {field} must not be empty."))
                    .detail("reason", "empty"),
            );
        }
        let length = value.chars().count();
        if length > max_chars {
            return Err(GenerationError::invalid(
                field,
                format!("The {field} is too long. Maximum length is {max_chars} characters."),
            )
            .detail("max_length", max_chars)
            .detail("current_length", length));
        }
        Ok(Self(value))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn in_range(field: &str, value: f64, min: f64, max: f64) -> Result<f64, GenerationError> {
    if value.is_finite() && (min..=max).contains(&value) {
        Ok(value)
    } else {
        Err(GenerationError::invalid(
            field,
            format!("The {field} must be between {min} and {max}."),
        )
        .detail("min", min)
        .detail("max", max)
        .detail(
            "value",
            if value.is_finite() {
                value.into()
            } else {
                serde_json::Value::Null
            },
        ))
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Temperature(f64);

impl Temperature {
    pub fn parse(value: f64) -> Result<Self, GenerationError> {
        in_range("temperature", value, 0.0, 2.0).map(Self)
    }
    pub fn get(self) -> f64 {
        self.0
    }
}

/// A 0.0–1.0 (or narrower) strength such as `edit_strength` or `style_strength`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Strength(f64);

impl Strength {
    pub fn parse(field: &str, value: f64, min: f64) -> Result<Self, GenerationError> {
        in_range(field, value, min, 1.0).map(Self)
    }
    pub fn get(self) -> f64 {
        self.0
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Modalities {
    pub text: bool,
    pub image: bool,
}

impl Default for Modalities {
    fn default() -> Self {
        Self {
            text: true,
            image: true,
        }
    }
}

impl Modalities {
    pub fn parse(values: &[String]) -> Result<Self, GenerationError> {
        let field = "response_modalities";
        let mut out = Self {
            text: false,
            image: false,
        };
        for v in values {
            match v.trim().to_ascii_lowercase().as_str() {
                "text" => out.text = true,
                "image" => out.image = true,
                _ => {
                    return Err(GenerationError::invalid(
                        field,
                        format!("Unknown response modality '{v}'. Use \"Text\" and/or \"Image\"."),
                    )
                    .detail("allowed", vec!["Text", "Image"]));
                }
            }
        }
        if !out.text && !out.image {
            return Err(GenerationError::invalid(
                field,
                "At least one response modality is required.",
            )
            .detail("allowed", vec!["Text", "Image"]));
        }
        Ok(out)
    }

    /// As [`Modalities::parse`], for endpoints that answer with images (`images[0]` in
    /// the guide's samples): a text-only answer would be an empty 200, so it is refused.
    pub fn parse_for_images(values: &[String]) -> Result<Self, GenerationError> {
        let field = "response_modalities";
        let out = Self::parse(values)?;
        if !out.image {
            return Err(GenerationError::invalid(
                field,
                "This endpoint generates images: response_modalities must include \"Image\" \
                 (for example [\"Text\", \"Image\"] or [\"Image\"]).",
            )
            .detail("allowed", vec!["Text", "Image"])
            .detail("required", "Image"));
        }
        Ok(out)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AspectRatio(String);

impl AspectRatio {
    pub fn parse(value: &str, model: &ResolvedModel) -> Result<Self, GenerationError> {
        let v = value.trim();
        if model.entry.aspect_ratios.iter().any(|r| r == v) {
            Ok(Self(v.to_owned()))
        } else {
            Err(GenerationError::invalid(
                "aspect_ratio",
                format!(
                    "Aspect ratio '{value}' is not supported by {}.",
                    model.entry.name
                ),
            )
            .detail("allowed", model.entry.aspect_ratios.clone()))
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
    /// (width, height) as numbers, e.g. (16, 9).
    pub fn parts(&self) -> (u32, u32) {
        let mut it = self
            .0
            .split(':')
            .map(|p| p.parse::<u32>().unwrap_or(1).max(1));
        (it.next().unwrap_or(1), it.next().unwrap_or(1))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageSize(String);

impl ImageSize {
    pub fn parse(value: &str, model: &ResolvedModel) -> Result<Self, GenerationError> {
        // Google insists on an uppercase K ("1k" is rejected upstream); we normalise.
        let v = value.trim().to_ascii_uppercase();
        if model.entry.image_sizes.contains(&v) {
            Ok(Self(v))
        } else {
            Err(GenerationError::invalid(
                "image_size",
                format!(
                    "Image size '{value}' is not supported by {}.",
                    model.entry.name
                ),
            )
            .detail("allowed", model.entry.image_sizes.clone()))
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Google's `thinkingLevel`, for the models that take one (their table entry lists
/// which levels).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThinkingLevel(&'static str);

impl ThinkingLevel {
    pub fn parse(value: &str, model: &ResolvedModel) -> Result<Self, GenerationError> {
        let v = value.trim().to_ascii_lowercase();
        let allowed = &model.entry.thinking_levels;
        match crate::models::tiers::THINKING_LEVELS
            .iter()
            .find(|l| **l == v && allowed.iter().any(|a| a == *l))
        {
            Some(level) => Ok(Self(level)),
            None if allowed.is_empty() => Err(GenerationError::invalid(
                "thinking_level",
                format!("{} takes no thinking level.", model.entry.name),
            )
            .detail("allowed", allowed.clone())),
            None => Err(GenerationError::invalid(
                "thinking_level",
                format!(
                    "Thinking level '{}' is not supported by {}.",
                    value.chars().take(40).collect::<String>(),
                    model.entry.name
                ),
            )
            .detail("allowed", allowed.clone())),
        }
    }
    /// Lower case, as the API takes it.
    pub fn as_str(&self) -> &'static str {
        self.0
    }
    /// Upper case, as Google's enum is written on the wire.
    pub fn wire(&self) -> &'static str {
        match self.0 {
            "minimal" => "MINIMAL",
            "medium" => "MEDIUM",
            _ => "HIGH",
        }
    }
}

/// Options every generation endpoint shares, as sent (JSON or multipart); stored as is
/// in a unit of work and parsed into [`Options`] when it is planned.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RawOptions {
    pub model: Option<String>,
    pub response_modalities: Option<Vec<String>>,
    pub temperature: Option<f64>,
    pub aspect_ratio: Option<String>,
    pub image_size: Option<String>,
    pub seed: Option<i64>,
    /// `service_tier`, `thinking_level` and `fallback`; absent from work stored before
    /// they existed.
    #[serde(default)]
    pub routing: RawRouting,
}

/// The routing options as sent; every generation body carries them as its own fields.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RawRouting {
    pub service_tier: Option<String>,
    pub thinking_level: Option<String>,
    pub fallback: Option<bool>,
}

impl RawRouting {
    /// Form field names, for multipart endpoints' allow-lists.
    pub const FIELDS: [&'static str; 3] = ["service_tier", "thinking_level", "fallback"];

    pub fn parse(&self, model: &ResolvedModel) -> Result<Routing, GenerationError> {
        Ok(Routing {
            service_tier: self
                .service_tier
                .as_deref()
                .map(ServiceTier::parse)
                .transpose()?,
            thinking_level: self
                .thinking_level
                .as_deref()
                .map(|v| ThinkingLevel::parse(v, model))
                .transpose()?,
            fallback: self.fallback,
        })
    }
}

#[derive(Debug, Clone)]
pub struct Options {
    pub model: ResolvedModel,
    pub modalities: Modalities,
    pub temperature: Option<Temperature>,
    pub aspect_ratio: Option<AspectRatio>,
    pub image_size: Option<ImageSize>,
    pub seed: Option<i32>,
    pub routing: Routing,
}

impl RawOptions {
    pub fn parse(
        self,
        models: &ModelTable,
        default_model: &str,
    ) -> Result<Options, GenerationError> {
        let modalities = match &self.response_modalities {
            Some(v) => Modalities::parse_for_images(v)?,
            None => Modalities::default(),
        };
        self.parse_with(models, default_model, modalities)
    }

    /// For Google's native surface, where a text-only answer is a valid answer.
    pub fn parse_native(
        self,
        models: &ModelTable,
        default_model: &str,
    ) -> Result<Options, GenerationError> {
        let modalities = match &self.response_modalities {
            Some(v) => Modalities::parse(v)?,
            None => Modalities::default(),
        };
        self.parse_with(models, default_model, modalities)
    }

    fn parse_with(
        self,
        models: &ModelTable,
        default_model: &str,
        modalities: Modalities,
    ) -> Result<Options, GenerationError> {
        let model = models.resolve(self.model.as_deref().unwrap_or(default_model))?;
        let seed = self
            .seed
            .map(|s| {
                i32::try_from(s).map_err(|_| {
                    GenerationError::invalid(
                        "seed",
                        "The seed must fit in a signed 32-bit integer.",
                    )
                    .detail("min", i32::MIN)
                    .detail("max", i32::MAX)
                })
            })
            .transpose()?;
        Ok(Options {
            routing: self.routing.parse(&model)?,
            temperature: self.temperature.map(Temperature::parse).transpose()?,
            aspect_ratio: self
                .aspect_ratio
                .as_deref()
                .map(|v| AspectRatio::parse(v, &model))
                .transpose()?,
            image_size: self
                .image_size
                .as_deref()
                .map(|v| ImageSize::parse(v, &model))
                .transpose()?,
            model,
            modalities,
            seed,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prompt_over_2000_characters_is_rejected_with_details() {
        let err = Prompt::parse("prompt", Some("a".repeat(2150)), 2000).unwrap_err();
        assert_eq!(
            err.to_string(),
            "The prompt is too long. Maximum length is 2000 characters."
        );
        assert_eq!(err.details()["field"], "prompt");
        assert_eq!(err.details()["max_length"], 2000);
        assert_eq!(err.details()["current_length"], 2150);
    }

    #[test]
    fn prompt_length_counts_characters_not_bytes() {
        assert!(Prompt::parse("prompt", Some("é".repeat(2000)), 2000).is_ok());
    }

    #[test]
    fn temperature_outside_zero_to_two_is_rejected() {
        assert!(Temperature::parse(2.0).is_ok());
        assert!(Temperature::parse(2.01).is_err());
        assert!(Temperature::parse(f64::NAN).is_err());
    }

    #[test]
    fn modalities_are_case_insensitive() {
        let m = Modalities::parse(&["Text".into(), "IMAGE".into()]).unwrap();
        assert!(m.text && m.image);
        assert!(Modalities::parse(&["audio".into()]).is_err());
        assert!(Modalities::parse(&[]).is_err());
        assert!(Modalities::parse(&["Text".into()]).is_ok());
        assert!(
            Modalities::parse_for_images(&["Text".into()]).is_err(),
            "image endpoints never answer without an image"
        );
    }

    #[test]
    fn aspect_ratio_and_size_are_checked_against_the_model() {
        let models = ModelTable::embedded();
        let lite = models.resolve("gemini-3.1-flash-lite-image").unwrap();
        assert!(AspectRatio::parse("16:9", &lite).is_ok());
        assert!(AspectRatio::parse("8:1", &lite).is_err());
        assert_eq!(ImageSize::parse("1k", &lite).unwrap().as_str(), "1K");
        assert!(ImageSize::parse("4K", &lite).is_err());
    }

    #[test]
    fn thinking_levels_are_checked_against_the_model() {
        let models = ModelTable::embedded();
        let banana = models.resolve("gemini-nano-banana-2.1").unwrap();
        assert_eq!(
            ThinkingLevel::parse("Medium", &banana).unwrap().wire(),
            "MEDIUM"
        );
        let flash = models.resolve("gemini-3.1-flash-image").unwrap();
        assert!(ThinkingLevel::parse("medium", &flash).is_err());
        let pro = models.resolve("gemini-3-pro-image").unwrap();
        let err = ThinkingLevel::parse("high", &pro).unwrap_err();
        assert_eq!(err.details()["field"], "thinking_level");
        assert!(ImageSize::parse("512", &banana).is_err(), "2.1 has no 512");
    }
}

/// The model's aspect ratio nearest to `width:height` (compared as log ratios) and the
/// size bucket for the long side — how a pixel size such as OpenAI's `size` maps onto
/// Gemini's `aspectRatio` and `imageSize`.
pub fn nearest_shape(
    width: u32,
    height: u32,
    model: &ResolvedModel,
) -> (Option<AspectRatio>, Option<ImageSize>) {
    let target = (f64::from(width.max(1)) / f64::from(height.max(1))).ln();
    let ratio = model
        .entry
        .aspect_ratios
        .iter()
        .filter_map(|r| {
            let (w, h) = r.split_once(':')?;
            let value = (w.parse::<f64>().ok()? / h.parse::<f64>().ok()?).ln();
            Some((r, (value - target).abs()))
        })
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(r, _)| AspectRatio(r.clone()));
    const BUCKETS: [(u32, &str); 4] = [(640, "512"), (1536, "1K"), (3072, "2K"), (u32::MAX, "4K")];
    let long = width.max(height);
    let wanted = BUCKETS
        .iter()
        .position(|(limit, _)| long <= *limit)
        .unwrap_or(3);
    let sizes = &model.entry.image_sizes;
    // The wanted bucket if the model has it, else the nearest one it has.
    let size = (0..BUCKETS.len())
        .flat_map(|d| [wanted.checked_sub(d), Some(wanted + d)])
        .flatten()
        .filter_map(|i| BUCKETS.get(i))
        .find(|(_, name)| sizes.iter().any(|s| s == name))
        .map(|(_, name)| ImageSize((*name).to_owned()));
    (ratio, size)
}

#[cfg(test)]
mod shape_tests {
    use super::*;

    #[test]
    fn pixel_sizes_map_to_the_nearest_ratio_and_size() {
        let models = ModelTable::embedded();
        let flash = models.resolve("gemini-3.1-flash-image").unwrap();
        let (r, s) = nearest_shape(1024, 1024, &flash);
        assert_eq!((r.unwrap().as_str(), s.unwrap().as_str()), ("1:1", "1K"));
        let (r, s) = nearest_shape(1792, 1024, &flash);
        assert_eq!((r.unwrap().as_str(), s.unwrap().as_str()), ("16:9", "2K"));
        let (r, s) = nearest_shape(256, 256, &flash);
        assert_eq!((r.unwrap().as_str(), s.unwrap().as_str()), ("1:1", "512"));
        let lite = models.resolve("gemini-3.1-flash-lite-image").unwrap();
        let (_, s) = nearest_shape(4096, 4096, &lite);
        assert_eq!(s.unwrap().as_str(), "1K", "the lite model only has 1K");
    }
}

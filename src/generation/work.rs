//! Units of work: what a generation request asks for, as one serialisable value.
//!
//! Every generation surface turns its body into a [`Work`] (the fields as sent, plus
//! references to the uploaded images) and checks it with [`Work::plan`] before it answers
//! anything. The synchronous path then runs the plan at once; `"async": true` stores the
//! `Work` (uploads in the blob store) and a worker plans and runs the very same value
//! later. Planning is pure and cheap (no image is decoded), so doing it twice costs
//! nothing and the same input is refused with the same error either way.

use serde::{Deserialize, Serialize};

use crate::generation::GenerationError;
use crate::generation::canvas::{Directions, ExtensionRatio};
use crate::generation::openai::{self, OpenAiFields, OpenAiPlan};
use crate::generation::params::{Options, Prompt, RawOptions, RawRouting, Strength};
use crate::generation::quality_check::QualityCheck;
use crate::generation::story::{self, StoryRequest};
use crate::generation::styles::Style;
use crate::generation::{prompts, requests};
use crate::imaging::IntakeLimits;
use crate::models::{ModelTable, ServiceTier};
use crate::provider::ServedAs;

/// The stored form's version; a worker refuses (fails) a unit of a version it does not know.
pub const WORK_VERSION: u32 = 1;
/// The `content_type` a stored unit of work is recorded under.
pub const WORK_CONTENT_TYPE: &str = "application/vnd.imagegate.work+json; version=1";

/// An uploaded image: where its bytes are, and the form field it came in (for errors).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageRef {
    pub key: String,
    pub field: String,
    #[serde(default)]
    pub role: ImageRole,
}

/// How an upload is prepared before it is used.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ImageRole {
    #[default]
    Input,
    /// An OpenAI mask (transparent = change), converted to imagegate's (white = change).
    OpenAiMask,
}

/// `include_quality` / `min_quality_score` as sent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct QualityAsk {
    pub include_quality: Option<bool>,
    pub min_quality_score: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Work {
    Generate {
        prompt: Option<String>,
        options: RawOptions,
        quality: QualityAsk,
    },
    Edit {
        prompt: Option<String>,
        edit_strength: Option<f64>,
        preserve_subject: Option<bool>,
        options: RawOptions,
        quality: QualityAsk,
        images: Vec<ImageRef>,
    },
    Compose {
        prompt: Option<String>,
        composition_style: Option<String>,
        options: RawOptions,
        quality: QualityAsk,
        images: Vec<ImageRef>,
    },
    ChatMessage {
        session_id: String,
        message: Option<String>,
        options: RawOptions,
        images: Vec<ImageRef>,
    },
    Story {
        description: Option<String>,
        num_images: Option<i64>,
        content_type: Option<String>,
        style: Option<String>,
        options: RawOptions,
    },
    Inpaint {
        prompt: Option<String>,
        region_description: Option<String>,
        options: RawOptions,
        images: Vec<ImageRef>,
        masks: Vec<ImageRef>,
    },
    Outpaint {
        prompt: Option<String>,
        direction: Option<Vec<String>>,
        extension_ratio: Option<f64>,
        options: RawOptions,
        images: Vec<ImageRef>,
    },
    StyleTransfer {
        style: Option<String>,
        style_strength: Option<f64>,
        preserve_content: Option<bool>,
        prompt: Option<String>,
        options: RawOptions,
        images: Vec<ImageRef>,
    },
    OpenAiGenerations {
        fields: OpenAiFields,
    },
    OpenAiEdits {
        fields: OpenAiFields,
        images: Vec<ImageRef>,
        masks: Vec<ImageRef>,
    },
    /// Google's own `generateContent` (and `streamGenerateContent`, which only runs
    /// synchronously): the body as sent, minus the bytes of its inline images, which are
    /// uploads like any other and are put back when the body is relayed.
    GeminiNative {
        /// The model as the caller's path named it.
        model: String,
        /// `v1` or `v1beta`, for Google's wording of an unknown model.
        api_version: String,
        request: serde_json::Value,
        /// The service tier the body asks for once held to the key's tier.
        routing: RawRouting,
        images: Vec<NativeImage>,
        stream: bool,
    },
}

/// An inline image of a native body: which part of which content it was, and its bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NativeImage {
    pub content: usize,
    pub part: usize,
    pub image: ImageRef,
}

/// A unit of work as it is stored for a worker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredWork {
    pub version: u32,
    pub work: Work,
}

/// What planning needs to know: the models and the request limits.
#[derive(Clone)]
pub struct WorkEnv {
    pub models: std::sync::Arc<ModelTable>,
    pub default_model: String,
    pub max_prompt_chars: usize,
    pub intake: IntakeLimits,
}

impl WorkEnv {
    fn options(&self, raw: &RawOptions) -> Result<Options, GenerationError> {
        raw.clone().parse(&self.models, &self.default_model)
    }

    fn prompt(&self, field: &str, value: &Option<String>) -> Result<Prompt, GenerationError> {
        Prompt::parse(field, value.clone(), self.max_prompt_chars)
    }
}

/// A checked unit of work: typed values and the images it needs, in order.
pub enum Plan {
    Generate {
        prompt: Prompt,
        options: Options,
        check: Option<QualityCheck>,
    },
    Edit {
        prompt: Prompt,
        strength: Option<Strength>,
        preserve_subject: bool,
        options: Options,
        check: Option<QualityCheck>,
        image: ImageRef,
    },
    Compose {
        prompt: Prompt,
        style: &'static str,
        options: Options,
        check: Option<QualityCheck>,
        images: Vec<ImageRef>,
    },
    ChatMessage {
        session_id: String,
        message: Prompt,
        options: RawOptions,
        image: Option<ImageRef>,
    },
    Story(StoryRequest),
    Inpaint {
        prompt: Prompt,
        region_description: Option<String>,
        options: Options,
        image: ImageRef,
        mask: Option<ImageRef>,
    },
    Outpaint {
        prompt: Prompt,
        directions: Directions,
        ratio: ExtensionRatio,
        options: Options,
        image: ImageRef,
    },
    StyleTransfer {
        style: Style,
        strength: Option<Strength>,
        preserve_content: bool,
        extra: Option<Prompt>,
        options: Options,
        image: ImageRef,
    },
    OpenAi {
        plan: OpenAiPlan,
        images: Vec<ImageRef>,
        mask: Option<ImageRef>,
    },
    GeminiNative {
        served: ServedAs,
        request: serde_json::Value,
        images: Vec<NativeImage>,
        stream: bool,
    },
}

/// Exactly one file under `field`, required.
fn one(mut refs: Vec<ImageRef>, field: &str, many: &str) -> Result<ImageRef, GenerationError> {
    if refs.len() > 1 {
        return Err(GenerationError::invalid(field, many).detail("count", refs.len()));
    }
    refs.pop().ok_or_else(|| {
        GenerationError::invalid(field, format!("The {field} is required."))
            .detail("reason", "missing")
    })
}

fn at_most_one(
    mut refs: Vec<ImageRef>,
    field: &str,
    many: &str,
) -> Result<Option<ImageRef>, GenerationError> {
    if refs.len() > 1 {
        return Err(GenerationError::invalid(field, many).detail("count", refs.len()));
    }
    Ok(refs.pop())
}

fn quality(ask: QualityAsk) -> Result<Option<QualityCheck>, GenerationError> {
    QualityCheck::parse(ask.include_quality, ask.min_quality_score)
}

/// Google's answer for a model it does not serve.
pub fn native_model_not_found(model: &str, version: &str) -> GenerationError {
    GenerationError::NotFound {
        message: format!(
            "models/{model} is not found for API version {version}, or is not supported for generateContent. Call ListModels to see the list of available models and their supported methods."
        ),
    }
}

impl Work {
    /// How many upstream generations the work makes at most (what the per-minute budget
    /// counts): a story's steps, OpenAI's `n`, quality retries. Values that do not plan
    /// count one; they are refused before anything runs.
    pub fn generations(&self) -> u32 {
        let quality_attempts = |ask: &QualityAsk| {
            if ask.min_quality_score.is_some() {
                crate::generation::quality_check::MAX_ATTEMPTS
            } else {
                1
            }
        };
        match self {
            Work::Generate { quality, .. }
            | Work::Edit { quality, .. }
            | Work::Compose { quality, .. } => quality_attempts(quality),
            Work::Story { num_images, .. } => {
                story::parse_steps(*num_images).map_or(1, |n| u32::try_from(n).unwrap_or(1))
            }
            Work::OpenAiGenerations { fields } | Work::OpenAiEdits { fields, .. } => {
                openai::count(fields)
            }
            _ => 1,
        }
    }

    /// Records the model the work would run on now when it names none, so work queued
    /// before an operator (or an upgrade) changes `default_model` still runs on the model
    /// it was checked against. A chat message keeps its session's model.
    pub fn pin_default_model(&mut self, default_model: &str) {
        match self {
            Work::Generate { options, .. }
            | Work::Edit { options, .. }
            | Work::Compose { options, .. }
            | Work::Story { options, .. }
            | Work::Inpaint { options, .. }
            | Work::Outpaint { options, .. }
            | Work::StyleTransfer { options, .. } => {
                options
                    .model
                    .get_or_insert_with(|| default_model.to_owned());
            }
            // The native surface always names its model in the path.
            Work::ChatMessage { .. }
            | Work::OpenAiGenerations { .. }
            | Work::OpenAiEdits { .. }
            | Work::GeminiNative { .. } => {}
        }
    }

    /// `service_tier`, `thinking_level` and `fallback`, as sent.
    pub fn routing(&self) -> &RawRouting {
        match self {
            Work::Generate { options, .. }
            | Work::Edit { options, .. }
            | Work::Compose { options, .. }
            | Work::ChatMessage { options, .. }
            | Work::Story { options, .. }
            | Work::Inpaint { options, .. }
            | Work::Outpaint { options, .. }
            | Work::StyleTransfer { options, .. } => &options.routing,
            Work::OpenAiGenerations { fields } | Work::OpenAiEdits { fields, .. } => {
                &fields.routing
            }
            Work::GeminiNative { routing, .. } => routing,
        }
    }

    /// The uploads this work reads.
    pub fn images(&self) -> Vec<&ImageRef> {
        match self {
            Work::Generate { .. } | Work::Story { .. } | Work::OpenAiGenerations { .. } => {
                Vec::new()
            }
            Work::Edit { images, .. }
            | Work::Compose { images, .. }
            | Work::ChatMessage { images, .. }
            | Work::Outpaint { images, .. }
            | Work::StyleTransfer { images, .. } => images.iter().collect(),
            Work::Inpaint { images, masks, .. } | Work::OpenAiEdits { images, masks, .. } => {
                images.iter().chain(masks).collect()
            }
            Work::GeminiNative { images, .. } => images.iter().map(|n| &n.image).collect(),
        }
    }

    /// Gives every upload a new key (`rename(old) -> new`), as when they move to the blob store.
    pub fn rekey(&mut self, mut rename: impl FnMut(&str) -> String) {
        let refs: Vec<&mut ImageRef> = match self {
            Work::Generate { .. } | Work::Story { .. } | Work::OpenAiGenerations { .. } => {
                Vec::new()
            }
            Work::Edit { images, .. }
            | Work::Compose { images, .. }
            | Work::ChatMessage { images, .. }
            | Work::Outpaint { images, .. }
            | Work::StyleTransfer { images, .. } => images.iter_mut().collect(),
            Work::Inpaint { images, masks, .. } | Work::OpenAiEdits { images, masks, .. } => {
                images.iter_mut().chain(masks.iter_mut()).collect()
            }
            Work::GeminiNative { images, .. } => images.iter_mut().map(|n| &mut n.image).collect(),
        };
        for r in refs {
            r.key = rename(&r.key);
        }
    }

    /// Checks every field (in the order the contract's errors have always come) and
    /// returns the typed plan. Decodes nothing: images are checked when they are prepared.
    pub fn plan(&self, env: &WorkEnv) -> Result<Plan, GenerationError> {
        Ok(match self.clone() {
            Work::Generate {
                prompt,
                options,
                quality: ask,
            } => {
                let prompt = env.prompt("prompt", &prompt)?;
                let check = quality(ask)?;
                Plan::Generate {
                    prompt,
                    options: env.options(&options)?,
                    check,
                }
            }
            Work::Edit {
                prompt,
                edit_strength,
                preserve_subject,
                options,
                quality: ask,
                images,
            } => {
                let prompt = env.prompt("prompt", &prompt)?;
                let strength = edit_strength
                    .map(|v| Strength::parse("edit_strength", v, 0.1))
                    .transpose()?;
                let check = quality(ask)?;
                let options = env.options(&options)?;
                let image = one(images, "image", "Send exactly one image to edit.")?;
                Plan::Edit {
                    prompt,
                    strength,
                    preserve_subject: preserve_subject.unwrap_or(false),
                    options,
                    check,
                    image,
                }
            }
            Work::Compose {
                prompt,
                composition_style,
                options,
                quality: ask,
                images,
            } => {
                let prompt = env.prompt("prompt", &prompt)?;
                let style = prompts::parse_composition_style(composition_style.as_deref())?;
                let check = quality(ask)?;
                let options = env.options(&options)?;
                requests::check_compose_count(images.len())?;
                Plan::Compose {
                    prompt,
                    style,
                    options,
                    check,
                    images,
                }
            }
            Work::ChatMessage {
                session_id,
                message,
                options,
                images,
            } => {
                let message = env.prompt("message", &message)?;
                if options.model.is_some() {
                    return Err(GenerationError::invalid(
                        "model",
                        "A session's model is fixed when it is created.",
                    ));
                }
                let image = at_most_one(images, "image", "Send at most one image per message.")?;
                Plan::ChatMessage {
                    session_id,
                    message,
                    options,
                    image,
                }
            }
            Work::Story {
                description,
                num_images,
                content_type,
                style,
                options,
            } => Plan::Story(StoryRequest {
                description: env.prompt("description", &description)?,
                steps: story::parse_steps(num_images)?,
                content_type: story::parse_content_type(content_type.as_deref())?,
                style: story::parse_style(style)?,
                options: env.options(&options)?,
            }),
            Work::Inpaint {
                prompt,
                region_description,
                options,
                images,
                masks,
            } => {
                let prompt = env.prompt("prompt", &prompt)?;
                let region_description = region_description.filter(|r| !r.trim().is_empty());
                if region_description
                    .as_ref()
                    .is_some_and(|r| r.chars().count() > env.max_prompt_chars)
                {
                    return Err(GenerationError::invalid(
                        "region_description",
                        "The region description is too long.",
                    )
                    .detail("max_length", env.max_prompt_chars));
                }
                let options = env.options(&options)?;
                let image = one(images, "image", "Send exactly one 'image' file.")?;
                let mask = at_most_one(masks, "mask", "Send at most one mask.")?;
                Plan::Inpaint {
                    prompt,
                    region_description,
                    options,
                    image,
                    mask,
                }
            }
            Work::Outpaint {
                prompt,
                direction,
                extension_ratio,
                options,
                images,
            } => {
                let prompt = env.prompt("prompt", &prompt)?;
                let directions = Directions::parse(direction.as_deref())?;
                let ratio = ExtensionRatio::parse(extension_ratio)?;
                let options = env.options(&options)?;
                let image = one(images, "image", "Send exactly one 'image' file.")?;
                Plan::Outpaint {
                    prompt,
                    directions,
                    ratio,
                    options,
                    image,
                }
            }
            Work::StyleTransfer {
                style,
                style_strength,
                preserve_content,
                prompt,
                options,
                images,
            } => {
                let style = Style::parse(style)?;
                let strength = style_strength
                    .map(|v| Strength::parse("style_strength", v, 0.0))
                    .transpose()?;
                let extra = prompt
                    .filter(|p| !p.trim().is_empty())
                    .map(|p| Prompt::parse("prompt", Some(p), env.max_prompt_chars))
                    .transpose()?;
                let options = env.options(&options)?;
                let image = one(images, "image", "Send exactly one 'image' file.")?;
                Plan::StyleTransfer {
                    style,
                    strength,
                    preserve_content: preserve_content.unwrap_or(true),
                    extra,
                    options,
                    image,
                }
            }
            Work::OpenAiGenerations { fields } => Plan::OpenAi {
                plan: openai::plan(env, fields)?,
                images: Vec::new(),
                mask: None,
            },
            Work::OpenAiEdits {
                fields,
                images,
                masks,
            } => {
                let plan = openai::plan(env, fields)?;
                openai::check_edit_files(images.len(), masks.len())?;
                Plan::OpenAi {
                    plan,
                    images,
                    mask: masks.into_iter().next(),
                }
            }
            Work::GeminiNative {
                model,
                api_version,
                request,
                routing,
                images,
                stream,
            } => {
                let model = env
                    .models
                    .resolve(&model)
                    .map_err(|_| native_model_not_found(&model, &api_version))?;
                let service_tier = routing
                    .service_tier
                    .as_deref()
                    .map(ServiceTier::parse)
                    .transpose()?;
                Plan::GeminiNative {
                    served: ServedAs {
                        model,
                        service_tier,
                    },
                    request,
                    images,
                    stream,
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queued_work_keeps_the_default_model_it_was_checked_against() {
        let mut work = Work::Generate {
            prompt: Some("a lighthouse".into()),
            options: RawOptions::default(),
            quality: QualityAsk::default(),
        };
        work.pin_default_model("gemini-3.1-flash-image");
        let Work::Generate { options, .. } = &work else {
            unreachable!()
        };
        assert_eq!(options.model.as_deref(), Some("gemini-3.1-flash-image"));
        work.pin_default_model("gemini-nano-banana-2.1");
        let Work::Generate { options, .. } = &work else {
            unreachable!()
        };
        assert_eq!(options.model.as_deref(), Some("gemini-3.1-flash-image"));
    }

    #[test]
    fn a_unit_of_work_survives_storage_unchanged() {
        let work = StoredWork {
            version: WORK_VERSION,
            work: Work::Inpaint {
                prompt: Some("a red door".into()),
                region_description: None,
                options: RawOptions {
                    seed: Some(7),
                    ..RawOptions::default()
                },
                images: vec![ImageRef {
                    key: "requests/req_1/0".into(),
                    field: "image".into(),
                    role: ImageRole::Input,
                }],
                masks: Vec::new(),
            },
        };
        let text = serde_json::to_string(&work).unwrap();
        assert!(text.contains(r#""kind":"inpaint""#), "{text}");
        assert_eq!(serde_json::from_str::<StoredWork>(&text).unwrap(), work);
    }

    #[test]
    fn the_budget_counts_upstream_generations() {
        let story = Work::Story {
            description: Some("a fox".into()),
            num_images: Some(6),
            content_type: None,
            style: None,
            options: RawOptions::default(),
        };
        assert_eq!(story.generations(), 6);
        let fields = OpenAiFields {
            n: Some(4),
            ..OpenAiFields::default()
        };
        assert_eq!(Work::OpenAiGenerations { fields }.generations(), 4);
    }
}

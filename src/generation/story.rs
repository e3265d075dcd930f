//! Illustrated sequences: `num_images` steps generated as turns of one conversation, so
//! characters, setting and style carry from step to step. A failed step fails the
//! request and says which step.

use futures_util::future::BoxFuture;
use serde::Serialize;

use crate::caller::RequestContext;
use crate::generation::GenerationError;
use crate::generation::params::{Modalities, Options, Prompt};
use crate::generation::{GenerationResponse, Generator, Outcome, Usage};
use crate::imaging::ImageFormat;
use crate::models::Substitution;
use crate::provider::{Part, PartData, ProviderRequest, Role, Task, Turn};

/// `content_type` values and how each shapes the steps (documented in docs/prompting.md).
pub const CONTENT_TYPES: &[(&str, &str)] = &[
    (
        "story",
        "an illustrated story: each step is the next scene, from the setup through the development and climax to the resolution",
    ),
    (
        "recipe",
        "a visual recipe: each step is one distinct cooking stage, from the gathered ingredients to the finished dish",
    ),
    (
        "tutorial",
        "a step-by-step tutorial: each step shows exactly one clear action and its visible result",
    ),
    (
        "comic",
        "a comic strip: each step is one panel, with the same characters drawn the same way in every panel",
    ),
    (
        "storyboard",
        "a film storyboard: each step is one shot, and its caption names the camera framing",
    ),
    (
        "timeline",
        "a timeline: each step shows the same subject at a later point in time",
    ),
    (
        "product",
        "a product showcase: each step shows the same product from a new angle or in a new use",
    ),
];

pub const MIN_STEPS: i64 = 1;
pub const MAX_STEPS: i64 = 10;
pub const DEFAULT_STEPS: i64 = 4;
/// Image bytes of earlier steps kept in the context: every step re-sends them
/// (base64, 4/3 larger) and an upstream request must stay under 20 MB.
const CONTEXT_IMAGE_BUDGET: usize = 12 * 1024 * 1024;

pub struct StoryRequest {
    pub description: Prompt,
    pub steps: usize,
    pub content_type: &'static str,
    pub style: Option<String>,
    pub options: Options,
}

pub fn parse_steps(value: Option<i64>) -> Result<usize, GenerationError> {
    let n = value.unwrap_or(DEFAULT_STEPS);
    if (MIN_STEPS..=MAX_STEPS).contains(&n) {
        Ok(n as usize)
    } else {
        Err(GenerationError::invalid(
            "num_images",
            format!("num_images must be between {MIN_STEPS} and {MAX_STEPS}."),
        )
        .detail("min", MIN_STEPS)
        .detail("max", MAX_STEPS)
        .detail("value", n))
    }
}

pub fn parse_content_type(value: Option<&str>) -> Result<&'static str, GenerationError> {
    let v = value
        .map(|v| v.trim().to_ascii_lowercase())
        .unwrap_or_else(|| "story".into());
    CONTENT_TYPES
        .iter()
        .map(|(name, _)| *name)
        .find(|name| *name == v)
        .ok_or_else(|| {
            GenerationError::invalid("content_type", format!("Unknown content type '{v}'.")).detail(
                "allowed",
                CONTENT_TYPES.iter().map(|(n, _)| *n).collect::<Vec<_>>(),
            )
        })
}

/// The optional style line: at most 500 characters; blank means none.
pub fn parse_style(value: Option<String>) -> Result<Option<String>, GenerationError> {
    match value {
        Some(s) if s.chars().count() > 500 => Err(GenerationError::invalid(
            "style",
            "The style is too long. Maximum length is 500 characters.",
        )
        .detail("max_length", 500)
        .detail("current_length", s.chars().count())),
        other => Ok(other.filter(|s| !s.trim().is_empty())),
    }
}

fn step_prompt(req: &StoryRequest, step: usize) -> String {
    let n = req.steps;
    if step == 1 {
        let kind = CONTENT_TYPES
            .iter()
            .find(|(name, _)| *name == req.content_type)
            .map_or("", |(_, d)| *d);
        let style = req
            .style
            .as_deref()
            .map(|s| format!("\nVisual style for every step: {s}."))
            .unwrap_or_default();
        format!(
            "We are making {kind}, in {n} steps, about: {}{style}\nKeep the same characters, setting, objects and visual style in every step.\n\nNow create step 1 of {n}: generate its image, and write a one-sentence caption for it.",
            req.description.as_str()
        )
    } else {
        format!(
            "Now create step {step} of {n}, continuing from the previous step with the same characters, setting and style. Generate its image and write a one-sentence caption for it."
        )
    }
}

/// One finished step. Its image travels once: in the step's SSE `step` event, and in the
/// story's `images[]` (index-aligned with `steps[]`); the story's `steps[]` carry its id.
#[derive(Debug, Clone, Serialize)]
pub struct StoryStep {
    pub index: usize,
    pub caption: String,
    /// Base64, in the `step` event only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    pub image_id: String,
    pub mime_type: &'static str,
}

#[derive(Debug, Serialize)]
pub struct StoryResponse {
    #[serde(flatten)]
    pub generation: GenerationResponse,
    pub steps: Vec<StoryStep>,
}

pub struct StoryOutcome {
    pub response: StoryResponse,
    pub substituted: Option<(String, Substitution)>,
}

/// Drops the oldest steps after the first from the context until its images fit the
/// budget; the first step stays as the anchor for characters and style.
fn trim_context(contents: &mut Vec<Turn>) {
    let image_bytes = |t: &Turn| -> usize {
        t.parts
            .iter()
            .map(|p| match &p.data {
                PartData::Image { bytes, .. } => bytes.len(),
                PartData::Text(_) => 0,
            })
            .sum()
    };
    while contents.len() > 4
        && contents.iter().map(image_bytes).sum::<usize>() > CONTEXT_IMAGE_BUDGET
    {
        contents.drain(2..4);
    }
}

/// Sees each story step as soon as it is done and stored (for streaming); the next step
/// starts when the returned future ends.
pub type Progress<'a> = &'a (dyn Fn(StoryStep) -> BoxFuture<'static, ()> + Send + Sync);

/// Runs every step; `progress` sees each step as soon as it is done.
pub async fn generate(
    generator: &Generator,
    ctx: &RequestContext,
    req: StoryRequest,
    progress: Progress<'_>,
) -> Result<StoryOutcome, GenerationError> {
    let mut contents: Vec<Turn> = Vec::new();
    let mut steps = Vec::with_capacity(req.steps);
    let mut all: Option<GenerationResponse> = None;
    let mut substituted = None;
    for step in 1..=req.steps {
        contents.push(Turn {
            role: Role::User,
            parts: vec![Part::text(step_prompt(&req, step))],
        });
        trim_context(&mut contents);
        let options = Options {
            // Captions need text and steps need images, whatever else was asked.
            modalities: Modalities {
                text: true,
                image: true,
            },
            ..req.options.clone()
        };
        let task = if step == 1 {
            Task::Generate
        } else {
            Task::Chat
        };
        let request = ProviderRequest::new(options, task, contents.clone());
        let Outcome {
            response,
            substituted: sub,
            generated,
        } = generator
            .run(ctx, request)
            .await
            .map_err(|e| GenerationError::StoryStep {
                step,
                steps: req.steps,
                error: Box::new(e),
            })?;
        substituted = substituted.or(sub);
        contents.push(generated.model_turn.clone());
        let done = StoryStep {
            index: step,
            caption: response
                .text
                .clone()
                .map(|t| t.trim().to_owned())
                .filter(|t| !t.is_empty())
                .unwrap_or_else(|| format!("Step {step}")),
            image: Some(response.images[0].clone()),
            image_id: response.image_ids[0].clone(),
            mime_type: response
                .mime_types
                .first()
                .copied()
                .unwrap_or(ImageFormat::Png.mime()),
        };
        progress(done.clone()).await;
        steps.push(StoryStep {
            image: None,
            ..done
        });
        all = Some(match all {
            None => response,
            Some(mut acc) => {
                acc.images.extend(response.images);
                acc.image_ids.extend(response.image_ids);
                acc.mime_types.extend(response.mime_types);
                acc.usage = add(acc.usage, response.usage);
                acc.finish_reason = response.finish_reason;
                acc
            }
        });
    }
    let mut generation =
        all.ok_or_else(|| GenerationError::internal("a story has at least one step"))?;
    generation.text = Some(
        steps
            .iter()
            .map(|s| s.caption.as_str())
            .collect::<Vec<_>>()
            .join("\n"),
    );
    Ok(StoryOutcome {
        response: StoryResponse { generation, steps },
        substituted,
    })
}

fn add(a: Usage, b: Usage) -> Usage {
    Usage {
        input_tokens: a.input_tokens + b.input_tokens,
        output_tokens: a.output_tokens + b.output_tokens,
        image_tokens: a.image_tokens + b.image_tokens,
        thought_tokens: a.thought_tokens + b.thought_tokens,
        cost_usd: ((a.cost_usd + b.cost_usd) * 1e6).round() / 1e6,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_counts_outside_one_to_ten_are_refused() {
        assert_eq!(parse_steps(None).unwrap(), 4);
        assert_eq!(parse_steps(Some(10)).unwrap(), 10);
        assert!(parse_steps(Some(0)).is_err());
        assert!(parse_steps(Some(11)).is_err());
    }

    #[test]
    fn content_types_are_a_documented_list() {
        assert_eq!(parse_content_type(Some("Recipe")).unwrap(), "recipe");
        let err = parse_content_type(Some("poem")).unwrap_err();
        assert!(err.details()["allowed"].as_array().unwrap().len() >= 4);
    }
}

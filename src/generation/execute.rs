//! The one executor: runs a planned unit of work, for the synchronous path and for the
//! async worker alike, and gives back what it produced ([`Done`]).

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use serde::Serialize;
use serde_json::Value;

use crate::caller::RequestContext;
use crate::generation::GenerationError;
use crate::generation::advanced::{self, Inpaint, Outpaint};
use crate::generation::canvas;
use crate::generation::chat::{ChatMessage, ChatReply, ChatService};
use crate::generation::openai::{Format, OpenAiPlan};
use crate::generation::params::Prompt;
use crate::generation::pixels::{PixelBudget, PixelPermit};
use crate::generation::quality_check::{self, QualityCheck};
use crate::generation::story::{self, StoryOutcome};
use crate::generation::work::{ImageRef, ImageRole, Plan, Work, WorkEnv};
use crate::generation::{GenerationResponse, Generator, Outcome, PostProcess, native, requests};
use crate::imaging::{self, ImageFormat, InputImage, IntakeLimits};
use crate::limits::{ConcurrencyLimiter, Tiers};
use crate::provider::native::NativeUpstream;
use crate::provider::{OutputImage, ProviderRequest};

/// An upload after intake: as uploaded, and as it goes upstream (checked, downscaled).
#[derive(Clone)]
pub struct Prepared {
    pub original: Bytes,
    pub image: InputImage,
}

/// The prepared uploads of one unit of work, by [`ImageRef::key`], and the work's share
/// of the decoded-pixel budget (held until the work ends).
#[derive(Default)]
pub struct Inputs {
    images: HashMap<String, Prepared>,
    pixels: Option<PixelPermit>,
}

impl Inputs {
    /// The size of a prepared image as it goes upstream (0 when absent).
    pub fn image_bytes(&self, r: &ImageRef) -> i64 {
        self.images
            .get(&r.key)
            .map_or(0, |p| p.image.bytes.len() as i64)
    }

    /// The bytes of the decoded-pixel budget the work holds.
    pub fn held_bytes(&self) -> u64 {
        self.pixels.as_ref().map_or(0, PixelPermit::bytes)
    }

    pub fn take(&mut self, r: &ImageRef) -> Result<Prepared, GenerationError> {
        self.images
            .remove(&r.key)
            .ok_or_else(|| GenerationError::internal(format!("input {} was not prepared", r.key)))
    }
}

/// Checks and prepares every upload `work` reads (`bytes` by key), off the async threads.
/// The same checks run at acceptance and, for stored work, again before it runs. The
/// work's share of the decoded-pixel budget is taken first and held by the inputs.
pub async fn prepare(
    work: &Work,
    plan: &Plan,
    mut bytes: HashMap<String, Bytes>,
    limits: IntakeLimits,
    pixels: &PixelBudget,
) -> Result<Inputs, GenerationError> {
    let mut wanted = Vec::new();
    let mut dims = HashMap::new();
    for r in work.images() {
        let data = bytes
            .remove(&r.key)
            .ok_or_else(|| GenerationError::internal(format!("input {} is missing", r.key)))?;
        // Header only; bytes that are no image are refused by intake below.
        if let Some(d) = imaging::dimensions(&data) {
            dims.insert(r.key.clone(), d);
        }
        wanted.push((r.clone(), data));
    }
    let built = check_outputs(plan, &dims)?;
    let decoded: u64 = dims
        .values()
        .map(|(w, h)| u64::from(*w) * u64::from(*h))
        .sum::<u64>()
        + built;
    let permit = pixels
        .take(decoded.saturating_mul(imaging::DECODED_BYTES_PER_PIXEL))
        .await?;
    let mut inputs = tokio::task::spawn_blocking(move || {
        let mut inputs = Inputs::default();
        for (r, data) in wanted {
            let image = imaging::accept_input(&r.field, data.clone(), &limits)?;
            let image = match r.role {
                ImageRole::Input => image,
                ImageRole::OpenAiMask => openai_mask(&image)?,
            };
            inputs.images.insert(
                r.key,
                Prepared {
                    original: data,
                    image,
                },
            );
        }
        Ok::<_, GenerationError>(inputs)
    })
    .await
    .map_err(GenerationError::failed("preparing the inputs"))??;
    inputs.pixels = Some(permit);
    Ok(inputs)
}

fn too_large_to_build(field: &str, width: u32, height: u32) -> GenerationError {
    GenerationError::invalid(
        field,
        "The image the gateway would build from this is too large to process.",
    )
    .detail("width", width)
    .detail("height", height)
    .detail("max_pixels", imaging::MAX_OUTPUT_PIXELS)
}

/// Refuses work whose built images (composites at the original's size, outpaint
/// canvases) would pass [`imaging::MAX_OUTPUT_PIXELS`], before anything is allocated;
/// returns the pixels those built images take.
fn check_outputs(plan: &Plan, dims: &HashMap<String, (u32, u32)>) -> Result<u64, GenerationError> {
    let pixels = |(w, h): (u32, u32)| u64::from(w) * u64::from(h);
    let composite = |image: &ImageRef| match dims.get(&image.key) {
        Some(&(w, h)) if pixels((w, h)) > imaging::MAX_OUTPUT_PIXELS => {
            Err(too_large_to_build("image", w, h))
        }
        Some(&d) => Ok(pixels(d)),
        None => Ok(0),
    };
    match plan {
        Plan::Inpaint {
            image,
            mask: Some(_),
            ..
        } => composite(image),
        Plan::OpenAi {
            images,
            mask: Some(_),
            ..
        } => images.first().map_or(Ok(0), composite),
        Plan::Outpaint {
            image,
            directions,
            ratio,
            ..
        } => match dims.get(&image.key) {
            Some(&(w, h)) => {
                let (gw, gh) = canvas::grown_size(w, h, *directions, ratio);
                if pixels((gw, gh)) > imaging::MAX_OUTPUT_PIXELS {
                    return Err(too_large_to_build("extension_ratio", gw, gh));
                }
                Ok(pixels((gw, gh)))
            }
            None => Ok(0),
        },
        _ => Ok(0),
    }
}

/// OpenAI masks mark the area to edit as fully transparent; imagegate's masks mark it
/// white. Converts one into the other.
fn openai_mask(accepted: &InputImage) -> Result<InputImage, GenerationError> {
    let image = imaging::decode(&accepted.bytes).map_err(|e| {
        GenerationError::invalid("mask", "The mask could not be decoded.").caused_by(e)
    })?;
    if !image.color().has_alpha() {
        return Err(GenerationError::invalid(
            "mask",
            "The mask must be a PNG with transparency: transparent where the image should change.",
        ));
    }
    let rgba = image.to_rgba8();
    let converted = image::GrayImage::from_fn(rgba.width(), rgba.height(), |x, y| {
        image::Luma([if rgba.get_pixel(x, y)[3] == 0 { 255 } else { 0 }])
    });
    let bytes = imaging::encode(
        &image::DynamicImage::ImageLuma8(converted),
        ImageFormat::Png,
    )
    .map_err(GenerationError::failed("encoding the converted mask"))?;
    Ok(InputImage {
        format: ImageFormat::Png,
        bytes,
        width: rgba.width(),
        height: rgba.height(),
        original_size: (rgba.width(), rgba.height()),
    })
}

/// The pixels of an uploaded image, from its header (0 when it has none).
fn pixels_of(bytes: &[u8]) -> u64 {
    imaging::dimensions(bytes).map_or(0, |(w, h)| u64::from(w) * u64::from(h))
}

/// `composite` applied to each model image, as [`advanced::post_process`], after the
/// step has taken from the decoded-pixel budget what it allocates: the model image's
/// decode, and the scaled copy and the composite at the original's size (`original_px`).
/// The work already holds `held` bytes (its decoded original), so it never waits on
/// itself. Runs on a blocking thread, where waiting for the budget may block.
fn budgeted_post_process(
    composite: advanced::Composite,
    budget: PixelBudget,
    original_px: u64,
    held: u64,
) -> PostProcess {
    let post = advanced::post_process(composite);
    Box::new(move |images: Vec<OutputImage>| {
        // The images are composited one at a time: the largest sets the step's peak.
        let model_px = images
            .iter()
            .filter_map(|out| imaging::dimensions(&out.bytes))
            .map(|(w, h)| u64::from(w) * u64::from(h))
            .max()
            .unwrap_or(0);
        let bytes = (model_px + 2 * original_px).saturating_mul(imaging::DECODED_BYTES_PER_PIXEL);
        let _share = tokio::runtime::Handle::current().block_on(budget.take_beside(bytes, held))?;
        post(images)
    })
}

/// For work run without a listener.
pub fn no_progress(_: story::StoryStep) -> futures_util::future::BoxFuture<'static, ()> {
    Box::pin(std::future::ready(()))
}

/// What a unit of work produced.
pub enum Done {
    Generation(Outcome),
    Chat(ChatReply),
    Story(StoryOutcome),
    OpenAi {
        outcomes: Vec<Outcome>,
        format: Format,
    },
    /// Google's answer to a native call, as it came.
    Native(native::Answer),
}

#[derive(Serialize)]
pub struct MessageResponse {
    #[serde(flatten)]
    pub generation: GenerationResponse,
    pub session_id: String,
    pub turn: i64,
}

impl Done {
    /// The contract's response body, as `GET /requests/{id}` reports an async result.
    pub fn into_json(self) -> Result<Value, GenerationError> {
        let value = match self {
            Done::Generation(outcome) => serde_json::to_value(outcome.response),
            Done::Chat(reply) => serde_json::to_value(MessageResponse {
                generation: reply.outcome.response,
                session_id: reply.session_id,
                turn: reply.turn,
            }),
            Done::Story(outcome) => serde_json::to_value(outcome.response),
            Done::OpenAi { outcomes, .. } => {
                serde_json::to_value(outcomes.into_iter().map(|o| o.response).collect::<Vec<_>>())
            }
            Done::Native(answer) => return answer.into_result(),
        };
        value.map_err(GenerationError::failed("encoding the result"))
    }
}

pub use crate::generation::story::Progress;

pub struct Executor {
    pub env: WorkEnv,
    /// Decoded-pixel memory, shared by every request and worker of the process.
    pub pixels: PixelBudget,
    generator: Generator,
    chat: Arc<ChatService>,
    concurrency: Arc<dyn ConcurrencyLimiter>,
    tiers: Arc<Tiers>,
    /// Google, for the native surface's relayed calls; `None` on the offline provider.
    gemini: Option<Arc<dyn NativeUpstream>>,
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, GenerationError> + Send + 'static,
) -> Result<T, GenerationError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(GenerationError::failed("a blocking task"))?
}

impl Executor {
    pub fn new(
        env: WorkEnv,
        pixels: PixelBudget,
        generator: Generator,
        chat: Arc<ChatService>,
        concurrency: Arc<dyn ConcurrencyLimiter>,
        tiers: Arc<Tiers>,
    ) -> Self {
        Self {
            env,
            pixels,
            generator,
            chat,
            concurrency,
            tiers,
            gemini: None,
        }
    }

    pub fn with_gemini(mut self, gemini: Option<Arc<dyn NativeUpstream>>) -> Self {
        self.gemini = gemini;
        self
    }

    /// What the native surface's calls are relayed with.
    pub fn relay(&self) -> native::Relay<'_> {
        native::Relay {
            generator: &self.generator,
            models: &self.env.models,
            default_model: &self.env.default_model,
            gemini: self.gemini.as_deref(),
        }
    }

    /// Runs a plan to the end. `progress` sees each finished story step.
    pub async fn run(
        &self,
        ctx: &RequestContext,
        plan: Plan,
        mut inputs: Inputs,
        progress: Progress<'_>,
    ) -> Result<Done, GenerationError> {
        let generation = |outcome| Ok(Done::Generation(outcome));
        // Only composites and canvases keep decoded pixels through the upstream call;
        // everything else let go of its decode when intake re-encoded it.
        let keeps_decoded = matches!(
            plan,
            Plan::Inpaint { mask: Some(_), .. }
                | Plan::Outpaint { .. }
                | Plan::OpenAi { mask: Some(_), .. }
        );
        if !keeps_decoded {
            inputs.pixels = None;
        }
        match plan {
            Plan::Generate {
                prompt,
                options,
                check,
            } => generation(
                self.checked(ctx, check, prompt, |p| {
                    Ok(requests::text_to_image(p, options.clone()))
                })
                .await?,
            ),
            Plan::Edit {
                prompt,
                strength,
                preserve_subject,
                options,
                check,
                image,
            } => {
                let image = inputs.take(&image)?.image;
                generation(
                    self.checked(ctx, check, prompt, |p| {
                        Ok(requests::edit(
                            p,
                            image.clone(),
                            strength,
                            preserve_subject,
                            options.clone(),
                        ))
                    })
                    .await?,
                )
            }
            Plan::Compose {
                prompt,
                style,
                options,
                check,
                images,
            } => {
                let images = images
                    .iter()
                    .map(|r| inputs.take(r).map(|p| p.image))
                    .collect::<Result<Vec<_>, _>>()?;
                generation(
                    self.checked(ctx, check, prompt, |p| {
                        requests::compose(p, images.clone(), style, options.clone())
                    })
                    .await?,
                )
            }
            Plan::ChatMessage {
                session_id,
                message,
                options,
                image,
            } => {
                let image = image
                    .map(|r| inputs.take(&r).map(|p| p.image))
                    .transpose()?;
                let msg = ChatMessage {
                    message,
                    image,
                    options,
                };
                Ok(Done::Chat(self.chat.send(ctx, &session_id, msg).await?))
            }
            Plan::Story(request) => Ok(Done::Story(
                story::generate(&self.generator, ctx, request, progress).await?,
            )),
            Plan::Inpaint {
                prompt,
                region_description,
                options,
                image,
                mask,
            } => {
                let Prepared { original, image } = inputs.take(&image)?;
                let mask = mask.map(|r| inputs.take(&r).map(|p| p.image)).transpose()?;
                let original_px = pixels_of(&original);
                let job = Inpaint {
                    prompt,
                    region_description,
                    image,
                    original,
                    mask,
                };
                let (request, composite) =
                    blocking(move || advanced::inpaint(job, options)).await?;
                let held = inputs.held_bytes();
                let post = composite
                    .map(|c| budgeted_post_process(c, self.pixels.clone(), original_px, held));
                generation(self.generator.run_with(ctx, request, post).await?)
            }
            Plan::Outpaint {
                prompt,
                directions,
                ratio,
                options,
                image,
            } => {
                let original = inputs.take(&image)?.original;
                let job = Outpaint {
                    prompt,
                    original,
                    directions,
                    ratio,
                    max_edge: self.env.intake.max_edge,
                    max_pixels: imaging::MAX_OUTPUT_PIXELS,
                };
                let (request, composite) =
                    blocking(move || advanced::outpaint(job, options)).await?;
                let post = Some(advanced::post_process(composite));
                generation(self.generator.run_with(ctx, request, post).await?)
            }
            Plan::StyleTransfer {
                style,
                strength,
                preserve_content,
                extra,
                options,
                image,
            } => {
                let image = inputs.take(&image)?.image;
                let request = advanced::style_transfer(
                    image,
                    style,
                    strength,
                    preserve_content,
                    extra,
                    options,
                );
                generation(self.generator.run(ctx, request).await?)
            }
            Plan::OpenAi { plan, images, mask } => {
                let images = images
                    .iter()
                    .map(|r| inputs.take(r))
                    .collect::<Result<Vec<_>, _>>()?;
                let mask = mask.map(|r| inputs.take(&r).map(|p| p.image)).transpose()?;
                let held = inputs.held_bytes();
                self.openai(ctx, plan, images, mask, held).await
            }
            Plan::GeminiNative {
                served,
                request,
                images,
                stream,
            } => {
                if stream {
                    // Its answer is relayed as it arrives: the handler runs it.
                    return Err(GenerationError::internal(
                        "a native stream is not run as work",
                    ));
                }
                let body = native::body(request, &images, &mut inputs)?;
                Ok(Done::Native(
                    native::generate(&self.relay(), ctx, served, body).await?,
                ))
            }
        }
    }

    /// Runs the generation `build` makes from the prompt: once, or as the guide's
    /// `generate_with_quality_check` when quality was asked for.
    async fn checked(
        &self,
        ctx: &RequestContext,
        check: Option<QualityCheck>,
        prompt: Prompt,
        build: impl Fn(Prompt) -> Result<ProviderRequest, GenerationError>,
    ) -> Result<Outcome, GenerationError> {
        let first = build(prompt.clone())?;
        let Some(check) = check else {
            return self.generator.run(ctx, first).await;
        };
        if !first.modalities.image {
            return Err(GenerationError::invalid(
                "include_quality",
                "Quality is measured on an image; include \"Image\" in response_modalities.",
            ));
        }
        let checked = quality_check::generate_with_quality_check(check, &prompt, |p| {
            let request = build(p);
            let generator = self.generator.clone();
            let ctx = ctx.clone();
            async move { generator.run(&ctx, request?).await }
        })
        .await?;
        Ok(checked.into_outcome(check))
    }

    /// `held`: the bytes of the pixel budget the work holds (its decoded original).
    async fn openai(
        &self,
        ctx: &RequestContext,
        plan: OpenAiPlan,
        images: Vec<Prepared>,
        mask: Option<InputImage>,
        held: u64,
    ) -> Result<Done, GenerationError> {
        let OpenAiPlan {
            prompt,
            n,
            format,
            options,
        } = plan;
        let runs: Vec<(ProviderRequest, Option<PostProcess>)> = match (images.len(), mask) {
            (0, _) => copies(requests::text_to_image(prompt, options), n),
            (1, Some(mask)) => {
                let Prepared { original, image } = images
                    .into_iter()
                    .next()
                    .ok_or_else(|| GenerationError::internal("no image to edit"))?;
                let original_px = pixels_of(&original);
                let job = Inpaint {
                    prompt,
                    region_description: None,
                    image,
                    original,
                    mask: Some(mask),
                };
                // Decoded and masked once; the `n` calls share it. Each call's
                // compositing takes its own share of the pixel budget when it runs.
                let (request, composite) =
                    blocking(move || advanced::inpaint(job, options)).await?;
                (0..n)
                    .map(|_| {
                        let post = composite.clone().map(|c| {
                            budgeted_post_process(c, self.pixels.clone(), original_px, held)
                        });
                        (request.clone(), post)
                    })
                    .collect()
            }
            (1, None) => {
                let image = images
                    .into_iter()
                    .next()
                    .map(|p| p.image)
                    .ok_or_else(|| GenerationError::internal("no image to edit"))?;
                copies(requests::edit(prompt, image, None, false, options), n)
            }
            _ => {
                let images = images.into_iter().map(|p| p.image).collect();
                copies(requests::compose(prompt, images, "blend", options)?, n)
            }
        };
        let outcomes = self.fan_out(ctx, runs).await?;
        Ok(Done::OpenAi { outcomes, format })
    }

    /// Runs the calls in order of submission. The request's own in-flight slot runs one
    /// at a time; every further slot the key has free is borrowed for the duration, so
    /// the key never has more upstream calls at once than its concurrency.
    async fn fan_out(
        &self,
        ctx: &RequestContext,
        runs: Vec<(ProviderRequest, Option<PostProcess>)>,
    ) -> Result<Vec<Outcome>, GenerationError> {
        let max = self.max_concurrent(&ctx.caller);
        let mut borrowed = Vec::new();
        while borrowed.len() + 1 < runs.len() {
            match self.concurrency.try_acquire(&ctx.caller.key_id, max).await {
                Some(permit) => borrowed.push(permit),
                None => break,
            }
        }
        let lanes = Arc::new(tokio::sync::Semaphore::new(borrowed.len() + 1));
        let mut calls = Vec::with_capacity(runs.len());
        for (request, post) in runs {
            let (generator, ctx, lanes) = (self.generator.clone(), ctx.clone(), lanes.clone());
            calls.push(crate::tasks::spawn(async move {
                let _lane = lanes
                    .acquire_owned()
                    .await
                    .map_err(GenerationError::failed("the lanes of a multi-image call"))?;
                generator.run_with(&ctx, request, post).await
            }));
        }
        let mut outcomes = Vec::with_capacity(calls.len());
        let mut first_error = None;
        for call in calls {
            match call
                .await
                .map_err(GenerationError::failed("a call of a multi-image request"))
                .and_then(|r| r)
            {
                Ok(outcome) => outcomes.push(outcome),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        // Every call has ended here, so the borrowed slots are given back only now.
        drop(borrowed);
        match first_error {
            Some(e) => Err(e),
            None => Ok(outcomes),
        }
    }
}

fn copies(request: ProviderRequest, n: usize) -> Vec<(ProviderRequest, Option<PostProcess>)> {
    (0..n).map(|_| (request.clone(), None)).collect()
}

impl Executor {
    /// How many upstream calls the caller's key may have in flight: its own override
    /// (docs/keys.md) when it has one, else its tier's.
    pub fn max_concurrent(&self, caller: &crate::caller::Caller) -> u32 {
        caller
            .settings
            .max_concurrent
            .unwrap_or_else(|| self.tiers.for_tier(&caller.tier).max_concurrent)
    }

    /// One of the caller's in-flight slots if one is free now. Queued work that finds
    /// none goes back to the queue (`jobs`), so a saturated key does not hold a worker.
    pub async fn try_slot(
        &self,
        caller: &crate::caller::Caller,
    ) -> Option<crate::limits::ConcurrencyPermit> {
        self.concurrency
            .try_acquire(&caller.key_id, self.max_concurrent(caller))
            .await
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn output(side: u32) -> Vec<OutputImage> {
        let image = image::DynamicImage::new_rgb8(side, side);
        vec![OutputImage {
            format: ImageFormat::Png,
            bytes: imaging::encode(&image, ImageFormat::Png).unwrap(),
            base64: None,
        }]
    }

    async fn post(budget: &PixelBudget, held: u64) -> Result<Vec<OutputImage>, GenerationError> {
        let identity: advanced::Composite = Arc::new(|model| model.clone());
        // A 64×64 output onto a 64×64 original: (1 + 2) × 4096 px × 8 B = 96 KiB.
        let step = budgeted_post_process(identity, budget.clone(), 64 * 64, held);
        tokio::task::spawn_blocking(move || step(output(64)))
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn each_composited_output_takes_its_share_of_the_pixel_budget() {
        const MIB: u64 = 1024 * 1024;
        let budget = PixelBudget::new(MIB, Duration::from_millis(50));
        // Others hold all but 64 KiB: the step waits for its 96 KiB, then is refused.
        let others = budget.take(MIB - 64 * 1024).await.unwrap();
        let refused = post(&budget, 0).await.expect_err("no room for the step");
        assert!(matches!(refused, GenerationError::Busy { .. }));
        drop(others);
        // With room it runs, and gives its share back when it is done.
        assert_eq!(post(&budget, 0).await.unwrap().len(), 1);
        assert_eq!(budget.available_bytes(), MIB);
        // Work that itself holds most of the budget is never made to wait on itself.
        let own = budget.take(MIB - 32 * 1024).await.unwrap();
        assert_eq!(post(&budget, own.bytes()).await.unwrap().len(), 1);
    }
}

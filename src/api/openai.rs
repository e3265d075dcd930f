//! OpenAI-compatible `POST /v1/images/generations` and `POST /v1/images/edits`, answering
//! in OpenAI's response and error shapes, so the official `openai` client works with a
//! `base_url` and an imagegate key. Keys, limits, usage and storage apply as everywhere.
//!
//! Mapping (documented in docs/openai-compat.md): `size` → nearest `aspect_ratio` and
//! `image_size` of the model; `n` → parallel upstream calls, at most the key's
//! concurrency at a time; `quality` `hd`/`high` → one size bucket up when `size` is
//! `auto`; `style` → a sentence in the prompt; OpenAI model names → the default model.

use axum::Json;
use axum::extract::{Multipart, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::api::AppState;
use crate::api::form::{Form, FormSpec};
use crate::api::generate::intake;
use crate::api::json::JsonBody;
use crate::api::signed;
use crate::caller::RequestContext;
use crate::error::ApiError;
use crate::generation::advanced::{self, Inpaint};
use crate::generation::params::{Options, Prompt, RawOptions, nearest_shape};
use crate::generation::{Outcome, PostProcess, Usage, requests};
use crate::imaging::{self, ImageFormat, InputImage};
use crate::provider::ProviderRequest;

/// OpenAI's own model names; requests naming them are served by the default model.
const OPENAI_MODELS: &[&str] = &[
    "dall-e-2",
    "dall-e-3",
    "gpt-image-1",
    "gpt-image-1-mini",
    "gpt-image-1.5",
];
const MAX_N: i64 = 10;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    B64,
    Url,
}

struct Plan {
    prompt: Prompt,
    n: usize,
    format: Format,
    options: Options,
}

/// The fields both endpoints share, as sent.
struct Fields {
    prompt: Option<String>,
    model: Option<String>,
    n: Option<i64>,
    size: Option<String>,
    response_format: Option<String>,
    quality: Option<String>,
    style: Option<String>,
}

fn parse_plan(
    state: &AppState,
    Fields {
        prompt,
        model,
        n,
        size,
        response_format,
        quality,
        style,
    }: Fields,
) -> Result<Plan, ApiError> {
    let style_sentence = match style.as_deref().map(str::trim) {
        None | Some("") => None,
        Some("vivid") => Some("Render it vivid: hyper-real, dramatic, saturated."),
        Some("natural") => Some("Render it natural: true-to-life, not hyper-real."),
        Some(other) => {
            return Err(
                ApiError::invalid("style", format!("Unknown style '{other}'."))
                    .detail("allowed", vec!["vivid", "natural"]),
            );
        }
    };
    let prompt = Prompt::parse("prompt", prompt, state.limits.max_prompt_chars)?;
    let prompt = match style_sentence {
        Some(s) => Prompt::parse(
            "prompt",
            Some(format!("{}\n\n{s}", prompt.as_str())),
            state.limits.max_prompt_chars + 100,
        )?,
        None => prompt,
    };
    let n = n.unwrap_or(1);
    if !(1..=MAX_N).contains(&n) {
        return Err(
            ApiError::invalid("n", format!("n must be between 1 and {MAX_N}."))
                .detail("min", 1)
                .detail("max", MAX_N),
        );
    }
    let format = match response_format.as_deref() {
        None | Some("b64_json") => Format::B64,
        Some("url") => Format::Url,
        Some(other) => {
            return Err(ApiError::invalid(
                "response_format",
                format!("Unknown response_format '{other}'."),
            )
            .detail("allowed", vec!["b64_json", "url"]));
        }
    };
    let model = model.filter(|m| !OPENAI_MODELS.contains(&m.as_str()));
    let mut options = RawOptions {
        model,
        ..RawOptions::default()
    }
    .parse(&state.models, &state.default_model)?;
    let quality = quality.as_deref().map(str::trim);
    if !matches!(
        quality,
        None | Some("auto" | "standard" | "hd" | "low" | "medium" | "high")
    ) {
        return Err(ApiError::invalid("quality", "Unknown quality.").detail(
            "allowed",
            vec!["auto", "standard", "hd", "low", "medium", "high"],
        ));
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
                    ApiError::invalid(
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
    Ok(Plan {
        prompt,
        n: n as usize,
        format,
        options,
    })
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenerationsBody {
    prompt: Option<String>,
    model: Option<String>,
    n: Option<i64>,
    size: Option<String>,
    response_format: Option<String>,
    quality: Option<String>,
    style: Option<String>,
    /// An end-user id for the caller's own abuse tracking; recorded nowhere else.
    user: Option<String>,
}

pub async fn generations(
    State(state): State<AppState>,
    ctx: RequestContext,
    headers: HeaderMap,
    JsonBody(body): JsonBody<GenerationsBody>,
) -> Result<Response, ApiError> {
    let _ = body.user;
    let fields = Fields {
        prompt: body.prompt,
        model: body.model,
        n: body.n,
        size: body.size,
        response_format: body.response_format,
        quality: body.quality,
        style: body.style,
    };
    let plan = parse_plan(&state, fields)?;
    let request = requests::text_to_image(plan.prompt.clone(), plan.options.clone());
    let outcomes = fan_out(&state, &ctx, copies(&request, plan.n)).await?;
    Ok(answer(&state, &headers, outcomes, plan.format))
}

fn copies(request: &ProviderRequest, n: usize) -> Vec<(ProviderRequest, Option<PostProcess>)> {
    (0..n).map(|_| (request.clone(), None)).collect()
}

/// Runs the generations, at most the key's concurrency at a time, in order.
async fn fan_out(
    state: &AppState,
    ctx: &RequestContext,
    runs: Vec<(ProviderRequest, Option<PostProcess>)>,
) -> Result<Vec<Outcome>, ApiError> {
    let parallel = state
        .access
        .tiers
        .get(&ctx.caller.tier)
        .map_or(1, |t| t.max_concurrent.max(1) as usize)
        .min(runs.len().max(1));
    let permits = std::sync::Arc::new(tokio::sync::Semaphore::new(parallel));
    let mut calls = Vec::with_capacity(runs.len());
    for (request, post) in runs {
        let (generator, ctx, permits) = (state.generator.clone(), ctx.clone(), permits.clone());
        calls.push(tokio::spawn(async move {
            let _permit = permits.acquire_owned().await.map_err(ApiError::internal)?;
            generator.run_with(&ctx, request, post).await
        }));
    }
    let mut outcomes = Vec::with_capacity(calls.len());
    for call in calls {
        outcomes.push(call.await.map_err(ApiError::internal)??);
    }
    Ok(outcomes)
}

fn answer(
    state: &AppState,
    headers: &HeaderMap,
    outcomes: Vec<Outcome>,
    format: Format,
) -> Response {
    let origin = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map_or_else(|| "http://localhost".to_owned(), |h| format!("http://{h}"));
    let mut usage = Usage {
        input_tokens: 0,
        output_tokens: 0,
        image_tokens: 0,
        thought_tokens: 0,
        cost_usd: 0.0,
    };
    let mut data = Vec::new();
    for outcome in &outcomes {
        let r = &outcome.response;
        usage.input_tokens += r.usage.input_tokens;
        usage.output_tokens += r.usage.output_tokens + r.usage.thought_tokens;
        usage.image_tokens += r.usage.image_tokens;
        usage.cost_usd += r.usage.cost_usd;
        for (image, id) in r.images.iter().zip(&r.image_ids) {
            data.push(match format {
                Format::B64 => json!({"b64_json": image, "revised_prompt": Value::Null}),
                Format::Url => json!({"url": format!("{origin}{}", signed::url(&state.url_signer, id, state.clock.now_ms())), "revised_prompt": Value::Null}),
            });
        }
    }
    let model = outcomes
        .first()
        .map(|o| o.response.model.clone())
        .unwrap_or_default();
    let body = json!({
        "created": state.clock.now_ms() / 1000,
        "data": data,
        "usage": {
            "input_tokens": usage.input_tokens,
            "output_tokens": usage.output_tokens,
            "total_tokens": usage.input_tokens + usage.output_tokens,
            "output_tokens_details": {"image_tokens": usage.image_tokens},
            "cost_usd": (usage.cost_usd * 1e6).round() / 1e6,
        },
    });
    let mut response = Json(body).into_response();
    if let Ok(v) = model.parse() {
        response.headers_mut().insert("x-imagegate-model", v);
    }
    response
}

const EDIT_FIELDS: &[&str] = &[
    "prompt",
    "model",
    "n",
    "size",
    "response_format",
    "quality",
    "style",
    "user",
];

pub async fn edits(
    State(state): State<AppState>,
    ctx: RequestContext,
    headers: HeaderMap,
    multipart: Multipart,
) -> Result<Response, ApiError> {
    let spec = FormSpec {
        text_fields: EDIT_FIELDS,
        file_fields: &["image", "image[]", "mask"],
        max_file_bytes: state.limits.max_file_bytes,
    };
    let mut form = Form::read(multipart, &spec).await?;
    let n = form.integer("n")?;
    let fields = Fields {
        prompt: form.text("prompt")?,
        model: form.text("model")?,
        n,
        size: form.text("size")?,
        response_format: form.text("response_format")?,
        quality: form.text("quality")?,
        style: form.text("style")?,
    };
    let plan = parse_plan(&state, fields)?;
    let mut files = form.files("image");
    files.extend(form.files("image[]"));
    let masks = form.files("mask");
    if files.is_empty() {
        return Err(
            ApiError::invalid("image", "The image is required.").detail("reason", "missing")
        );
    }
    if files.len() > 3 || masks.len() > 1 || (files.len() > 1 && !masks.is_empty()) {
        return Err(ApiError::invalid(
            "image",
            "Send one image (with an optional mask) or two to three images without a mask.",
        )
        .detail("count", files.len()));
    }
    let originals = files.clone();
    let images = intake(&state, "image", files).await?;
    let outcomes = match (images.len(), masks.into_iter().next()) {
        (1, Some(mask)) => {
            let mask = openai_mask(&state, mask).await?;
            let job = move || Inpaint {
                prompt: plan.prompt.clone(),
                region_description: None,
                image: images[0].clone(),
                original: originals[0].clone(),
                mask: Some(mask.clone()),
            };
            // The canvas work is done once per call; each call composites its own image.
            let options = plan.options.clone();
            let mut prepared = Vec::with_capacity(plan.n);
            for _ in 0..plan.n {
                let (job, options) = (job(), options.clone());
                prepared.push(
                    tokio::task::spawn_blocking(move || advanced::inpaint(job, options))
                        .await
                        .map_err(ApiError::internal)??,
                );
            }
            fan_out(&state, &ctx, prepared).await?
        }
        (1, None) => {
            let request = requests::edit(
                plan.prompt.clone(),
                images[0].clone(),
                None,
                false,
                plan.options.clone(),
            );
            fan_out(&state, &ctx, copies(&request, plan.n)).await?
        }
        _ => {
            let request =
                requests::compose(plan.prompt.clone(), images, "blend", plan.options.clone())?;
            fan_out(&state, &ctx, copies(&request, plan.n)).await?
        }
    };
    Ok(answer(&state, &headers, outcomes, plan.format))
}

/// OpenAI masks mark the area to edit as fully transparent; imagegate's masks mark it
/// white. Converts one into the other after the usual intake checks.
async fn openai_mask(state: &AppState, bytes: bytes::Bytes) -> Result<InputImage, ApiError> {
    let accepted = intake(state, "mask", vec![bytes])
        .await?
        .pop()
        .ok_or_else(|| ApiError::internal("intake lost the mask"))?;
    tokio::task::spawn_blocking(move || {
        let image = imaging::decode(&accepted.bytes).map_err(|e| ApiError::invalid("mask", "The mask could not be decoded.").caused_by(e))?;
        if !image.color().has_alpha() {
            return Err(ApiError::invalid("mask", "The mask must be a PNG with transparency: transparent where the image should change."));
        }
        let rgba = image.to_rgba8();
        let converted = image::GrayImage::from_fn(rgba.width(), rgba.height(), |x, y| {
            image::Luma([if rgba.get_pixel(x, y)[3] == 0 { 255 } else { 0 }])
        });
        let bytes = imaging::encode(&image::DynamicImage::ImageLuma8(converted), ImageFormat::Png).map_err(ApiError::internal)?;
        Ok(InputImage { format: ImageFormat::Png, bytes, width: rgba.width(), height: rgba.height(), original_size: (rgba.width(), rgba.height()) })
    })
    .await
    .map_err(ApiError::internal)?
}

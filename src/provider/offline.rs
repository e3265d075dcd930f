//! The `offline` provider: deterministic local images, no network, no model. It is the
//! default without a Google key and what demos and tests use, and it says so: every
//! result is labelled `"model": "offline"`.
//!
//! Its images still obey the request: output sizes follow the Gemini 3 size grid for
//! the requested aspect ratio and size (docs/upstream.md#models-and-limits), an edit is the input
//! image visibly tinted by the prompt, and a composition is made of its inputs laid out
//! per `composition_style`.

use async_trait::async_trait;
use image::{DynamicImage, Rgb, RgbImage, imageops};
use sha2::{Digest, Sha256};

use crate::generation::canvas::Placement;
use crate::imaging::{self, ImageFormat};
use crate::provider::effects;
use crate::provider::{
    Generated, ImageProvider, OutputImage, Part, ProviderError, ProviderRequest, Role, ServedAs,
    Task, TokenUsage, Turn,
};

pub const MODEL_NAME: &str = "offline";

pub struct OfflineProvider;

/// Output pixels for an aspect ratio and size, from the Gemini 3 grid: the 1K long side
/// per ratio, halved for 512 and doubled/quadrupled for 2K/4K.
pub fn output_size(aspect: Option<(u32, u32)>, size: Option<&str>) -> (u32, u32) {
    let (w, h) = match aspect.unwrap_or((1, 1)) {
        (2, 3) => (848, 1264),
        (3, 2) => (1264, 848),
        (3, 4) => (896, 1200),
        (4, 3) => (1200, 896),
        (4, 5) => (928, 1152),
        (5, 4) => (1152, 928),
        (9, 16) => (768, 1376),
        (16, 9) => (1376, 768),
        (21, 9) => (1584, 672),
        (1, 4) => (512, 2048),
        (4, 1) => (2048, 512),
        (1, 8) => (384, 3072),
        (8, 1) => (3072, 384),
        _ => (1024, 1024),
    };
    match size {
        Some("512") => (w / 2, h / 2),
        Some("2K") => (w * 2, h * 2),
        Some("4K") => (w * 4, h * 4),
        _ => (w, h),
    }
}

fn palette(seed: &[u8]) -> [Rgb<u8>; 3] {
    let d = Sha256::digest(seed);
    [
        Rgb([d[0], d[1], d[2]]),
        Rgb([d[3], d[4], d[5]]),
        Rgb([d[6] | 0x80, d[7] | 0x40, d[8]]),
    ]
}

fn mix(a: Rgb<u8>, b: Rgb<u8>, t: f32) -> Rgb<u8> {
    let t = t.clamp(0.0, 1.0);
    Rgb(std::array::from_fn(|i| {
        (f32::from(a[i]) * (1.0 - t) + f32::from(b[i]) * t).round() as u8
    }))
}

/// A gradient with a disc, both coloured from the prompt's hash.
fn render_scene(seed: &[u8], w: u32, h: u32) -> RgbImage {
    let [c1, c2, c3] = palette(seed);
    let (cx, cy) = (w as f32 * 0.62, h as f32 * 0.42);
    let r2 = (w.min(h) as f32 * 0.22).powi(2);
    RgbImage::from_fn(w, h, |x, y| {
        let dx = x as f32 - cx;
        let dy = y as f32 - cy;
        if dx * dx + dy * dy < r2 {
            c3
        } else {
            mix(c1, c2, (x + y) as f32 / (w + h) as f32)
        }
    })
}

/// Crops to the target's aspect ratio, then scales to it exactly.
fn fit(image: &DynamicImage, w: u32, h: u32) -> DynamicImage {
    let (iw, ih) = (image.width(), image.height());
    let target = w as f64 / h as f64;
    let (cw, ch) = if iw as f64 / ih as f64 > target {
        (((ih as f64) * target).round() as u32, ih)
    } else {
        (iw, ((iw as f64) / target).round() as u32)
    };
    let cropped = image.crop_imm(
        (iw - cw.min(iw)) / 2,
        (ih - ch.min(ih)) / 2,
        cw.max(1),
        ch.max(1),
    );
    cropped.resize_exact(w, h, imageops::FilterType::Triangle)
}

fn edit(input: &DynamicImage, seed: &[u8], strength: f64, preserve_subject: bool) -> DynamicImage {
    let [tint, _, _] = palette(seed);
    let alpha = 0.2 + 0.5 * strength as f32;
    let src = input.to_rgb8();
    let (w, h) = src.dimensions();
    let out = RgbImage::from_fn(w, h, |x, y| {
        let nx = (x as f32 / w as f32 - 0.5) / 0.3;
        let ny = (y as f32 / h as f32 - 0.5) / 0.3;
        let in_subject = preserve_subject && nx * nx + ny * ny < 1.0;
        let a = if in_subject { alpha * 0.25 } else { alpha };
        mix(*src.get_pixel(x, y), tint, a)
    });
    DynamicImage::ImageRgb8(out)
}

/// Tints only the pixels inside `region` towards the prompt's colour.
fn edit_within(image: &DynamicImage, region: Placement, seed: &[u8]) -> DynamicImage {
    let [tint, _, _] = palette(seed);
    let mut out = image.to_rgb8();
    for (x, y, pixel) in out.enumerate_pixels_mut() {
        if region.contains(x, y) {
            *pixel = mix(*pixel, tint, 0.45);
        }
    }
    DynamicImage::ImageRgb8(out)
}

fn compose(inputs: &[DynamicImage], style: &str) -> DynamicImage {
    let height = inputs
        .iter()
        .map(|i| i.height())
        .min()
        .unwrap_or(1)
        .clamp(1, 1024);
    let width = inputs
        .iter()
        .map(|i| i.width())
        .min()
        .unwrap_or(1)
        .clamp(1, 1024);
    let scaled_to_height = |i: &DynamicImage| {
        let w = (i.width() as f64 * height as f64 / i.height() as f64)
            .round()
            .max(1.0) as u32;
        i.resize_exact(w, height, imageops::FilterType::Triangle)
    };
    match style {
        "side_by_side" | "collage" => {
            let parts: Vec<_> = inputs.iter().map(scaled_to_height).collect();
            let total = parts.iter().map(|p| p.width()).sum();
            let mut canvas = DynamicImage::new_rgb8(total, height);
            let mut x = 0;
            for p in &parts {
                imageops::overlay(&mut canvas, p, i64::from(x), 0);
                x += p.width();
            }
            canvas
        }
        "stacked" => {
            let parts: Vec<_> = inputs
                .iter()
                .map(|i| {
                    let h = (i.height() as f64 * width as f64 / i.width() as f64)
                        .round()
                        .max(1.0) as u32;
                    i.resize_exact(width, h, imageops::FilterType::Triangle)
                })
                .collect();
            let total = parts.iter().map(|p| p.height()).sum();
            let mut canvas = DynamicImage::new_rgb8(width, total);
            let mut y = 0;
            for p in &parts {
                imageops::overlay(&mut canvas, p, 0, i64::from(y));
                y += p.height();
            }
            canvas
        }
        // blend and overlay: every input over the first's frame, averaged.
        _ => {
            let base = &inputs[0];
            let frames: Vec<RgbImage> = inputs
                .iter()
                .map(|i| fit(i, base.width(), base.height()).to_rgb8())
                .collect();
            let n = frames.len() as u32;
            let out = RgbImage::from_fn(base.width(), base.height(), |x, y| {
                Rgb(std::array::from_fn(|c| {
                    (frames
                        .iter()
                        .map(|f| u32::from(f.get_pixel(x, y)[c]))
                        .sum::<u32>()
                        / n) as u8
                }))
            });
            DynamicImage::ImageRgb8(out)
        }
    }
}

fn render(request: &ProviderRequest) -> Result<DynamicImage, String> {
    let prompt = request.prompt_text();
    let mut seed = prompt.as_bytes().to_vec();
    seed.extend_from_slice(&request.seed.unwrap_or(0).to_le_bytes());
    let mut inputs = request
        .input_images()
        .map(|(_, bytes)| imaging::decode(bytes).map_err(|e| e.to_string()))
        .collect::<Result<Vec<_>, _>>()?;
    // A chat turn without a new image refines the conversation's latest one.
    if inputs.is_empty()
        && request.task == Task::Chat
        && let Some((_, bytes)) = request.latest_image()
    {
        inputs.push(imaging::decode(bytes).map_err(|e| e.to_string())?);
    }
    let target = request.aspect_ratio.as_ref().map(|a| {
        output_size(
            Some(a.parts()),
            request.image_size.as_ref().map(|s| s.as_str()),
        )
    });
    let image = match (&request.task, inputs.as_slice()) {
        (Task::Compose { style }, [_, _, ..]) => compose(&inputs, style),
        (Task::StyleTransfer { style, strength }, [first, ..]) => {
            effects::apply_style(first, style, *strength)
        }
        (Task::Outpaint { original }, [canvas, ..]) => {
            effects::fill_around(canvas, *original, &seed)
        }
        (Task::Inpaint { region }, [first, ..]) => {
            // Without a mask the offline provider cannot read a region description;
            // it changes the central quarter, as documented.
            let region = region.unwrap_or(Placement {
                x: first.width() / 4,
                y: first.height() / 4,
                width: (first.width() / 2).max(1),
                height: (first.height() / 2).max(1),
            });
            let filled = effects::fill_region(first, region, &seed);
            edit_within(&filled, region, &seed)
        }
        (
            Task::Edit {
                strength,
                preserve_subject,
            },
            [first, ..],
        ) => edit(first, &seed, strength.unwrap_or(0.5), *preserve_subject),
        // A chat turn or any request carrying an image refines it.
        (_, [first, ..]) => edit(first, &seed, 0.5, false),
        (_, []) => {
            let (w, h) = target.unwrap_or_else(|| {
                output_size(None, request.image_size.as_ref().map(|s| s.as_str()))
            });
            return Ok(DynamicImage::ImageRgb8(render_scene(&seed, w, h)));
        }
    };
    // Outpainting keeps the grown canvas's own shape; the gateway composites onto it.
    Ok(match (target, &request.task) {
        (Some((w, h)), task) if !matches!(task, Task::Outpaint { .. }) => fit(&image, w, h),
        _ => image,
    })
}

#[async_trait]
impl ImageProvider for OfflineProvider {
    fn name(&self) -> &'static str {
        MODEL_NAME
    }

    async fn generate(&self, request: ProviderRequest) -> Result<Generated, ProviderError> {
        let want_text = request.modalities.text;
        let want_image = request.modalities.image;
        let served = ServedAs::of(&request);
        let summary: String = request.prompt_text().chars().take(80).collect();
        let bytes = if want_image {
            let encoded = tokio::task::spawn_blocking(move || {
                let image = render(&request)?;
                imaging::encode(&image, ImageFormat::Png).map_err(|e| e.to_string())
            })
            .await
            .map_err(|e| e.to_string())
            .and_then(|r| r)
            .map_err(|cause| ProviderError::BadResponse {
                status: None,
                message: "The offline provider could not render the image.".into(),
                cause,
            })?;
            Some(encoded)
        } else {
            None
        };
        let text =
            want_text.then(|| format!("Offline render of \"{summary}\". No model was called."));
        let mut parts = Vec::new();
        if let Some(t) = &text {
            parts.push(Part::text(t.clone()));
        }
        let images: Vec<OutputImage> = bytes
            .into_iter()
            .map(|bytes| {
                parts.push(Part::image(ImageFormat::Png, bytes.clone()));
                OutputImage {
                    format: ImageFormat::Png,
                    bytes,
                    base64: None,
                }
            })
            .collect();
        Ok(Generated {
            model: MODEL_NAME.into(),
            served,
            images,
            text,
            finish_reason: "STOP".into(),
            usage: TokenUsage::default(),
            model_turn: Turn {
                role: Role::Model,
                parts,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_follow_the_gemini_grid() {
        assert_eq!(output_size(Some((16, 9)), None), (1376, 768));
        assert_eq!(output_size(Some((16, 9)), Some("2K")), (2752, 1536));
        assert_eq!(output_size(None, Some("512")), (512, 512));
    }

    #[test]
    fn compositions_are_made_of_their_inputs() {
        let red = DynamicImage::ImageRgb8(RgbImage::from_pixel(40, 20, Rgb([255, 0, 0])));
        let blue = DynamicImage::ImageRgb8(RgbImage::from_pixel(40, 20, Rgb([0, 0, 255])));
        let side = compose(&[red.clone(), blue.clone()], "side_by_side").to_rgb8();
        assert_eq!(side.dimensions(), (80, 20));
        assert_eq!(side.get_pixel(5, 5), &Rgb([255, 0, 0]));
        assert_eq!(side.get_pixel(75, 5), &Rgb([0, 0, 255]));
        let blend = compose(&[red, blue], "blend").to_rgb8();
        assert_eq!(blend.get_pixel(5, 5), &Rgb([127, 0, 127]));
    }

    #[test]
    fn an_edit_is_derived_from_its_input() {
        let input =
            DynamicImage::ImageRgb8(RgbImage::from_fn(64, 64, |x, _| Rgb([(x * 4) as u8, 0, 0])));
        let out = edit(&input, b"make it blue", 0.1, false).to_rgb8();
        assert_eq!(out.dimensions(), (64, 64));
        // The input's left-to-right ramp survives a light edit.
        assert!(out.get_pixel(60, 10)[0] > out.get_pixel(2, 10)[0]);
    }
}

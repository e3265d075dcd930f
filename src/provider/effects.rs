//! Local image effects for the offline provider, which has no model: deterministic,
//! visibly different per style, and honest about being simple filters (posterising,
//! blurring, outlining, colour grading), not generated art.

use image::{
    DynamicImage, GenericImage, GrayImage, Luma, Pixel, Rgb, RgbImage, Rgba, RgbaImage, imageops,
};
use sha2::{Digest, Sha256};

use crate::generation::canvas::Placement;

/// Restyles `image` by a style's name (`Style::name()`: a preset name, or free text,
/// which gets a colour grade derived from its hash). `strength` (0–1) blends the
/// original into the effect; for `pixel_art` it sets the block size instead, since a
/// half-transparent pixelation reads as blur, not as pixel art. Same size as the input;
/// RGBA keeping the input's alpha when it has one, RGB otherwise.
pub fn apply_style(image: &DynamicImage, style_name: &str, strength: f64) -> DynamicImage {
    let strength = if strength.is_nan() {
        0.0
    } else {
        strength.clamp(0.0, 1.0) as f32
    };
    if strength == 0.0 || image.width() == 0 || image.height() == 0 {
        return image.clone();
    }
    let src = image.to_rgb8();
    let (styled, amount) = match style_name {
        "pixel_art" => (pixel_art(&src, strength), 1.0),
        other => (styled(&src, other), strength),
    };
    let blended = if amount < 1.0 {
        blend(&src, &styled, amount)
    } else {
        styled
    };
    if !image.color().has_alpha() {
        return DynamicImage::ImageRgb8(blended);
    }
    let alpha = image.to_rgba8();
    DynamicImage::ImageRgba8(RgbaImage::from_fn(
        blended.width(),
        blended.height(),
        |x, y| {
            let [r, g, b] = blended.get_pixel(x, y).0;
            Rgba([r, g, b, alpha.get_pixel(x, y)[3]])
        },
    ))
}

/// Every style but `pixel_art`, at full strength.
fn styled(src: &RgbImage, name: &str) -> RgbImage {
    let soft = |base: f32| imageops::fast_blur(src, sigma(src, base));
    match name {
        "pencil_sketch" => pencil_sketch(src),
        "watercolor" => map(&soft(1.5), |p| mix(posterize(p, 6), PAPER, 0.2)),
        "pop_art" => {
            let flat = map(src, |p| posterize(contrast(saturate(p, 2.2), 1.3), 3));
            outline(&flat, src, 60.0, Rgb([0, 0, 0]))
        }
        "ukiyo_e" => {
            let blurred = soft(1.0);
            let flat = map(&blurred, |p| {
                mix(saturate(posterize(p, 5), 0.8), Rgb([236, 222, 190]), 0.15)
            });
            outline(&flat, &blurred, 45.0, Rgb([30, 32, 58]))
        }
        "van_gogh" => {
            let graded = map(src, |p| {
                let l = luma(p) / 255.0;
                let p = mix(saturate(p, 1.5), Rgb([20, 45, 130]), (1.0 - l) * 0.35);
                posterize(mix(p, Rgb([250, 200, 40]), l * l * 0.3), 8)
            });
            outline(&graded, src, 80.0, Rgb([20, 30, 80]))
        }
        "monet" => map(&soft(2.0), |p| {
            contrast(mix(saturate(p, 1.1), Rgb([205, 192, 232]), 0.22), 0.85)
        }),
        "anime" => {
            let blurred = soft(0.8);
            let flat = map(&blurred, |p| saturate(posterize(p, 6), 1.35));
            outline(&flat, &blurred, 70.0, Rgb([15, 15, 25]))
        }
        "oil_painting" => map(&soft(1.0), |p| {
            let warm = Rgb([scale(p[0], 1.06), p[1], scale(p[2], 0.88)]);
            contrast(saturate(posterize(warm, 10), 1.2), 1.15)
        }),
        "art_deco" => map(src, |p| {
            let stops = [
                Rgb([15, 15, 20]),
                Rgb([20, 80, 90]),
                Rgb([212, 175, 55]),
                Rgb([245, 235, 210]),
            ];
            posterize(gradient_map(luma(p), &stops), 4)
        }),
        "cyberpunk" => map(src, |p| {
            let stops = [Rgb([8, 6, 36]), Rgb([255, 0, 170]), Rgb([0, 240, 255])];
            contrast(
                mix(saturate(p, 1.5), gradient_map(luma(p), &stops), 0.55),
                1.3,
            )
        }),
        "stained_glass" => {
            let cells = pixelate(src, (src.width().min(src.height()) / 16).max(3));
            let glass = map(&cells, |p| posterize(saturate(p, 1.8), 4));
            outline(&glass, &cells, 1.0, Rgb([25, 22, 20]))
        }
        free_text => colour_grade(src, free_text),
    }
}

const PAPER: Rgb<u8> = Rgb([250, 247, 240]);

/// Block size grows with strength: 2 px at the faintest, about 1/32 of the short side
/// more at full strength.
fn pixel_block(width: u32, height: u32, strength: f32) -> u32 {
    2 + (strength * width.min(height) as f32 / 32.0).round() as u32
}

fn pixel_art(src: &RgbImage, strength: f32) -> RgbImage {
    let blocks = pixelate(src, pixel_block(src.width(), src.height(), strength));
    map(&blocks, |p| saturate(posterize(p, 5), 1.2))
}

/// Graphite lines where the image has edges, light shading elsewhere, no colour.
fn pencil_sketch(src: &RgbImage) -> RgbImage {
    let edges = edge_strength(src);
    RgbImage::from_fn(src.width(), src.height(), |x, y| {
        let shade = 150.0 + 0.42 * luma(*src.get_pixel(x, y));
        let line = 255.0 - 2.5 * f32::from(edges.get_pixel(x, y)[0]);
        let v = shade.min(line).clamp(20.0, 250.0) as u8;
        Rgb([v, v, v])
    })
}

/// Per-channel gain, lift and saturation from the name's hash: the same words always
/// give the same look, different words visibly different ones.
fn colour_grade(src: &RgbImage, name: &str) -> RgbImage {
    let d = Sha256::digest(name.trim().to_lowercase().as_bytes());
    let unit = |b: u8| f32::from(b) / 255.0;
    let gain: [f32; 3] = std::array::from_fn(|i| 0.7 + 0.6 * unit(d[i]));
    let lift: [f32; 3] = std::array::from_fn(|i| 40.0 * unit(d[3 + i]) - 20.0);
    let sat = 0.5 + 1.2 * unit(d[6]);
    map(src, |p| {
        let p = saturate(p, sat);
        Rgb(std::array::from_fn(|i| {
            (f32::from(p[i]) * gain[i] + lift[i]).clamp(0.0, 255.0) as u8
        }))
    })
}

/// Fills `region` (a hole) so it continues its surroundings: each pixel blends the
/// nearest pixels just outside the region on each side, weighted by closeness, with a
/// slight seed-coloured gradient towards the middle. Sides at the image border are
/// ignored; a region covering the whole image becomes a seed-coloured gradient. Only
/// pixels inside the region change; the colour type is kept.
pub fn fill_region(image: &DynamicImage, region: Placement, seed: &[u8]) -> DynamicImage {
    let (w, h) = (image.width(), image.height());
    let x0 = region.x.min(w);
    let y0 = region.y.min(h);
    let x1 = region.x.saturating_add(region.width).min(w);
    let y1 = region.y.saturating_add(region.height).min(h);
    let src = image.to_rgba8();
    let (tint, far) = seed_colours(seed);
    let half = ((x1 - x0).min(y1 - y0) as f32 / 2.0).max(1.0);
    let mut out = image.clone();
    for y in y0..y1 {
        for x in x0..x1 {
            // The pixel just outside the region on each side, and how far away it is.
            let sides = [
                (x0 > 0).then(|| (*src.get_pixel(x0 - 1, y), x - x0 + 1)),
                (x1 < w).then(|| (*src.get_pixel(x1, y), x1 - x)),
                (y0 > 0).then(|| (*src.get_pixel(x, y0 - 1), y - y0 + 1)),
                (y1 < h).then(|| (*src.get_pixel(x, y1), y1 - y)),
            ];
            let pixel = match sides.iter().flatten().map(|(_, d)| *d).min() {
                None => {
                    let t = (x + y) as f32 / (w + h) as f32;
                    with_alpha(mix(tint, far, t), 255)
                }
                Some(nearest) => {
                    let total: f32 = sides.iter().flatten().map(|(_, d)| 1.0 / *d as f32).sum();
                    let channel = |c: usize| {
                        let sum: f32 = sides
                            .iter()
                            .flatten()
                            .map(|(p, d)| f32::from(p[c]) / *d as f32)
                            .sum();
                        (sum / total).round() as u8
                    };
                    let continued = Rgb([channel(0), channel(1), channel(2)]);
                    let depth = (nearest as f32 / half).min(1.0);
                    with_alpha(mix(continued, tint, 0.2 * depth), channel(3))
                }
            };
            out.put_pixel(x, y, pixel);
        }
    }
    out
}

/// Fills everything outside `known` (the original on a grown outpaint canvas) by
/// continuing its nearest edge pixel outwards, growing softer and slightly seed-tinted
/// with distance, so the result reads as an extension of the picture. Pixels inside
/// `known` are left as they are; the colour type is kept.
pub fn fill_around(image: &DynamicImage, known: Placement, seed: &[u8]) -> DynamicImage {
    let (w, h) = (image.width(), image.height());
    let kx1 = known.x.saturating_add(known.width).min(w);
    let ky1 = known.y.saturating_add(known.height).min(h);
    if known.x >= kx1 || known.y >= ky1 {
        return fill_region(
            image,
            Placement {
                x: 0,
                y: 0,
                width: w,
                height: h,
            },
            seed,
        );
    }
    let sharp = image
        .crop_imm(known.x, known.y, kx1 - known.x, ky1 - known.y)
        .to_rgba8();
    let soft = imageops::fast_blur(
        &sharp,
        (sharp.width().min(sharp.height()) as f32 / 12.0).max(1.0),
    );
    let (tint, _) = seed_colours(seed);
    let reach = known.x.max(known.y).max(w - kx1).max(h - ky1).max(1) as f32;
    let mut out = image.clone();
    for y in 0..h {
        for x in 0..w {
            let cx = x.clamp(known.x, kx1 - 1);
            let cy = y.clamp(known.y, ky1 - 1);
            if (cx, cy) == (x, y) {
                continue;
            }
            let t = (x.abs_diff(cx).max(y.abs_diff(cy)) as f32 / reach).min(1.0);
            let (a, b) = (
                sharp.get_pixel(cx - known.x, cy - known.y),
                soft.get_pixel(cx - known.x, cy - known.y),
            );
            let continued = mix(Rgb([a[0], a[1], a[2]]), Rgb([b[0], b[1], b[2]]), t.sqrt());
            out.put_pixel(x, y, with_alpha(mix(continued, tint, 0.2 * t), a[3]));
        }
    }
    out
}

fn seed_colours(seed: &[u8]) -> (Rgb<u8>, Rgb<u8>) {
    let d = Sha256::digest(seed);
    (Rgb([d[0], d[1], d[2]]), Rgb([d[3], d[4], d[5]]))
}

fn with_alpha(p: Rgb<u8>, alpha: u8) -> Rgba<u8> {
    Rgba([p[0], p[1], p[2], alpha])
}

// ---- building blocks -----------------------------------------------------------------

/// A blur radius relative to the image, so a style looks alike at any resolution.
fn sigma(image: &RgbImage, per_256_px: f32) -> f32 {
    (per_256_px * image.width().min(image.height()) as f32 / 256.0).max(0.5)
}

fn map(image: &RgbImage, f: impl Fn(Rgb<u8>) -> Rgb<u8>) -> RgbImage {
    RgbImage::from_fn(image.width(), image.height(), |x, y| {
        f(*image.get_pixel(x, y))
    })
}

fn blend(from: &RgbImage, to: &RgbImage, amount: f32) -> RgbImage {
    RgbImage::from_fn(from.width(), from.height(), |x, y| {
        mix(*from.get_pixel(x, y), *to.get_pixel(x, y), amount)
    })
}

fn mix(a: Rgb<u8>, b: Rgb<u8>, t: f32) -> Rgb<u8> {
    let t = t.clamp(0.0, 1.0);
    Rgb(std::array::from_fn(|i| {
        (f32::from(a[i]) * (1.0 - t) + f32::from(b[i]) * t).round() as u8
    }))
}

fn luma(p: Rgb<u8>) -> f32 {
    0.299 * f32::from(p[0]) + 0.587 * f32::from(p[1]) + 0.114 * f32::from(p[2])
}

fn scale(v: u8, factor: f32) -> u8 {
    (f32::from(v) * factor).clamp(0.0, 255.0) as u8
}

fn posterize(p: Rgb<u8>, levels: u8) -> Rgb<u8> {
    let steps = f32::from(levels.max(2) - 1);
    p.map(|v| ((f32::from(v) / 255.0 * steps).round() / steps * 255.0).round() as u8)
}

/// Moves each channel away from (factor > 1) or towards (< 1) the pixel's grey.
fn saturate(p: Rgb<u8>, factor: f32) -> Rgb<u8> {
    let l = luma(p);
    p.map(|v| (l + (f32::from(v) - l) * factor).clamp(0.0, 255.0) as u8)
}

fn contrast(p: Rgb<u8>, factor: f32) -> Rgb<u8> {
    p.map(|v| (128.0 + (f32::from(v) - 128.0) * factor).clamp(0.0, 255.0) as u8)
}

/// Maps brightness onto evenly spaced colour stops, darkest first.
fn gradient_map(l: f32, stops: &[Rgb<u8>]) -> Rgb<u8> {
    let span = (stops.len().max(2) - 1) as f32;
    let pos = (l / 255.0).clamp(0.0, 1.0) * span;
    let i = (pos.floor() as usize).min(stops.len().saturating_sub(2));
    match (stops.get(i), stops.get(i + 1)) {
        (Some(a), Some(b)) => mix(*a, *b, pos - i as f32),
        (Some(a), None) => *a,
        _ => Rgb([0, 0, 0]),
    }
}

/// Each `block`×`block` square (aligned to the top-left corner) becomes its mean colour.
fn pixelate(src: &RgbImage, block: u32) -> RgbImage {
    let block = block.max(1);
    let (w, h) = src.dimensions();
    let mut out = RgbImage::new(w, h);
    for by in (0..h).step_by(block as usize) {
        for bx in (0..w).step_by(block as usize) {
            let (bw, bh) = (block.min(w - bx), block.min(h - by));
            let mut sum = [0u64; 3];
            for y in by..by + bh {
                for x in bx..bx + bw {
                    for (s, v) in sum.iter_mut().zip(src.get_pixel(x, y).0) {
                        *s += u64::from(v);
                    }
                }
            }
            let n = u64::from(bw * bh);
            let mean = Rgb(sum.map(|s| (s / n) as u8));
            for y in by..by + bh {
                for x in bx..bx + bw {
                    out.put_pixel(x, y, mean);
                }
            }
        }
    }
    out
}

/// Brightness gradient (0–255) by central differences, borders clamped.
fn edge_strength(src: &RgbImage) -> GrayImage {
    let (w, h) = src.dimensions();
    let l = |x: u32, y: u32| luma(*src.get_pixel(x.min(w - 1), y.min(h - 1)));
    GrayImage::from_fn(w, h, |x, y| {
        let gx = l(x + 1, y) - l(x.saturating_sub(1), y);
        let gy = l(x, y + 1) - l(x, y.saturating_sub(1));
        Luma([(gx.abs() + gy.abs()).min(255.0) as u8])
    })
}

/// Draws `colour` over `image` wherever `edges_of` has an edge stronger than `threshold`.
fn outline(image: &RgbImage, edges_of: &RgbImage, threshold: f32, colour: Rgb<u8>) -> RgbImage {
    let edges = edge_strength(edges_of);
    RgbImage::from_fn(image.width(), image.height(), |x, y| {
        if f32::from(edges.get_pixel(x, y)[0]) >= threshold {
            colour
        } else {
            *image.get_pixel(x, y)
        }
    })
}

#[cfg(test)]
#[path = "effects_tests.rs"]
mod tests;

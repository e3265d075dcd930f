//! Canvas work for outpaint and inpaint, done by the gateway rather than trusted to the
//! model: growing the canvas before the call, and pasting the original back afterwards
//! so that what the client did not ask to change comes back pixel for pixel.
//!
//! Every composite keeps the original's colour type (8- or 16-bit, with or without
//! alpha): the model's output is converted into it and the original's own pixels are
//! copied, never converted, so "unchanged" holds exactly.

use std::io::Cursor;

use image::{DynamicImage, ImageBuffer, ImageReader, Pixel, Rgba, RgbaImage, imageops};

use crate::generation::GenerationError;
use crate::imaging::{self, ImageFormat};

/// The flat colour of new outpaint canvas: mid-grey, opaque. Flat and neutral so the
/// model sees exactly which area is empty; prompts name it (see `styles::outpaint_prompt`).
pub const NEUTRAL_FILL: [u8; 3] = [128, 128, 128];

/// How [`mask_overlay`] marks the region, in words the inpaint prompt can repeat.
pub const MASK_OVERLAY_DESCRIPTION: &str = "tinted magenta and outlined with a solid magenta line";

const OVERLAY_COLOUR: [u8; 3] = [255, 0, 255];

/// A mask pixel at least this bright (0–255 luma) marks a pixel to change; anti-aliased
/// or resampled mask edges fall on the side of their majority.
pub const MASK_THRESHOLD: u8 = 128;

/// Masks are refused above this many pixels before decoding (decompression bombs);
/// the same figure as the default input-image limit.
const MAX_MASK_PIXELS: u64 = 50_000_000;

const DIRECTIONS: [&str; 4] = ["top", "bottom", "left", "right"];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Directions {
    pub top: bool,
    pub bottom: bool,
    pub left: bool,
    pub right: bool,
}

impl Directions {
    pub const ALL: Self = Self {
        top: true,
        bottom: true,
        left: true,
        right: true,
    };

    /// Any of `top`, `bottom`, `left`, `right`, case-insensitive; none at all means all four.
    pub fn parse(values: Option<&[String]>) -> Result<Self, GenerationError> {
        let mut out = Self::default();
        for value in values.unwrap_or_default() {
            match value.trim().to_ascii_lowercase().as_str() {
                "" => {}
                "top" => out.top = true,
                "bottom" => out.bottom = true,
                "left" => out.left = true,
                "right" => out.right = true,
                _ => {
                    return Err(GenerationError::invalid(
                        "direction",
                        format!("Unknown direction '{value}'. Use top, bottom, left and/or right."),
                    )
                    .detail("allowed", DIRECTIONS.to_vec()));
                }
            }
        }
        Ok(if out == Self::default() {
            Self::ALL
        } else {
            out
        })
    }

    /// The named sides in a fixed order (top, bottom, left, right).
    pub fn names(&self) -> Vec<&'static str> {
        [self.top, self.bottom, self.left, self.right]
            .into_iter()
            .zip(DIRECTIONS)
            .filter_map(|(on, name)| on.then_some(name))
            .collect()
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ExtensionRatio(f64);

impl ExtensionRatio {
    pub const MIN: f64 = 0.1;
    pub const MAX: f64 = 2.0;
    pub const DEFAULT: f64 = 0.5;

    pub fn parse(value: Option<f64>) -> Result<Self, GenerationError> {
        let v = value.unwrap_or(Self::DEFAULT);
        if v.is_finite() && (Self::MIN..=Self::MAX).contains(&v) {
            return Ok(Self(v));
        }
        let shown = if v.is_finite() {
            v.into()
        } else {
            serde_json::Value::Null
        };
        Err(GenerationError::invalid(
            "extension_ratio",
            format!(
                "The extension_ratio must be between {} and {}.",
                Self::MIN,
                Self::MAX
            ),
        )
        .detail("min", Self::MIN)
        .detail("max", Self::MAX)
        .detail("value", shown))
    }

    pub fn get(&self) -> f64 {
        self.0
    }
}

/// A rectangle in image coordinates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placement {
    pub x: u32,
    pub y: u32,
    pub width: u32,
    pub height: u32,
}

impl Placement {
    pub fn contains(&self, x: u32, y: u32) -> bool {
        x >= self.x && y >= self.y && x - self.x < self.width && y - self.y < self.height
    }
}

pub struct GrownCanvas {
    /// The original on a larger canvas of its colour type, the new area [`NEUTRAL_FILL`].
    pub image: DynamicImage,
    /// Where the original sits in `image`.
    pub original: Placement,
}

fn grow_by(ratio: f64, size: u32) -> u32 {
    (ratio * f64::from(size)).round() as u32
}

/// Pixels added on the (left, right, top, bottom) sides.
fn margins(w: u32, h: u32, directions: Directions, ratio: &ExtensionRatio) -> (u32, u32, u32, u32) {
    let add_x = grow_by(ratio.get(), w);
    let add_y = grow_by(ratio.get(), h);
    let side = |on: bool, add: u32| if on { add } else { 0 };
    (
        side(directions.left, add_x),
        side(directions.right, add_x),
        side(directions.top, add_y),
        side(directions.bottom, add_y),
    )
}

/// The size [`grow_canvas`] will produce, known before any pixel is allocated.
pub fn grown_size(w: u32, h: u32, directions: Directions, ratio: &ExtensionRatio) -> (u32, u32) {
    let (left, right, top, bottom) = margins(w, h, directions, ratio);
    (w + left + right, h + top + bottom)
}

/// Grows each named side by round(ratio × that axis' size): left and right each add
/// ratio × width, top and bottom each add ratio × height.
pub fn grow_canvas(
    image: &DynamicImage,
    directions: Directions,
    ratio: &ExtensionRatio,
) -> GrownCanvas {
    let (w, h) = (image.width(), image.height());
    let (left, right, top, bottom) = margins(w, h, directions, ratio);
    let [r, g, b] = NEUTRAL_FILL;
    let fill = DynamicImage::ImageRgba8(RgbaImage::from_pixel(
        w + left + right,
        h + top + bottom,
        Rgba([r, g, b, 255]),
    ));
    let original = Placement {
        x: left,
        y: top,
        width: w,
        height: h,
    };
    GrownCanvas {
        image: paste_over(&fill, image, original, |_, _| true),
        original,
    }
}

/// Scales the model's output (any size) to the grown canvas, then pastes the original
/// back at its placement, so the original region comes back exactly as sent.
pub fn composite_outpaint(
    model_output: &DynamicImage,
    grown: &GrownCanvas,
    original: &DynamicImage,
) -> DynamicImage {
    let base = scaled_to(model_output, grown.image.width(), grown.image.height());
    paste_over(&base, original, grown.original, |_, _| true)
}

/// Which pixels of an image to change: white in the client's mask.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mask {
    width: u32,
    height: u32,
    changed: Vec<bool>,
}

impl Mask {
    /// Decodes the client's mask (PNG, or JPEG/WebP recognised by their bytes) for an
    /// image of `width` × `height`. A pixel is to change when its luma is at least
    /// [`MASK_THRESHOLD`] and, where the mask has alpha, it is not fully transparent.
    /// A mask of another size is scaled to the image, nearest-neighbour.
    pub fn from_png(bytes: &[u8], width: u32, height: u32) -> Result<Mask, GenerationError> {
        let unreadable = |cause: String| {
            GenerationError::invalid(
                "mask",
                "The mask could not be decoded. Send a PNG: white where the image should change, black elsewhere.",
            )
            .detail("reason", "undecodable")
            .caused_by(cause)
        };
        let format =
            ImageFormat::sniff(bytes).ok_or_else(|| unreadable("unrecognised format".into()))?;
        // Header only: refuse decompression bombs before allocating any pixels.
        let (mw, mh) = ImageReader::new(Cursor::new(bytes))
            .with_guessed_format()
            .map_err(|e| unreadable(e.to_string()))?
            .into_dimensions()
            .map_err(|e| unreadable(e.to_string()))?;
        if mw == 0 || mh == 0 || u64::from(mw) * u64::from(mh) > MAX_MASK_PIXELS {
            return Err(GenerationError::invalid(
                "mask",
                "The mask's dimensions are too large to process.",
            )
            .detail("width", mw)
            .detail("height", mh)
            .detail("max_pixels", MAX_MASK_PIXELS));
        }
        let decoded = imaging::decode_with_limits(bytes, format, MAX_MASK_PIXELS)
            .map_err(|e| unreadable(e.to_string()))?
            .to_luma_alpha8();
        let mask = Self::from_fn(width, height, |x, y| {
            let p = decoded.get_pixel(nearest(x, width, mw), nearest(y, height, mh));
            p[0] >= MASK_THRESHOLD && p[1] > 0
        });
        if mask.changed_pixels() == 0 {
            return Err(GenerationError::invalid(
                "mask",
                "The mask marks nothing to change. Paint the area to edit white (black keeps the image).",
            )
            .detail("reason", "empty"));
        }
        Ok(mask)
    }

    /// A mask from a predicate, for callers that already know the region (the offline
    /// provider, tests). Unlike [`Mask::from_png`] it accepts an empty mask.
    pub fn from_fn(width: u32, height: u32, changed: impl Fn(u32, u32) -> bool) -> Mask {
        let changed = (0..height)
            .flat_map(|y| (0..width).map(move |x| (x, y)))
            .map(|(x, y)| changed(x, y))
            .collect();
        Mask {
            width,
            height,
            changed,
        }
    }

    pub fn dimensions(&self) -> (u32, u32) {
        (self.width, self.height)
    }

    pub fn changed_pixels(&self) -> u64 {
        self.changed.iter().filter(|c| **c).count() as u64
    }

    /// The smallest rectangle holding every pixel to change; `None` for an empty mask.
    pub fn bounding_box(&self) -> Option<Placement> {
        let mut bounds: Option<(u32, u32, u32, u32)> = None;
        for (x, y) in self.changed_positions() {
            bounds = Some(match bounds {
                None => (x, y, x, y),
                Some((x0, y0, x1, y1)) => (x0.min(x), y0.min(y), x1.max(x), y1.max(y)),
            });
        }
        bounds.map(|(x0, y0, x1, y1)| Placement {
            x: x0,
            y: y0,
            width: x1 - x0 + 1,
            height: y1 - y0 + 1,
        })
    }

    /// False outside the mask's own size, so an ill-sized mask never changes a pixel.
    pub fn contains(&self, x: u32, y: u32) -> bool {
        x < self.width
            && y < self.height
            && self.changed[(y as usize) * (self.width as usize) + x as usize]
    }

    fn changed_positions(&self) -> impl Iterator<Item = (u32, u32)> + '_ {
        let w = self.width.max(1) as usize;
        self.changed
            .iter()
            .enumerate()
            .filter(|(_, c)| **c)
            .map(move |(i, _)| ((i % w) as u32, (i / w) as u32))
    }
}

/// The source index sampled by nearest-neighbour scaling (pixel centres aligned).
fn nearest(i: u32, target: u32, source: u32) -> u32 {
    let scaled = (2 * u64::from(i) + 1) * u64::from(source) / (2 * u64::from(target));
    (scaled as u32).min(source - 1)
}

/// Every pixel outside the mask is the original's, exactly; inside, the model's output
/// scaled to the original's size.
pub fn composite_inpaint(
    original: &DynamicImage,
    model_output: &DynamicImage,
    mask: &Mask,
) -> DynamicImage {
    let (w, h) = (original.width(), original.height());
    let base = scaled_to(model_output, w, h);
    let whole = Placement {
        x: 0,
        y: 0,
        width: w,
        height: h,
    };
    paste_over(&base, original, whole, |x, y| !mask.contains(x, y))
}

/// A copy of the original with the region to change tinted and outlined in magenta (see
/// [`MASK_OVERLAY_DESCRIPTION`]), sent as a second image to show the model where to edit.
/// RGBA when the original has alpha, RGB otherwise.
pub fn mask_overlay(original: &DynamicImage, mask: &Mask) -> DynamicImage {
    let mut out = original.to_rgba8();
    let tint = Rgba([OVERLAY_COLOUR[0], OVERLAY_COLOUR[1], OVERLAY_COLOUR[2], 255]);
    for (x, y) in mask.changed_positions() {
        let Some(pixel) = out.get_pixel_mut_checked(x, y) else {
            continue;
        };
        // The outline is the mask's own edge: a changed pixel with an unchanged neighbour.
        let on_edge = x == 0
            || y == 0
            || !mask.contains(x - 1, y)
            || !mask.contains(x + 1, y)
            || !mask.contains(x, y - 1)
            || !mask.contains(x, y + 1);
        if on_edge {
            *pixel = tint;
        } else {
            // Half-and-half keeps the content readable under the tint.
            pixel.apply2(&tint, |a, b| ((u16::from(a) + u16::from(b)) / 2) as u8);
            pixel[3] = 255;
        }
    }
    if original.color().has_alpha() {
        DynamicImage::ImageRgba8(out)
    } else {
        DynamicImage::ImageRgb8(DynamicImage::ImageRgba8(out).to_rgb8())
    }
}

fn scaled_to(image: &DynamicImage, w: u32, h: u32) -> DynamicImage {
    if (image.width(), image.height()) == (w, h) {
        image.clone()
    } else {
        image.resize_exact(w, h, imageops::FilterType::CatmullRom)
    }
}

/// `base` converted to `original`'s colour type, with `original`'s pixels copied in at
/// `at` wherever `keep(x, y)` (in original coordinates) holds. An original whose size
/// differs from `at` is scaled to it first, so a caller's mismatch cannot panic.
fn paste_over(
    base: &DynamicImage,
    original: &DynamicImage,
    at: Placement,
    keep: impl Fn(u32, u32) -> bool,
) -> DynamicImage {
    let original = scaled_to(original, at.width, at.height);
    use DynamicImage as D;
    match &original {
        D::ImageLuma8(o) => D::ImageLuma8(copy_where(base.to_luma8(), o, at, keep)),
        D::ImageLumaA8(o) => D::ImageLumaA8(copy_where(base.to_luma_alpha8(), o, at, keep)),
        D::ImageRgb8(o) => D::ImageRgb8(copy_where(base.to_rgb8(), o, at, keep)),
        D::ImageRgba8(o) => D::ImageRgba8(copy_where(base.to_rgba8(), o, at, keep)),
        D::ImageLuma16(o) => D::ImageLuma16(copy_where(base.to_luma16(), o, at, keep)),
        D::ImageLumaA16(o) => D::ImageLumaA16(copy_where(base.to_luma_alpha16(), o, at, keep)),
        D::ImageRgb16(o) => D::ImageRgb16(copy_where(base.to_rgb16(), o, at, keep)),
        D::ImageRgba16(o) => D::ImageRgba16(copy_where(base.to_rgba16(), o, at, keep)),
        D::ImageRgb32F(o) => D::ImageRgb32F(copy_where(base.to_rgb32f(), o, at, keep)),
        D::ImageRgba32F(o) => D::ImageRgba32F(copy_where(base.to_rgba32f(), o, at, keep)),
        // `DynamicImage` is non-exhaustive: a future colour type goes through RGBA8.
        other => D::ImageRgba8(copy_where(base.to_rgba8(), &other.to_rgba8(), at, keep)),
    }
}

fn copy_where<P: Pixel>(
    mut base: ImageBuffer<P, Vec<P::Subpixel>>,
    original: &ImageBuffer<P, Vec<P::Subpixel>>,
    at: Placement,
    keep: impl Fn(u32, u32) -> bool,
) -> ImageBuffer<P, Vec<P::Subpixel>> {
    for (x, y, pixel) in original.enumerate_pixels() {
        if keep(x, y)
            && let Some(target) = base.get_pixel_mut_checked(at.x + x, at.y + y)
        {
            *target = *pixel;
        }
    }
    base
}

#[cfg(test)]
#[path = "canvas_tests.rs"]
mod tests;

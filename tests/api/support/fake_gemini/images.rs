//! Cheap but real output images: a smooth, blocky gradient in one of a few colours, encoded once
//! per (size, colour, format) and cached process-wide so a test suite encodes each size once.

use std::collections::HashMap;
use std::io::Cursor;
use std::sync::{Arc, Mutex, OnceLock};

use image::codecs::png::{CompressionType, FilterType, PngEncoder};
use image::{ExtendedColorType, ImageEncoder};
use sha2::{Digest, Sha256};

use super::{jpeg, lock};

/// Few colours so that different prompts mostly hit the cache, yet enough to tell images apart.
pub const PALETTE_SIZE: u8 = 24;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Format {
    Jpeg,
    Png,
}

impl Format {
    pub fn mime(self) -> &'static str {
        match self {
            Format::Jpeg => "image/jpeg",
            Format::Png => "image/png",
        }
    }
}

type Key = (u32, u32, u8, Format);

fn cache() -> &'static Mutex<HashMap<Key, Arc<Vec<u8>>>> {
    static CACHE: OnceLock<Mutex<HashMap<Key, Arc<Vec<u8>>>>> = OnceLock::new();
    CACHE.get_or_init(Mutex::default)
}

/// Palette index derived from the prompt, so the same prompt always gives the same picture.
pub fn colour_for(text: &str) -> u8 {
    Sha256::digest(text.as_bytes())[0] % PALETTE_SIZE
}

/// A colour guaranteed to differ from `colour` (for interim thought images and second images).
pub fn other_colour(colour: u8, step: u8) -> u8 {
    (colour + step) % PALETTE_SIZE
}

/// Encoded image bytes; encoding runs on the blocking pool because large images take a while.
pub async fn render(width: u32, height: u32, colour: u8, format: Format) -> Arc<Vec<u8>> {
    let key = (width, height, colour, format);
    if let Some(hit) = lock(cache()).get(&key) {
        return Arc::clone(hit);
    }
    let encoded = tokio::task::spawn_blocking(move || encode(width, height, colour, format))
        .await
        .expect("image encoding task panicked");
    let encoded = Arc::new(encoded);
    lock(cache()).insert(key, Arc::clone(&encoded));
    encoded
}

fn encode(width: u32, height: u32, colour: u8, format: Format) -> Vec<u8> {
    let base = hue_rgb(f32::from(colour) / f32::from(PALETTE_SIZE));
    let block = |bx: u32, by: u32| block_colour(base, bx, by, width, height);
    match format {
        Format::Jpeg => jpeg::encode_blocks(width, height, block),
        Format::Png => {
            let mut out = Cursor::new(Vec::new());
            PngEncoder::new_with_quality(&mut out, CompressionType::Fast, FilterType::Sub)
                .write_image(
                    &pixels(width, height, block),
                    width,
                    height,
                    ExtendedColorType::Rgb8,
                )
                .expect("encoding an in-memory RGB image cannot fail");
            out.into_inner()
        }
    }
}

/// Colour of the 8×8 block at (`bx`, `by`): a hue-tinted ramp, lighter to the right and darker
/// towards the bottom.
fn block_colour(base: [f32; 3], bx: u32, by: u32, width: u32, height: u32) -> [u8; 3] {
    let x = (bx * 8 + 4) as f32 / width as f32;
    let y = (by * 8 + 4) as f32 / height as f32;
    let light = (1.0 - 0.5 * y) * (0.45 + 0.55 * x);
    base.map(|value| (value * light * 255.0).clamp(0.0, 255.0) as u8)
}

/// RGB pixels of the same blocky gradient. Each 8-row band is computed once and copied: this
/// code is built unoptimised in tests.
fn pixels(width: u32, height: u32, block: impl Fn(u32, u32) -> [u8; 3]) -> Vec<u8> {
    let (w, h) = (width as usize, height as usize);
    let mut pixels = Vec::with_capacity(w * h * 3);
    let mut row = Vec::with_capacity(w * 3);
    for y in 0..height {
        if y % 8 == 0 {
            row.clear();
            row.extend((0..width).flat_map(|x| block(x / 8, y / 8)));
        }
        pixels.extend_from_slice(&row);
    }
    pixels
}

/// Fully saturated colour for a hue in [0, 1).
fn hue_rgb(hue: f32) -> [f32; 3] {
    let h = hue * 6.0;
    let x = 1.0 - (h % 2.0 - 1.0).abs();
    match h as u32 {
        0 => [1.0, x, 0.0],
        1 => [x, 1.0, 0.0],
        2 => [0.0, 1.0, x],
        3 => [0.0, x, 1.0],
        4 => [x, 0.0, 1.0],
        _ => [1.0, 0.0, x],
    }
}

//! Synthetic pictures for the benchmarks, shared by `benches/imaging.rs` and
//! `examples/bench_upstream.rs`: smooth gradients (so JPEG has something photographic to
//! keep) with seeded noise in the low bits (so PNG cannot compress them away: a 1024² PNG
//! comes out at about 1.5 MB, the size Gemini's are).

use std::io::Cursor;

use image::codecs::jpeg::JpegEncoder;
use image::codecs::png::{CompressionType, FilterType, PngEncoder};
use image::{ImageEncoder, Rgb, RgbImage};

/// Low bits of noise per sample that bring a 1024² PNG to about 1.5 MB.
pub const PNG_NOISE_BITS: u32 = 3;
/// Enough noise for a JPEG of photographic size (about 1.2 MB at 2048² and quality 90).
pub const JPEG_NOISE_BITS: u32 = 4;

/// A gradient picture with `noise_bits` of deterministic noise in every sample.
pub fn picture(width: u32, height: u32, noise_bits: u32) -> RgbImage {
    let mask = (1u32 << noise_bits) - 1;
    RgbImage::from_fn(width, height, |x, y| {
        // A stateless hash of the position (splitmix64's finaliser): the same picture
        // every run, with no generator state to carry.
        let mut h = (u64::from(y) << 32 | u64::from(x)).wrapping_add(0x9e37_79b9_7f4a_7c15);
        h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        h ^= h >> 31;
        let noise = |shift: u32| ((h >> shift) as u32 & mask) as i64 - i64::from(mask / 2);
        let (fx, fy) = (
            f64::from(x) / f64::from(width),
            f64::from(y) / f64::from(height),
        );
        // Three slow waves, one per channel, so neighbouring pixels are alike.
        let wave = |a: f64, b: f64| {
            (127.5 + 100.0 * ((a * fx + b * fy) * std::f64::consts::TAU).sin()) as i64
        };
        let channel = |base: i64, shift: u32| (base + noise(shift)).clamp(0, 255) as u8;
        Rgb([
            channel(wave(1.0, 0.3), 0),
            channel(wave(0.4, 1.7), 16),
            channel(wave(2.2, -0.8), 32),
        ])
    })
}

pub fn png(picture: &RgbImage) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    PngEncoder::new_with_quality(&mut out, CompressionType::Default, FilterType::Adaptive)
        .write_image(
            picture.as_raw(),
            picture.width(),
            picture.height(),
            image::ExtendedColorType::Rgb8,
        )
        .expect("encoding a PNG in memory cannot fail");
    out.into_inner()
}

pub fn jpeg(picture: &RgbImage, quality: u8) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    JpegEncoder::new_with_quality(&mut out, quality)
        .write_image(
            picture.as_raw(),
            picture.width(),
            picture.height(),
            image::ExtendedColorType::Rgb8,
        )
        .expect("encoding a JPEG in memory cannot fail");
    out.into_inner()
}

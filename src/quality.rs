//! Quality metrics for a generated image: the user's guide's `assess_image_quality` and its
//! score ("Quality Scoring"; docs/api.md#the-guide), matching NumPy on the pixels Pillow would
//! decode to within 1e-6 relative.
//!
//! The guide runs NumPy on `np.array(PIL.Image.open(..))`, so the channels are the ones Pillow
//! gives, not the ones the `image` crate gives:
//! - RGB stays 3 channels and RGBA 4; alpha counts in every statistic.
//! - A PNG without an alpha channel but with a tRNS chunk keeps its channels (Pillow leaves the
//!   transparency in `info`; the `image` crate would add an alpha channel).
//! - 16-bit RGB(A) PNGs keep the high byte of each sample, as Pillow does; 16-bit grey keeps
//!   its 16-bit values; 16-bit grey+alpha becomes RGBA with the grey repeated, as in Pillow.
//! - Greyscale is measured as one channel. The guide's code fails on it (`np.mean(axis=2)` of
//!   a 2-D array), so this is our choice: the numbers NumPy gives for `array[..., None]`.
//!   1-bit grey is measured as 0/255 (Pillow would hand NumPy booleans).
//! - Palette PNGs are measured on their colours (Pillow would give indices, and the guide's
//!   code fails on those too).
//! - JPEG is decoded with libjpeg-turbo's decoder, as Pillow does (see [`jpeg`]): the `image`
//!   crate's zune-jpeg rounds its IDCT and chroma upsampling differently, which moved metrics
//!   by up to ~3e-3 relative. CMYK JPEGs keep their four (inverted) channels, as in Pillow.
//!   Lossy WebP decoded identically to libwebp in every image we tried.

mod jpeg;

use image::DynamicImage;

const PNG_SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";

#[derive(Debug, Clone, serde::Serialize, PartialEq)]
pub struct QualityMetrics {
    /// Mean of every sample (all channels), 0–255 (0–65535 for 16-bit grey).
    pub brightness: f64,
    /// Population standard deviation of every sample.
    pub contrast: f64,
    /// Variance of both `np.gradient` arrays of the channel-mean image, taken together.
    pub sharpness: f64,
    /// Distinct pixel values (all channels) per pixel.
    pub color_diversity: f64,
    /// `"{width}x{height}"`.
    pub resolution: String,
    /// Length of the encoded bytes.
    pub file_size: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum QualityError {
    #[error("the image could not be decoded: {0}")]
    Undecodable(#[from] image::ImageError),
    /// `np.gradient` needs at least two samples along each axis.
    #[error("the image is {width}x{height}; quality needs at least 2 pixels in each direction")]
    TooSmall { width: u32, height: u32 },
    #[error("pixel format {0:?} has no Pillow equivalent to measure")]
    UnsupportedPixels(image::ColorType),
    #[error("the JPEG could not be decoded: {0}")]
    Jpeg(String),
}

/// Decodes `image_bytes` and measures it as the guide's `assess_image_quality` would.
pub fn assess(image_bytes: &[u8]) -> Result<QualityMetrics, QualityError> {
    let (pixels, width, height) = if jpeg::is_jpeg(image_bytes) {
        jpeg::pil_pixels(image_bytes)?
    } else {
        let image = image::load_from_memory(image_bytes)?;
        let (width, height) = (image.width(), image.height());
        let pixels = pil_pixels(image, png_without_alpha_channel(image_bytes))?;
        (pixels, width, height)
    };
    if width < 2 || height < 2 {
        return Err(QualityError::TooSmall { width, height });
    }
    let (w, h) = (width as usize, height as usize);
    let [brightness, contrast, sharpness, color_diversity] = match pixels {
        PilPixels::L(samples) => measure::<u8, 1>(&samples, w, h),
        PilPixels::La(samples) => measure::<u8, 2>(&samples, w, h),
        PilPixels::Rgb(samples) => measure::<u8, 3>(&samples, w, h),
        PilPixels::Rgba(samples) | PilPixels::Cmyk(samples) => measure::<u8, 4>(&samples, w, h),
        PilPixels::I16(samples) => measure::<u16, 1>(&samples, w, h),
    };
    Ok(QualityMetrics {
        brightness,
        contrast,
        sharpness,
        color_diversity,
        resolution: format!("{width}x{height}"),
        file_size: image_bytes.len(),
    })
}

/// The guide's score; same operation order as its Python, so the same rounding.
pub fn score(m: &QualityMetrics) -> f64 {
    m.contrast / 255.0 * 0.3 + m.sharpness / 1000.0 * 0.3 + m.color_diversity * 0.4
}

/// The samples of `np.array(PIL.Image.open(..))`, flattened row-major.
enum PilPixels {
    L(Vec<u8>),
    La(Vec<u8>),
    Rgb(Vec<u8>),
    Rgba(Vec<u8>),
    /// Four channels, inverted as Pillow's `CMYK;I` reads Adobe JPEGs.
    Cmyk(Vec<u8>),
    I16(Vec<u16>),
}

/// PNG colour types 0 (grey) and 2 (RGB) have no alpha channel. The `image` crate adds one
/// when a tRNS chunk is present; Pillow does not. IHDR is always the first chunk.
fn png_without_alpha_channel(bytes: &[u8]) -> bool {
    bytes.starts_with(PNG_SIGNATURE)
        && bytes.get(12..16) == Some(b"IHDR".as_slice())
        && matches!(bytes.get(25), Some(0 | 2))
}

fn pil_pixels(image: DynamicImage, drop_alpha: bool) -> Result<PilPixels, QualityError> {
    use DynamicImage as D;
    // Pillow reads 16-bit colour PNGs by keeping each sample's high byte (no rounding).
    let high = |v: u16| v.to_be_bytes()[0];
    Ok(match image {
        D::ImageLuma8(b) => PilPixels::L(b.into_raw()),
        D::ImageLumaA8(b) if drop_alpha => PilPixels::L(regroup(&b, |[l, _]| [l])),
        D::ImageLumaA8(b) => PilPixels::La(b.into_raw()),
        D::ImageRgb8(b) => PilPixels::Rgb(b.into_raw()),
        D::ImageRgba8(b) if drop_alpha => PilPixels::Rgb(regroup(&b, |[r, g, b, _]| [r, g, b])),
        D::ImageRgba8(b) => PilPixels::Rgba(b.into_raw()),
        D::ImageLuma16(b) => PilPixels::I16(b.into_raw()),
        D::ImageLumaA16(b) if drop_alpha => PilPixels::I16(regroup(&b, |[l, _]| [l])),
        // Pillow opens 16-bit grey+alpha PNGs as RGBA, repeating the grey.
        D::ImageLumaA16(b) => PilPixels::Rgba(regroup(&b, |[l, a]| [l, l, l, a].map(high))),
        D::ImageRgb16(b) => PilPixels::Rgb(regroup(&b, |[v]| [high(v)])),
        D::ImageRgba16(b) if drop_alpha => {
            PilPixels::Rgb(regroup(&b, |[r, g, b, _]| [r, g, b].map(high)))
        }
        D::ImageRgba16(b) => PilPixels::Rgba(regroup(&b, |[v]| [high(v)])),
        other => return Err(QualityError::UnsupportedPixels(other.color())),
    })
}

/// Maps every group of `N` samples to `M` samples.
fn regroup<T: Copy, U, const N: usize, const M: usize>(
    samples: &[T],
    map: impl Fn([T; N]) -> [U; M],
) -> Vec<U> {
    samples
        .as_chunks::<N>()
        .0
        .iter()
        .flat_map(|&group| map(group))
        .collect()
}

/// Brightness, contrast, sharpness and colour diversity of `C`-channel pixels: one pass over
/// the pixels (sums, channel sums, colours), one over the channel sums (gradients). `C` is a
/// constant so the per-pixel loop unrolls; samples are `u8`, or `u16` for 16-bit grey.
fn measure<S, const C: usize>(samples: &[S], width: usize, height: usize) -> [f64; 4]
where
    S: Copy + Into<u32>,
{
    let bits = 8 * size_of::<S>() as u32;
    let pixels = width * height;
    let (mut sum, mut sum_sq) = (0u64, 0u64);
    // C × the channel-mean image: integers, so the gradients below are exact.
    let mut grey: Vec<u32> = Vec::with_capacity(pixels);
    let mut colours = ColourSet::new(bits * C as u32, pixels);
    for pixel in samples.as_chunks::<C>().0 {
        let (mut total, mut key) = (0u32, 0u32);
        for &sample in pixel {
            let v: u32 = sample.into();
            total += v;
            // Cannot overflow: 65535² fits a u32, and the decoder's 512 MiB allocation
            // limit keeps the sum of squares far below u64::MAX.
            sum_sq += u64::from(v * v);
            key = (key << bits) | v;
        }
        sum += u64::from(total);
        grey.push(total);
        colours.insert(key);
    }
    let count = (pixels * C) as u64;
    let values = Moments {
        count,
        sum: i128::from(sum),
        sum_sq: u128::from(sum_sq),
    };

    // np.gradient: central differences (f[i+1] − f[i−1]) / 2 inside, one-sided f[1] − f[0] and
    // f[n−1] − f[n−2] at the edges. Accumulated as 2C times those, which are integers.
    let mut gradients = Moments::default();
    let row = |i: usize| &grey[i * width..(i + 1) * width];
    gradients.add_differences(row(0), row(1), 2);
    gradients.add_differences(&grey[..(height - 2) * width], &grey[2 * width..], 1);
    gradients.add_differences(row(height - 2), row(height - 1), 2);
    for r in grey.chunks_exact(width) {
        gradients.add_differences(&r[..1], &r[1..2], 2);
        gradients.add_differences(&r[..width - 2], &r[2..], 1);
        gradients.add_differences(&r[width - 2..width - 1], &r[width - 1..], 2);
    }
    let scale = (2 * C) as f64;

    [
        sum as f64 / count as f64,
        values.variance().sqrt(),
        gradients.variance() / (scale * scale),
        colours.count() as f64 / pixels as f64,
    ]
}

/// Exact integer count, sum and sum of squares, so the variance suffers no cancellation.
#[derive(Default)]
struct Moments {
    count: u64,
    sum: i128,
    sum_sq: u128,
}

impl Moments {
    /// Adds `scale * (hi[k] - lo[k])` for every `k`.
    fn add_differences(&mut self, lo: &[u32], hi: &[u32], scale: i64) {
        // Chunks keep the u64 partial sums from overflowing on any image size:
        // 2¹⁶ · (2 · 65535)² < 2⁶⁴.
        for (lo, hi) in lo.chunks(1 << 16).zip(hi.chunks(1 << 16)) {
            let (mut sum, mut sum_sq) = (0i64, 0u64);
            for (&l, &h) in lo.iter().zip(hi) {
                let d = (i64::from(h) - i64::from(l)) * scale;
                sum += d;
                sum_sq += d.unsigned_abs() * d.unsigned_abs();
            }
            self.count += lo.len() as u64;
            self.sum += i128::from(sum);
            self.sum_sq += u128::from(sum_sq);
        }
    }

    /// Population variance (NumPy's default `ddof=0`): (n·Σx² − (Σx)²) / n², exact up to the
    /// final division.
    fn variance(&self) -> f64 {
        let n = u128::from(self.count);
        let sum = self.sum.unsigned_abs();
        let spread = n * self.sum_sq - sum * sum;
        spread as f64 / self.count as f64 / self.count as f64
    }
}

/// Distinct pixel values, each packed into a `u32`. Up to 24 bits per pixel a bitmap (at most
/// 2 MiB) is cheaper than sorting; RGBA's 32 bits would need 512 MiB, so those are sorted.
enum ColourSet {
    Bitmap(Vec<u64>),
    Keys(Vec<u32>),
}

impl ColourSet {
    fn new(key_bits: u32, pixels: usize) -> Self {
        if key_bits <= 24 {
            Self::Bitmap(vec![0; (1usize << key_bits).div_ceil(64)])
        } else {
            Self::Keys(Vec::with_capacity(pixels))
        }
    }

    fn insert(&mut self, key: u32) {
        match self {
            Self::Bitmap(words) => words[key as usize / 64] |= 1 << (key % 64),
            Self::Keys(keys) => keys.push(key),
        }
    }

    fn count(self) -> usize {
        match self {
            Self::Bitmap(words) => words.iter().map(|w| w.count_ones() as usize).sum(),
            Self::Keys(keys) => {
                let sorted = radix_sort(keys);
                let mut distinct = usize::from(!sorted.is_empty());
                for pair in sorted.windows(2) {
                    distinct += usize::from(pair[0] != pair[1]);
                }
                distinct
            }
        }
    }
}

/// LSD radix sort in two 16-bit passes. Plain loops stay fast unoptimised, where the generic
/// `sort_unstable` is compiled at this crate's dev opt-level 0: `assess` on a 1024² RGBA PNG
/// took 590 ms in dev with it, 140 ms with this (25 ms either way in release).
fn radix_sort(mut keys: Vec<u32>) -> Vec<u32> {
    let mut sorted = vec![0; keys.len()];
    for shift in [0, 16] {
        let digit = |key: u32| ((key >> shift) & 0xffff) as usize;
        let mut starts = vec![0usize; 1 << 16];
        for &key in &keys {
            starts[digit(key)] += 1;
        }
        let mut next = 0;
        for start in &mut starts {
            (*start, next) = (next, next + *start);
        }
        for &key in &keys {
            sorted[starts[digit(key)]] = key;
            starts[digit(key)] += 1;
        }
        std::mem::swap(&mut keys, &mut sorted);
    }
    keys
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{ImageFormat, Rgb, RgbImage, Rgba, RgbaImage};
    use std::path::{Path, PathBuf};
    use std::process::Command;

    const REFERENCE: &str = "tests/python/quality_reference.py";

    fn encode(image: impl Into<DynamicImage>, format: ImageFormat) -> Vec<u8> {
        let mut bytes = std::io::Cursor::new(Vec::new());
        image.into().write_to(&mut bytes, format).unwrap();
        bytes.into_inner()
    }

    #[test]
    fn small_rgb_image_has_the_hand_computed_metrics() {
        // Pixels, channel mean in brackets:
        //   (0,0,0)[0]  (6,6,6)[6]  (12,12,12)[12]
        //   (0,0,0)[0]  (9,0,0)[3]  (3,3,3)[3]
        // 18 samples summing to 72: brightness 4. Σx² = 648, so variance 648/18 − 4² = 20.
        // Gradients: axis 0 (two rows, both one-sided) 0,−3,−9 twice; axis 1 row 0: 6,6,6,
        // row 1: 3,1.5,0. Twelve values: Σ = −1.5, Σx² = 299.25, variance 24.9375 − 0.125².
        // Colours: (0,0,0) twice, so 5 distinct of 6.
        let samples = vec![0, 0, 0, 6, 6, 6, 12, 12, 12, 0, 0, 0, 9, 0, 0, 3, 3, 3];
        let bytes = encode(RgbImage::from_raw(3, 2, samples).unwrap(), ImageFormat::Png);

        let metrics = assess(&bytes).unwrap();

        assert_eq!(metrics.brightness, 4.0);
        assert_eq!(metrics.contrast, 20f64.sqrt());
        assert_eq!(metrics.sharpness, 24.921875);
        assert_eq!(metrics.color_diversity, 5.0 / 6.0);
        assert_eq!(metrics.resolution, "3x2");
        assert_eq!(metrics.file_size, bytes.len());
    }

    #[test]
    fn alpha_counts_in_every_rgba_statistic() {
        // (10,20,30) everywhere, alpha 255 except the top right pixel's 0.
        // Σ = 4·60 + 3·255 = 1005 over 16 samples; Σx² = 4·1400 + 3·65025 = 200675.
        // Channel means: 78.75 where opaque, 15 where not; the gradients are 0,63.75,0,63.75
        // (axis 0) and −63.75,−63.75,0,0 (axis 1): mean 0, variance 4·63.75²/8.
        let alpha = |x, y| if (x, y) == (1, 0) { 0 } else { 255 };
        let image = RgbaImage::from_fn(2, 2, |x, y| Rgba([10, 20, 30, alpha(x, y)]));

        let metrics = assess(&encode(image, ImageFormat::Png)).unwrap();

        let mean = 1005.0 / 16.0;
        assert_eq!(metrics.brightness, mean);
        assert_eq!(metrics.contrast, (200675.0 / 16.0 - mean * mean).sqrt());
        assert_eq!(metrics.sharpness, 2032.03125);
        assert_eq!(metrics.color_diversity, 0.5);
    }

    #[test]
    fn greyscale_is_measured_as_one_channel() {
        // 0 10 / 20 30: mean 15, variance 350 − 15²; gradients 20 (axis 0) and 10 (axis 1)
        // four times each, variance 25.
        let image = image::GrayImage::from_raw(2, 2, vec![0, 10, 20, 30]).unwrap();

        let metrics = assess(&encode(image, ImageFormat::Png)).unwrap();

        assert_eq!(metrics.brightness, 15.0);
        assert_eq!(metrics.contrast, 125f64.sqrt());
        assert_eq!(metrics.sharpness, 25.0);
        assert_eq!(metrics.color_diversity, 1.0);
    }

    #[test]
    fn rgb_png_with_a_transparency_chunk_keeps_three_channels_as_in_pillow() {
        // A tRNS chunk making black transparent, to go right after IHDR (which ends at byte
        // 33); its last four bytes are the chunk's CRC-32.
        const TRNS: &[u8] = b"\0\0\0\x06tRNS\0\0\0\0\0\0\x6e\xa6\x07\x91";
        let image = RgbImage::from_fn(2, 2, |x, _| Rgb([if x == 0 { 0 } else { 90 }; 3]));
        let plain = encode(image, ImageFormat::Png);
        let with_trns = [&plain[..33], TRNS, &plain[33..]].concat();
        let decoded = image::load_from_memory(&with_trns).unwrap();
        assert!(decoded.color().has_alpha(), "the image crate adds alpha");

        let metrics = assess(&with_trns).unwrap();

        let file_size = with_trns.len();
        assert_eq!(
            metrics,
            QualityMetrics {
                file_size,
                ..assess(&plain).unwrap()
            }
        );
    }

    #[test]
    fn image_one_pixel_wide_or_tall_is_too_small_for_gradients() {
        for (width, height) in [(1, 5), (5, 1)] {
            let bytes = encode(RgbImage::new(width, height), ImageFormat::Png);

            let error = assess(&bytes).unwrap_err();

            assert!(matches!(error, QualityError::TooSmall { .. }), "{error:?}");
        }
    }

    #[test]
    fn bytes_that_are_not_an_image_are_undecodable() {
        let error = assess(b"not an image").unwrap_err();

        assert!(matches!(error, QualityError::Undecodable(_)), "{error:?}");
    }

    #[test]
    fn score_weighs_contrast_sharpness_and_diversity_as_the_guide_does() {
        let metrics = QualityMetrics {
            brightness: 0.0,
            contrast: 127.5,
            sharpness: 500.0,
            color_diversity: 0.5,
            resolution: "2x2".into(),
            file_size: 0,
        };

        assert!((score(&metrics) - (0.15 + 0.15 + 0.2)).abs() < 1e-15);
    }

    /// Gradients, hard edges and hashed noise, so every metric has something to measure.
    pub(super) fn varied(width: u32, height: u32, noise_bits: u32) -> RgbImage {
        RgbImage::from_fn(width, height, |x, y| {
            let hash = ((x * 7919) ^ (y * 104_729)).wrapping_mul(2_654_435_761);
            let noise = (hash >> (32 - noise_bits)) as u8;
            let checker = if (x / 64 + y / 64) % 2 == 0 { 200 } else { 40 };
            let (ramp, diagonal) = ((x * 255 / width) as u8, ((x + y) / 8) as u8);
            Rgb([ramp ^ noise, checker, diagonal ^ noise])
        })
    }

    /// The guide's Python run on `paths`, or `None` when NumPy is missing (CI installs it,
    /// so there that fails instead).
    fn numpy_reference(paths: &[PathBuf]) -> Option<Vec<serde_json::Value>> {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join(REFERENCE);
        let missing = match Command::new("python3").arg(script).args(paths).output() {
            Ok(out) if out.status.code() == Some(77) => String::from_utf8_lossy(&out.stderr).into(),
            Ok(out) => {
                let stderr = String::from_utf8_lossy(&out.stderr);
                assert!(out.status.success(), "the NumPy reference failed: {stderr}");
                return Some(serde_json::from_slice(&out.stdout).unwrap());
            }
            Err(error) => format!("python3 could not be run: {error}"),
        };
        assert!(
            std::env::var_os("CI").is_none(),
            "no NumPy reference in CI: {missing}"
        );
        eprintln!("skipped: numpy not installed ({})", missing.trim());
        None
    }

    /// Asserts `assess` agrees with NumPy on every image, printing both sides.
    pub(super) fn assert_agrees_with_numpy(images: &[(&str, Vec<u8>)], relative: f64) {
        let dir = tempfile::tempdir().unwrap();
        let mut paths = Vec::new();
        for (name, bytes) in images {
            let path = dir.path().join(name);
            std::fs::write(&path, bytes).unwrap();
            paths.push(path);
        }
        let Some(reference) = numpy_reference(&paths) else {
            return;
        };

        let mut mismatches = Vec::new();
        for ((name, bytes), numpy) in images.iter().zip(&reference) {
            let m = assess(bytes).unwrap();
            let ours = [
                ("brightness", m.brightness),
                ("contrast", m.contrast),
                ("sharpness", m.sharpness),
                ("color_diversity", m.color_diversity),
                ("quality_score", score(&m)),
            ];
            for (field, a) in ours {
                let b = numpy[field].as_f64().unwrap();
                let gap = (a - b).abs();
                eprintln!(
                    "{name:<18} {field:<15} rust {a:<19} numpy {b:<19} rel {:.1e}",
                    gap / b
                );
                if gap > f64::max(1e-9, relative * b.abs()) {
                    mismatches.push(format!("{name} {field}: {a} vs NumPy's {b}"));
                }
            }
            assert_eq!(numpy["resolution"], m.resolution, "{name}");
            assert_eq!(numpy["file_size"], m.file_size, "{name}");
        }
        assert!(
            mismatches.is_empty(),
            "metrics differ from NumPy: {mismatches:#?}"
        );
    }

    #[test]
    fn png_and_webp_metrics_match_numpy_within_one_part_per_million() {
        // Repeated colours with varying alpha, so distinct RGBA values need the sorting path.
        let rgba = RgbaImage::from_fn(301, 203, |x, y| {
            Rgba([(x / 3) as u8, (y / 2) as u8, 128, ((x ^ y) % 5 * 60) as u8])
        });
        let png = encode(varied(1024, 1024, 8), ImageFormat::Png);
        let webp = encode(varied(200, 150, 8), ImageFormat::WebP);
        let rgba = encode(rgba, ImageFormat::Png);
        let images = [
            ("varied_1024.png", png),
            ("rgba_301x203.png", rgba),
            ("lossless.webp", webp),
        ];
        assert_agrees_with_numpy(&images, 1e-6);
    }
}

//! JPEG pixels as Pillow decodes them, for the quality metrics only.
//!
//! Pillow decodes JPEG with libjpeg-turbo at its defaults: the accurate integer IDCT
//! (`JDCT_ISLOW`) and "fancy" (triangular) chroma upsampling. mozjpeg's decoder is
//! libjpeg-turbo's, with the same defaults, so its samples are Pillow's bit for bit
//! (checked against Pillow on 4:4:4, 4:2:2, 4:2:0, progressive, greyscale and CMYK files in
//! `quality::tests`). The `image` crate's zune-jpeg rounds differently and stays the
//! decoder for everything else.
//!
//! Pillow picks the mode from the frame's component count: 1 → `L`, 3 → `RGB`, 4 → `CMYK`
//! read with Adobe's inverted polarity (`CMYK;I`), whatever the markers say.

use std::panic::{AssertUnwindSafe, catch_unwind};

use mozjpeg::{ColorSpace, Decompress};

use super::{PilPixels, QualityError};

/// Start-of-image marker followed by the first marker's prefix.
pub(super) fn is_jpeg(bytes: &[u8]) -> bool {
    bytes.starts_with(&[0xFF, 0xD8, 0xFF])
}

/// The samples Pillow's `np.array(Image.open(..))` would hold, with width and height.
pub(super) fn pil_pixels(bytes: &[u8]) -> Result<(PilPixels, u32, u32), QualityError> {
    // libjpeg reports fatal errors by calling its error manager, which mozjpeg makes unwind
    // (with `resume_unwind`, so no panic hook runs); this is where that unwinding stops.
    catch_unwind(AssertUnwindSafe(|| decode(bytes))).unwrap_or_else(|payload| {
        let message = payload
            .downcast_ref::<String>()
            .map_or("libjpeg failed", String::as_str);
        Err(QualityError::Jpeg(message.to_owned()))
    })
}

fn decode(bytes: &[u8]) -> Result<(PilPixels, u32, u32), QualityError> {
    let failed = |e: std::io::Error| QualityError::Jpeg(e.to_string());
    let decompress = Decompress::new_mem(bytes).map_err(failed)?;
    let components = decompress.components().len();
    let (width, height) = decompress.size();
    let (width, height) = (dimension(width)?, dimension(height)?);
    let out = match components {
        1 => ColorSpace::JCS_GRAYSCALE,
        3 => ColorSpace::JCS_RGB,
        4 => ColorSpace::JCS_CMYK,
        n => {
            return Err(QualityError::Jpeg(format!(
                "{n} components; Pillow reads 1, 3 or 4"
            )));
        }
    };
    let mut started = decompress.to_colorspace(out).map_err(failed)?;
    let mut samples = started.read_scanlines::<u8>().map_err(failed)?;
    started.finish().map_err(failed)?;
    let pixels = match components {
        1 => PilPixels::L(samples),
        3 => PilPixels::Rgb(samples),
        _ => {
            for sample in &mut samples {
                *sample = 255 - *sample;
            }
            PilPixels::Cmyk(samples)
        }
    };
    Ok((pixels, width, height))
}

/// JPEG dimensions are 16-bit, so this only guards the conversion.
fn dimension(value: usize) -> Result<u32, QualityError> {
    u32::try_from(value).map_err(|_| QualityError::Jpeg(format!("dimension {value} is too large")))
}

#[cfg(test)]
mod tests {
    use image::{ImageFormat, RgbImage};
    use mozjpeg::{ColorSpace, Compress};

    use super::super::tests::{assert_agrees_with_numpy, varied};

    /// Encodes with mozjpeg: 4:2:0 and progressive unless told otherwise.
    fn mozjpeg_encode(
        space: ColorSpace,
        samples: &[u8],
        (width, height): (u32, u32),
        setup: impl FnOnce(&mut Compress),
    ) -> Vec<u8> {
        let mut compress = Compress::new(space);
        compress.set_size(width as usize, height as usize);
        compress.set_quality(80.0);
        setup(&mut compress);
        let mut started = compress.start_compress(Vec::new()).unwrap();
        started.write_scanlines(samples).unwrap();
        started.finish().unwrap()
    }

    #[test]
    fn jpeg_metrics_match_numpy_within_one_part_per_million() {
        // Odd sizes, so partial MCUs and the upsampler's edge cases are exercised. No
        // greyscale file: the guide's code itself fails on 2-D arrays.
        let size = (641, 479);
        let rgb = varied(size.0, size.1, 5);
        let cmyk: Vec<u8> = rgb
            .pixels()
            .flat_map(|p| [p.0[0], p.0[1], p.0[2], p.0[0] / 2])
            .collect();
        let mut baseline_444 = Vec::new();
        RgbImage::write_to(
            &rgb,
            &mut std::io::Cursor::new(&mut baseline_444),
            ImageFormat::Jpeg,
        )
        .unwrap();
        let images = [
            ("image_crate_444.jpg", baseline_444),
            (
                "progressive_420.jpg",
                mozjpeg_encode(ColorSpace::JCS_RGB, &rgb, size, |_| {}),
            ),
            (
                "baseline_420.jpg",
                mozjpeg_encode(
                    ColorSpace::JCS_RGB,
                    &rgb,
                    size,
                    Compress::set_fastest_defaults,
                ),
            ),
            (
                "baseline_422.jpg",
                mozjpeg_encode(ColorSpace::JCS_RGB, &rgb, size, |c| {
                    c.set_fastest_defaults();
                    c.set_chroma_sampling_pixel_sizes((2, 1), (2, 1));
                }),
            ),
            (
                "cmyk.jpg",
                mozjpeg_encode(ColorSpace::JCS_CMYK, &cmyk, size, |_| {}),
            ),
        ];

        assert_agrees_with_numpy(&images, 1e-6);
    }

    #[test]
    fn truncated_jpeg_is_an_error_not_a_panic() {
        let rgb = varied(64, 64, 5);
        let bytes = mozjpeg_encode(ColorSpace::JCS_RGB, &rgb, (64, 64), |_| {});

        let error = super::pil_pixels(&bytes[..40]).err();

        assert!(
            matches!(error, Some(super::QualityError::Jpeg(_))),
            "{error:?}"
        );
    }
}

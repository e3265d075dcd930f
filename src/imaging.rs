//! Image bytes at the edges: recognising formats from the bytes, refusing what must not
//! be decoded, and downscaling inputs before they go upstream (docs/api.md#conventions).

use std::io::Cursor;

use bytes::Bytes;
use image::{DynamicImage, ImageReader, Limits};

use crate::generation::GenerationError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ImageFormat {
    Png,
    Jpeg,
    Webp,
}

impl ImageFormat {
    /// Recognises PNG, JPEG and WebP by their magic bytes; names are never trusted.
    pub fn sniff(bytes: &[u8]) -> Option<Self> {
        if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
            Some(Self::Png)
        } else if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
            Some(Self::Jpeg)
        } else if bytes.len() >= 12 && &bytes[0..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
            Some(Self::Webp)
        } else {
            None
        }
    }

    pub fn mime(self) -> &'static str {
        match self {
            Self::Png => "image/png",
            Self::Jpeg => "image/jpeg",
            Self::Webp => "image/webp",
        }
    }

    fn codec(self) -> image::ImageFormat {
        match self {
            Self::Png => image::ImageFormat::Png,
            Self::Jpeg => image::ImageFormat::Jpeg,
            Self::Webp => image::ImageFormat::WebP,
        }
    }
}

/// A name for bytes we do not accept, so the error can say what was sent.
fn describe_unknown(bytes: &[u8]) -> &'static str {
    if bytes.starts_with(b"GIF8") {
        "gif"
    } else if bytes.starts_with(b"BM") {
        "bmp"
    } else if bytes.starts_with(b"II*\0") || bytes.starts_with(b"MM\0*") {
        "tiff"
    } else if bytes.len() >= 12 && &bytes[4..8] == b"ftyp" {
        "heif/avif"
    } else if bytes.is_empty() {
        "empty"
    } else {
        "unknown"
    }
}

#[derive(Debug, Clone, Copy)]
pub struct IntakeLimits {
    pub max_file_bytes: usize,
    pub max_pixels: u64,
    pub max_edge: u32,
}

/// A validated input image, ready to go upstream.
#[derive(Debug, Clone)]
pub struct InputImage {
    pub format: ImageFormat,
    pub bytes: Bytes,
    pub width: u32,
    pub height: u32,
    /// Size as uploaded, before any downscaling.
    pub original_size: (u32, u32),
}

/// Validates one uploaded image and downscales it if its long side exceeds the limit.
/// CPU-bound: call from a blocking task.
pub fn accept_input(
    field: &str,
    bytes: Bytes,
    limits: &IntakeLimits,
) -> Result<InputImage, GenerationError> {
    if bytes.len() > limits.max_file_bytes {
        return Err(file_too_large(field, limits.max_file_bytes));
    }
    let format = ImageFormat::sniff(&bytes).ok_or_else(|| {
        GenerationError::invalid(
            field,
            "Unsupported image format. Send a PNG, JPEG or WebP image.",
        )
        .detail("detected", describe_unknown(&bytes))
        .detail("supported", vec!["image/png", "image/jpeg", "image/webp"])
    })?;
    let corrupted = |e: image::ImageError| {
        GenerationError::invalid(
            field,
            "The image could not be decoded; the file may be corrupted.",
        )
        .detail("format", format.mime())
        .caused_by(e)
    };
    // Header only: refuse decompression bombs before allocating any pixels.
    let (width, height) = ImageReader::with_format(Cursor::new(&bytes[..]), format.codec())
        .into_dimensions()
        .map_err(corrupted)?;
    let pixels = u64::from(width) * u64::from(height);
    if width == 0 || height == 0 || pixels > limits.max_pixels {
        return Err(GenerationError::invalid(
            field,
            "The image's dimensions are too large to process.",
        )
        .detail("width", width)
        .detail("height", height)
        .detail("max_pixels", limits.max_pixels));
    }
    let image = decode_with_limits(&bytes, format, limits.max_pixels).map_err(corrupted)?;
    let long_side = width.max(height);
    if long_side <= limits.max_edge {
        return Ok(InputImage {
            format,
            bytes,
            width,
            height,
            original_size: (width, height),
        });
    }
    let scale = f64::from(limits.max_edge) / f64::from(long_side);
    let new_w = ((f64::from(width) * scale).round() as u32).max(1);
    let new_h = ((f64::from(height) * scale).round() as u32).max(1);
    let resized = image.resize_exact(new_w, new_h, image::imageops::FilterType::Triangle);
    // JPEG stays JPEG; PNG and WebP (whose encoder here is lossless only) become PNG.
    let out_format = match format {
        ImageFormat::Jpeg => ImageFormat::Jpeg,
        ImageFormat::Png | ImageFormat::Webp => ImageFormat::Png,
    };
    let encoded = encode(&resized, out_format)
        .map_err(GenerationError::failed("encoding a downscaled image"))?;
    Ok(InputImage {
        format: out_format,
        bytes: encoded,
        width: new_w,
        height: new_h,
        original_size: (width, height),
    })
}

/// Width and height from the header alone, if the bytes are an image we take.
pub fn dimensions(bytes: &[u8]) -> Option<(u32, u32)> {
    let format = ImageFormat::sniff(bytes)?;
    ImageReader::with_format(Cursor::new(bytes), format.codec())
        .into_dimensions()
        .ok()
}

/// The largest image the gateway builds itself (outpaint canvases, composites): upstream's
/// own largest output is 4K (4096 × 4096), and nothing the gateway makes needs more.
pub const MAX_OUTPUT_PIXELS: u64 = 4096 * 4096;

/// What decoding and working on an image of `pixels` takes in memory: RGBA at up to 16
/// bits a channel, the figure the decoder's own allocation limit uses.
pub const DECODED_BYTES_PER_PIXEL: u64 = 8;

pub fn file_too_large(field: &str, max: usize) -> GenerationError {
    GenerationError::FileTooLarge {
        field: field.to_owned(),
        max_bytes: max,
    }
}

pub fn decode_with_limits(
    bytes: &[u8],
    format: ImageFormat,
    max_pixels: u64,
) -> Result<DynamicImage, image::ImageError> {
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format.codec());
    let mut limits = Limits::default();
    // Four bytes a pixel plus headroom for the decoder's own buffers.
    limits.max_alloc = Some(max_pixels.saturating_mul(8));
    reader.limits(limits);
    reader.decode()
}

/// Decodes an image already known to be acceptable (our own or validated bytes).
pub fn decode(bytes: &[u8]) -> Result<DynamicImage, image::ImageError> {
    let format = ImageFormat::sniff(bytes).ok_or_else(|| {
        image::ImageError::Unsupported(image::error::UnsupportedError::from_format_and_kind(
            image::error::ImageFormatHint::Unknown,
            image::error::UnsupportedErrorKind::Format(image::error::ImageFormatHint::Unknown),
        ))
    })?;
    decode_with_limits(bytes, format, 100_000_000)
}

pub fn encode(image: &DynamicImage, format: ImageFormat) -> Result<Bytes, image::ImageError> {
    let mut out = Cursor::new(Vec::new());
    match format {
        ImageFormat::Jpeg => {
            let rgb = image.to_rgb8();
            let encoder = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 90);
            rgb.write_with_encoder(encoder)?;
        }
        ImageFormat::Png => {
            let encoder = image::codecs::png::PngEncoder::new_with_quality(
                &mut out,
                image::codecs::png::CompressionType::Fast,
                image::codecs::png::FilterType::Adaptive,
            );
            image.write_with_encoder(encoder)?;
        }
        ImageFormat::Webp => {
            let encoder = image::codecs::webp::WebPEncoder::new_lossless(&mut out);
            image.write_with_encoder(encoder)?;
        }
    }
    Ok(Bytes::from(out.into_inner()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::RgbImage;

    const LIMITS: IntakeLimits = IntakeLimits {
        max_file_bytes: 20 * 1024 * 1024,
        max_pixels: 50_000_000,
        max_edge: 1024,
    };

    fn png(w: u32, h: u32) -> Bytes {
        let img = DynamicImage::ImageRgb8(RgbImage::from_fn(w, h, |x, y| {
            image::Rgb([(x % 256) as u8, (y % 256) as u8, 90])
        }));
        encode(&img, ImageFormat::Png).unwrap()
    }

    #[test]
    fn formats_are_recognised_from_bytes_not_names() {
        assert_eq!(ImageFormat::sniff(&png(4, 4)), Some(ImageFormat::Png));
        assert_eq!(ImageFormat::sniff(b"GIF89a..."), None);
        assert_eq!(
            ImageFormat::sniff(b"RIFF\0\0\0\0WEBPVP8 "),
            Some(ImageFormat::Webp)
        );
    }

    #[test]
    fn a_gif_is_refused_and_named() {
        let err =
            accept_input("image", Bytes::from_static(b"GIF89a\x01\x00"), &LIMITS).unwrap_err();
        assert!(matches!(err, GenerationError::Invalid { .. }), "{err:?}");
        assert_eq!(err.details()["detected"], "gif");
    }

    #[test]
    fn a_truncated_png_is_refused_as_corrupted() {
        let bytes = png(64, 64);
        let cut = bytes.slice(0..bytes.len() / 2);
        let err = accept_input("image", cut, &LIMITS).unwrap_err();
        assert!(matches!(err, GenerationError::Invalid { .. }), "{err:?}");
        assert!(err.to_string().contains("corrupted"), "{}", err.to_string());
    }

    #[test]
    fn a_decompression_bomb_is_refused_from_its_header() {
        // A valid PNG header claiming 100000×100000 pixels, with no pixel data at all.
        let mut bytes = png(1, 1).to_vec();
        bytes[16..20].copy_from_slice(&100_000u32.to_be_bytes());
        bytes[20..24].copy_from_slice(&100_000u32.to_be_bytes());
        let crc = crc32fast::hash(&bytes[12..29]);
        bytes[29..33].copy_from_slice(&crc.to_be_bytes());
        let err = accept_input("image", Bytes::from(bytes), &LIMITS).unwrap_err();
        assert_eq!(err.details()["width"], 100_000);
        assert!(err.to_string().contains("too large"));
    }

    #[test]
    fn large_inputs_are_downscaled_to_the_edge_keeping_aspect() {
        let input = accept_input("image", png(2048, 1024), &LIMITS).unwrap();
        assert_eq!((input.width, input.height), (1024, 512));
        assert_eq!(input.original_size, (2048, 1024));
        let decoded = decode(&input.bytes).unwrap();
        assert_eq!((decoded.width(), decoded.height()), (1024, 512));
    }

    #[test]
    fn small_inputs_pass_through_untouched() {
        let bytes = png(300, 200);
        let input = accept_input("image", bytes.clone(), &LIMITS).unwrap();
        assert_eq!(input.bytes, bytes);
    }
}

//! Inpainting, outpainting and style transfer: the canvas work the gateway does around
//! the model call. With a mask, inpainting composites so every pixel outside the mask is
//! the original's; outpainting grows the canvas itself and pastes the original back.
//! Composited results are PNG (lossless), so those pixels reach the client unchanged.

use std::sync::Arc;

use bytes::Bytes;
use image::DynamicImage;

use crate::generation::GenerationError;
use crate::generation::PostProcess;
use crate::generation::canvas::{self, Directions, ExtensionRatio, GrownCanvas, Mask, Placement};
use crate::generation::params::{Options, Prompt, Strength};
use crate::generation::requests::request;
use crate::generation::styles::{self, Style};
use crate::imaging::{self, ImageFormat, InputImage};
use crate::provider::{OutputImage, Part, ProviderRequest, Task};

fn decode_original(bytes: &[u8]) -> Result<DynamicImage, GenerationError> {
    imaging::decode(bytes).map_err(|e| {
        GenerationError::invalid("image", "The image could not be decoded.").caused_by(e)
    })
}

/// The work done on each model image once it is back (mask compositing, canvas
/// restoration). Shared: the `n` copies of one request use one decode of the original.
pub type Composite = Arc<dyn Fn(&DynamicImage) -> DynamicImage + Send + Sync>;

/// Applies `composite` to each model image and returns the result as PNG.
pub fn post_process(composite: Composite) -> PostProcess {
    Box::new(move |images: Vec<OutputImage>| {
        images
            .into_iter()
            .map(|out| {
                let model =
                    imaging::decode(&out.bytes).map_err(|e| GenerationError::BadResult {
                        message: "The model returned an image that could not be decoded.",
                        upstream_message: None,
                        source: Some(e.into()),
                    })?;
                let bytes = imaging::encode(&composite(&model), ImageFormat::Png)
                    .map_err(GenerationError::failed("encoding a composited image"))?;
                Ok(OutputImage {
                    format: ImageFormat::Png,
                    bytes,
                    base64: None,
                })
            })
            .collect()
    })
}

pub struct Inpaint {
    pub prompt: Prompt,
    pub region_description: Option<String>,
    /// The image as sent upstream (downscaled if large) and as uploaded.
    pub image: InputImage,
    pub original: Bytes,
    /// The mask, already accepted by intake (format, size and bomb checks).
    pub mask: Option<InputImage>,
}

/// CPU-bound (decodes and masks): call from a blocking task.
pub fn inpaint(
    job: Inpaint,
    options: Options,
) -> Result<(ProviderRequest, Option<Composite>), GenerationError> {
    let mut parts = vec![Part::image(job.image.format, job.image.bytes.clone())];
    let (region, post) = match &job.mask {
        Some(mask_image) => {
            let sent = Mask::from_png(&mask_image.bytes, job.image.width, job.image.height)?;
            let shown = decode_original(&job.image.bytes)?;
            let overlay = imaging::encode(&canvas::mask_overlay(&shown, &sent), ImageFormat::Png)
                .map_err(GenerationError::failed("encoding the mask overlay"))?;
            parts.push(Part::image(ImageFormat::Png, overlay));
            let original = decode_original(&job.original)?;
            let full = Mask::from_png(&mask_image.bytes, original.width(), original.height())?;
            let post: Composite =
                Arc::new(move |model| canvas::composite_inpaint(&original, model, &full));
            (sent.bounding_box(), Some(post))
        }
        None => (None, None),
    };
    let text = styles::inpaint_prompt(
        job.prompt.as_str(),
        job.region_description.as_deref(),
        job.mask.is_some(),
    );
    parts.push(Part::text(text));
    Ok((request(options, Task::Inpaint { region }, parts), post))
}

pub struct Outpaint {
    pub prompt: Prompt,
    pub original: Bytes,
    pub directions: Directions,
    pub ratio: ExtensionRatio,
    pub max_edge: u32,
    pub max_pixels: u64,
}

/// Grows the uploaded image's canvas, sends a downscaled copy of it, and composites the
/// model's fill back around the untouched original. CPU-bound.
pub fn outpaint(
    job: Outpaint,
    options: Options,
) -> Result<(ProviderRequest, Composite), GenerationError> {
    let original = decode_original(&job.original)?;
    let (gw, gh) = canvas::grown_size(
        original.width(),
        original.height(),
        job.directions,
        &job.ratio,
    );
    if u64::from(gw) * u64::from(gh) > job.max_pixels {
        return Err(GenerationError::invalid(
            "extension_ratio",
            "The extended canvas would be too large to process.",
        )
        .detail("width", gw)
        .detail("height", gh)
        .detail("max_pixels", job.max_pixels));
    }
    let grown: GrownCanvas = canvas::grow_canvas(&original, job.directions, &job.ratio);
    let scale = (f64::from(job.max_edge) / f64::from(gw.max(gh))).min(1.0);
    let sent_image = if scale < 1.0 {
        let w = ((f64::from(gw) * scale).round() as u32).max(1);
        let h = ((f64::from(gh) * scale).round() as u32).max(1);
        grown
            .image
            .resize_exact(w, h, image::imageops::FilterType::Triangle)
    } else {
        grown.image.clone()
    };
    let scaled = |v: u32| (f64::from(v) * scale).round() as u32;
    let placement = Placement {
        x: scaled(grown.original.x),
        y: scaled(grown.original.y),
        width: scaled(grown.original.width).max(1),
        height: scaled(grown.original.height).max(1),
    };
    let bytes = imaging::encode(&sent_image, ImageFormat::Png)
        .map_err(GenerationError::failed("encoding the outpaint canvas"))?;
    let text = styles::outpaint_prompt(job.prompt.as_str(), job.directions);
    let parts = vec![Part::image(ImageFormat::Png, bytes), Part::text(text)];
    let post: Composite =
        Arc::new(move |model| canvas::composite_outpaint(model, &grown, &original));
    Ok((
        request(
            options,
            Task::Outpaint {
                original: placement,
            },
            parts,
        ),
        post,
    ))
}

pub fn style_transfer(
    image: InputImage,
    style: Style,
    strength: Option<Strength>,
    preserve_content: bool,
    extra: Option<Prompt>,
    options: Options,
) -> ProviderRequest {
    let strength = strength.map(Strength::get);
    let mut text = styles::style_transfer_prompt(&style, strength, preserve_content);
    if let Some(extra) = extra {
        text.push_str("\n\nAlso: ");
        text.push_str(extra.as_str());
    }
    let task = Task::StyleTransfer {
        style: style.name().to_owned(),
        strength: strength.unwrap_or(1.0),
    };
    request(
        options,
        task,
        vec![Part::image(image.format, image.bytes), Part::text(text)],
    )
}

//! Builders from validated request values to the one `ProviderRequest` shape.

use crate::generation::GenerationError;
use crate::generation::params::{Options, Prompt, Strength};
use crate::generation::prompts;
use crate::imaging::InputImage;
use crate::provider::{Part, ProviderRequest, Role, Task, Turn};

/// A one-turn request from the user: `parts`, with the shared options.
pub fn request(options: Options, task: Task, parts: Vec<Part>) -> ProviderRequest {
    let turn = Turn {
        role: Role::User,
        parts,
    };
    ProviderRequest::new(options, task, vec![turn])
}

fn image_parts(images: Vec<InputImage>) -> impl Iterator<Item = Part> {
    images.into_iter().map(|i| Part::image(i.format, i.bytes))
}

pub fn text_to_image(prompt: Prompt, options: Options) -> ProviderRequest {
    request(options, Task::Generate, vec![Part::text(prompt.as_str())])
}

pub fn edit(
    prompt: Prompt,
    image: InputImage,
    strength: Option<Strength>,
    preserve_subject: bool,
    options: Options,
) -> ProviderRequest {
    let strength = strength.map(Strength::get);
    let text = prompts::edit_prompt(prompt.as_str(), strength, preserve_subject);
    // Images first, then the instruction, as Google's own examples order them.
    let parts = image_parts(vec![image]).chain([Part::text(text)]).collect();
    request(
        options,
        Task::Edit {
            strength,
            preserve_subject,
        },
        parts,
    )
}

pub const COMPOSE_MIN_IMAGES: usize = 2;
pub const COMPOSE_MAX_IMAGES: usize = 3;

/// Checked before any image is decoded.
pub fn check_compose_count(count: usize) -> Result<(), GenerationError> {
    if (COMPOSE_MIN_IMAGES..=COMPOSE_MAX_IMAGES).contains(&count) {
        Ok(())
    } else {
        Err(GenerationError::invalid(
            "images",
            format!("Composition takes {COMPOSE_MIN_IMAGES} to {COMPOSE_MAX_IMAGES} images; {count} were sent."),
        )
        .detail("min", COMPOSE_MIN_IMAGES)
        .detail("max", COMPOSE_MAX_IMAGES)
        .detail("count", count))
    }
}

pub fn compose(
    prompt: Prompt,
    images: Vec<InputImage>,
    style: &'static str,
    options: Options,
) -> Result<ProviderRequest, GenerationError> {
    check_compose_count(images.len())?;
    let text = prompts::compose_prompt(prompt.as_str(), style, images.len());
    let parts = image_parts(images).chain([Part::text(text)]).collect();
    Ok(request(
        options,
        Task::Compose {
            style: style.to_owned(),
        },
        parts,
    ))
}

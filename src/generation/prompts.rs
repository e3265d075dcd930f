//! How request fields that Gemini has no parameter for become instructions to the model.
//! The tables here are documented in `docs/prompting.md`; keep the two in step.

use crate::generation::GenerationError;

/// The `edit_strength` bands (0.1–1.0). Gemini has no numeric strength, so each band is
/// a sentence telling the model how far it may move from the input image.
pub fn edit_strength_instruction(strength: f64) -> &'static str {
    if strength < 0.3 {
        "Make only a subtle, minimal change: keep the composition, colours, lighting and every element the instruction does not mention exactly as in the input image."
    } else if strength < 0.6 {
        "Make a moderate change: apply the edit clearly, but keep the overall composition, perspective and lighting of the input image."
    } else if strength < 0.85 {
        "Make a substantial change: apply the edit fully; the composition may change where the edit requires it."
    } else {
        "Transform the image boldly: the edit may reinterpret the whole image, keeping only what the instruction asks to keep."
    }
}

pub const PRESERVE_SUBJECT_INSTRUCTION: &str = "Keep the main subject exactly as it is: the same identity, face, pose, proportions, clothing and details. Change only what surrounds it.";

pub fn edit_prompt(prompt: &str, strength: Option<f64>, preserve_subject: bool) -> String {
    let mut text = format!("Edit the provided image as follows: {prompt}");
    if let Some(s) = strength {
        text.push_str("\n\n");
        text.push_str(edit_strength_instruction(s));
    }
    if preserve_subject {
        text.push_str("\n\n");
        text.push_str(PRESERVE_SUBJECT_INSTRUCTION);
    }
    text
}

/// `composition_style` values and the instruction each adds.
pub const COMPOSITION_STYLES: &[(&str, &str)] = &[
    (
        "blend",
        "Blend the input images into one seamless, coherent scene with consistent lighting, perspective and scale.",
    ),
    (
        "collage",
        "Arrange the input images as a collage: each one recognisable in its own region of a tidy layout.",
    ),
    (
        "side_by_side",
        "Place the input images side by side, left to right in the order given, as one image with matching heights.",
    ),
    (
        "stacked",
        "Stack the input images vertically, top to bottom in the order given, as one image with matching widths.",
    ),
    (
        "overlay",
        "Overlay the later images semi-transparently on the first, like a double exposure.",
    ),
];

pub const DEFAULT_COMPOSITION_STYLE: &str = "blend";

pub fn parse_composition_style(value: Option<&str>) -> Result<&'static str, GenerationError> {
    let v = value.map(|v| v.trim().to_ascii_lowercase());
    let v = v.as_deref().unwrap_or(DEFAULT_COMPOSITION_STYLE);
    COMPOSITION_STYLES
        .iter()
        .find(|(name, _)| *name == v)
        .map(|(name, _)| *name)
        .ok_or_else(|| {
            GenerationError::invalid(
                "composition_style",
                format!("Unknown composition style '{v}'."),
            )
            .detail(
                "allowed",
                COMPOSITION_STYLES
                    .iter()
                    .map(|(n, _)| *n)
                    .collect::<Vec<_>>(),
            )
        })
}

pub fn compose_prompt(prompt: &str, style: &str, count: usize) -> String {
    let instruction = COMPOSITION_STYLES
        .iter()
        .find(|(name, _)| *name == style)
        .map_or("", |(_, i)| *i);
    format!(
        "Compose one new image from the {count} provided images (in order: first, second{}). {prompt}\n\n{instruction}",
        if count > 2 { ", third" } else { "" }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strength_bands_cover_the_whole_range() {
        assert!(edit_strength_instruction(0.1).contains("subtle"));
        assert!(edit_strength_instruction(0.5).contains("moderate"));
        assert!(edit_strength_instruction(0.7).contains("substantial"));
        assert!(edit_strength_instruction(1.0).contains("boldly"));
    }

    #[test]
    fn edit_prompt_carries_both_instructions() {
        let p = edit_prompt("add a hat", Some(0.7), true);
        assert!(p.contains("add a hat") && p.contains("substantial") && p.contains("main subject"));
        assert_eq!(
            edit_prompt("add a hat", None, false),
            "Edit the provided image as follows: add a hat"
        );
    }

    #[test]
    fn unknown_composition_styles_list_the_known_ones() {
        assert_eq!(parse_composition_style(None).unwrap(), "blend");
        assert_eq!(
            parse_composition_style(Some("Side_By_Side")).unwrap(),
            "side_by_side"
        );
        let err = parse_composition_style(Some("mosaic")).unwrap_err();
        assert!(err.details()["allowed"].as_array().unwrap().len() >= 5);
    }
}

//! Instructions for the advanced endpoints: style presets and strength bands for
//! style transfer, and the inpaint and outpaint prompts that tell the model which part
//! of the picture it may touch. The tables are documented in `docs/prompting-advanced.md`;
//! keep the two in step.

use crate::generation::GenerationError;
use crate::generation::canvas::{Directions, MASK_OVERLAY_DESCRIPTION, NEUTRAL_FILL};

#[derive(Debug, PartialEq, Eq)]
pub struct StylePreset {
    pub name: &'static str,
    pub label: &'static str,
    pub instruction: &'static str,
}

pub const STYLE_PRESETS: &[StylePreset] = &[
    StylePreset {
        name: "van_gogh",
        label: "Van Gogh",
        instruction: "Paint it as Vincent van Gogh would in his late Post-Impressionist period: thick impasto oil paint in short, rhythmic, swirling brushstrokes that follow the forms; vivid complementary colours (cobalt and ultramarine blues against chrome yellows and oranges); skies and backgrounds alive with turbulent curving strokes; dark contour lines around the main shapes.",
    },
    StylePreset {
        name: "monet",
        label: "Claude Monet",
        instruction: "Paint it as a Claude Monet Impressionist canvas: soft, broken dabs of pure colour laid side by side; shimmering natural light and its reflections; a pastel palette of lilac, pale blue, rose and soft green; edges dissolved into atmosphere with no hard outlines and no black shadows.",
    },
    StylePreset {
        name: "ukiyo_e",
        label: "Ukiyo-e woodblock print",
        instruction: "Render it as a Japanese ukiyo-e woodblock print in the manner of Hokusai and Hiroshige: bold, even black outlines; flat areas of colour with subtle bokashi gradients; a restrained palette of Prussian blue, indigo, vermilion, ochre and cream; stylised waves, clouds and patterns; visible washi paper texture.",
    },
    StylePreset {
        name: "watercolor",
        label: "Watercolour",
        instruction: "Paint it as a loose watercolour: transparent washes that bleed softly into each other, granulating pigment, colour pooling at the edges of each wash, the white of textured cold-press paper showing through the highlights, and a few fine pencil lines left visible.",
    },
    StylePreset {
        name: "pencil_sketch",
        label: "Pencil sketch",
        instruction: "Draw it as a monochrome graphite pencil sketch on off-white paper: confident contour lines, cross-hatching and smudged tonal shading for the shadows, the paper left bare for the highlights, and no colour at all.",
    },
    StylePreset {
        name: "pixel_art",
        label: "Pixel art",
        instruction: "Recreate it as retro 16-bit pixel art: a visibly low resolution of large square pixels on a strict grid, a limited palette of about 16 colours, hard edges with no anti-aliasing or blur, and dithering for gradients, like a 1990s console game sprite scene.",
    },
    StylePreset {
        name: "anime",
        label: "Anime",
        instruction: "Redraw it as a modern Japanese anime film still: clean, confident line art; cel shading with crisp two-tone shadows; saturated but harmonious colours; large expressive eyes on any characters; a painterly, luminous background with soft light and clouds.",
    },
    StylePreset {
        name: "pop_art",
        label: "Pop art",
        instruction: "Turn it into 1960s pop art in the manner of Roy Lichtenstein and Andy Warhol: flat, highly saturated primary colours, thick black outlines, Ben-Day halftone dots in the shading, and strong graphic contrast like a screen print or comic panel.",
    },
    StylePreset {
        name: "oil_painting",
        label: "Classical oil painting",
        instruction: "Paint it as a classical oil painting in the tradition of the Old Masters: rich layered glazes, visible brush texture on canvas, warm chiaroscuro lighting with deep shadows, a harmonious earthy palette, and a subtle craquelure varnish sheen.",
    },
    StylePreset {
        name: "art_deco",
        label: "Art Deco",
        instruction: "Redesign it as a 1920s Art Deco poster: bold geometric shapes, symmetry, sunburst and chevron motifs, streamlined stylised forms, and a luxurious palette of black, gold, cream and deep teal with metallic accents and clean flat colour areas.",
    },
    StylePreset {
        name: "cyberpunk",
        label: "Cyberpunk",
        instruction: "Reimagine it as a cyberpunk scene at night: neon magenta and electric cyan light against deep blue-black shadows, wet reflective surfaces, glowing signage and holographic haze, high contrast and a gritty high-tech, low-life atmosphere.",
    },
    StylePreset {
        name: "stained_glass",
        label: "Stained glass",
        instruction: "Render it as a Gothic stained-glass window: the scene divided into pieces of jewel-toned glass (ruby, sapphire, emerald, amber) joined by thick dark lead lines, light glowing through the glass, slight texture and colour variation within each piece.",
    },
];

const MAX_FREE_TEXT_CHARS: usize = 500;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Style {
    Preset(&'static StylePreset),
    /// A style the client described in its own words (trimmed).
    FreeText(String),
}

/// `Van-Gogh`, `van gogh` and `VAN_GOGH` all name the `van_gogh` preset.
fn preset_key(value: &str) -> String {
    value
        .trim()
        .chars()
        .map(|c| match c {
            '-' | ' ' => '_',
            c => c.to_ascii_lowercase(),
        })
        .collect()
}

fn preset_names() -> Vec<&'static str> {
    STYLE_PRESETS.iter().map(|p| p.name).collect()
}

impl Style {
    /// A preset name, or else free text of 1–500 characters.
    pub fn parse(value: Option<String>) -> Result<Style, GenerationError> {
        let field = "style";
        let value = value.ok_or_else(|| {
            GenerationError::invalid(
                field,
                "The style is required: a preset name or a description.",
            )
            .detail("reason", "missing")
            .detail("presets", preset_names())
        })?;
        let key = preset_key(&value);
        if let Some(preset) = STYLE_PRESETS.iter().find(|p| p.name == key) {
            return Ok(Style::Preset(preset));
        }
        let text = value.trim();
        if text.is_empty() {
            return Err(
                GenerationError::invalid(field, "The style must not be empty.")
                    .detail("reason", "empty")
                    .detail("presets", preset_names()),
            );
        }
        let length = text.chars().count();
        if length > MAX_FREE_TEXT_CHARS {
            return Err(GenerationError::invalid(
                field,
                format!(
                    "The style is too long. Maximum length is {MAX_FREE_TEXT_CHARS} characters."
                ),
            )
            .detail("max_length", MAX_FREE_TEXT_CHARS)
            .detail("current_length", length));
        }
        Ok(Style::FreeText(text.to_owned()))
    }

    /// The preset's name, or the free text itself (the offline provider derives its
    /// colour grade from it).
    pub fn name(&self) -> &str {
        match self {
            Style::Preset(p) => p.name,
            Style::FreeText(text) => text,
        }
    }

    pub fn instruction(&self) -> String {
        match self {
            Style::Preset(p) => p.instruction.to_owned(),
            Style::FreeText(text) => format!(
                "Render it in this style, interpreting the description faithfully and consistently across the whole image: {text}"
            ),
        }
    }
}

/// The `style_strength` bands (0.0–1.0), the same cut points as the edit-strength bands.
pub fn style_strength_instruction(strength: f64) -> &'static str {
    if strength < 0.3 {
        "Apply the style lightly: a subtle hint of its colours and texture over an image that still reads as the original."
    } else if strength < 0.6 {
        "Apply the style clearly but with restraint: its palette and brushwork are evident, while the original's look still shows through."
    } else if strength < 0.85 {
        "Apply the style strongly: the image should look as if it were made in this style, with only the composition recalling the original."
    } else {
        "Apply the style completely: every surface, colour and line fully in this style, with nothing of the original rendering left."
    }
}

pub const PRESERVE_CONTENT_INSTRUCTION: &str = "Preserve the content exactly: the same subjects, their positions, poses, proportions and the overall composition and framing. Change only how it is rendered, not what is depicted.";

pub const REINTERPRET_CONTENT_INSTRUCTION: &str = "You may reinterpret the content freely to suit the style: simplify, exaggerate, rearrange or add elements typical of the style, keeping the same subject and mood.";

pub fn style_transfer_prompt(
    style: &Style,
    strength: Option<f64>,
    preserve_content: bool,
) -> String {
    let mut text = format!("Restyle the provided image.\n\n{}", style.instruction());
    if let Some(s) = strength {
        text.push_str("\n\n");
        text.push_str(style_strength_instruction(s));
    }
    text.push_str("\n\n");
    text.push_str(if preserve_content {
        PRESERVE_CONTENT_INSTRUCTION
    } else {
        REINTERPRET_CONTENT_INSTRUCTION
    });
    text
}

/// The inpaint prompt. With a mask, the gateway sends the original first and
/// [`crate::generation::canvas::mask_overlay`] second, and says so here.
pub fn inpaint_prompt(prompt: &str, region_description: Option<&str>, has_mask: bool) -> String {
    let region = region_description.map(str::trim).filter(|r| !r.is_empty());
    let mut text = String::from("Edit only one region of the provided image.");
    if has_mask {
        text.push_str(&format!(
            " The first image is the image to edit. The second image is the same image with the region to change {MASK_OVERLAY_DESCRIPTION}; the marking only shows where to edit and must not appear in your result."
        ));
    }
    if let Some(r) = region {
        text.push_str(&format!(" The region to change: {r}."));
    }
    text.push_str(&format!("\n\nIn that region: {prompt}"));
    text.push_str(
        "\n\nEverything outside that region must stay identical to the input image: the same pixels, composition, framing, colours and lighting. Blend the edit seamlessly into its surroundings, matching perspective, lighting, grain and colour, and return the whole image at its original size.",
    );
    text
}

/// "top", "top and right", "top, bottom and left", …
fn list_sides(names: &[&str]) -> String {
    match names {
        [] => String::new(),
        [one] => (*one).to_owned(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

pub fn outpaint_prompt(prompt: &str, directions: Directions) -> String {
    let names = directions.names();
    let sides = if names.len() == 4 {
        "all four sides, as a border around the original picture".to_owned()
    } else if names.len() == 1 {
        format!("the {} side", list_sides(&names))
    } else {
        format!("the {} sides", list_sides(&names))
    };
    let [r, g, b] = NEUTRAL_FILL;
    format!(
        "Extend the provided image beyond its original borders. The flat mid-grey area (RGB {r}, {g}, {b}) on {sides} is new, empty canvas; the rest is the original picture.\n\n\
         Fill only the grey area, continuing the scene seamlessly: {prompt}\n\n\
         Carry perspective, horizon, lighting, colours, textures and any objects cut by the old border smoothly into the new area so that no seam, border or frame is visible and no grey remains. Do not alter, move, crop, rescale or restyle the existing image; return the whole canvas at its current size."
    )
}

#[cfg(test)]
#[path = "styles_tests.rs"]
mod tests;

use super::*;

fn parse(value: &str) -> Result<Style, GenerationError> {
    Style::parse(Some(value.to_owned()))
}

#[test]
fn the_preset_table_has_the_contracts_presets_and_unique_names() {
    for name in [
        "van_gogh",
        "monet",
        "ukiyo_e",
        "watercolor",
        "pencil_sketch",
        "pixel_art",
        "anime",
        "pop_art",
        "oil_painting",
        "art_deco",
        "cyberpunk",
        "stained_glass",
    ] {
        assert!(
            STYLE_PRESETS.iter().any(|p| p.name == name),
            "{name} missing"
        );
    }
    let mut names = preset_names();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), STYLE_PRESETS.len());
    assert!(
        STYLE_PRESETS
            .iter()
            .all(|p| p.instruction.len() > 100 && !p.label.is_empty())
    );
}

#[test]
fn a_preset_name_is_matched_ignoring_case_dashes_and_spaces() {
    for value in ["van_gogh", "Van-Gogh", " VAN GOGH ", "van gogh"] {
        let style = parse(value).unwrap();
        assert_eq!(style.name(), "van_gogh", "{value}");
        assert!(matches!(style, Style::Preset(p) if p.label == "Van Gogh"));
    }
    assert_eq!(parse("Ukiyo-E").unwrap().name(), "ukiyo_e");
}

#[test]
fn anything_else_is_free_text_trimmed() {
    let style = parse("  1970s sci-fi paperback cover ").unwrap();
    assert_eq!(
        style,
        Style::FreeText("1970s sci-fi paperback cover".into())
    );
    assert_eq!(style.name(), "1970s sci-fi paperback cover");
    assert!(
        style
            .instruction()
            .ends_with("1970s sci-fi paperback cover")
    );
}

#[test]
fn a_missing_style_is_rejected_listing_the_presets() {
    let err = Style::parse(None).unwrap_err();
    assert!(matches!(err, GenerationError::Invalid { .. }), "{err:?}");
    assert_eq!(err.details()["field"], "style");
    assert_eq!(err.details()["reason"], "missing");
    assert_eq!(
        err.details()["presets"].as_array().unwrap().len(),
        STYLE_PRESETS.len()
    );
}

#[test]
fn a_blank_style_is_rejected_as_empty() {
    let err = parse(" \t ").unwrap_err();
    assert_eq!(err.details()["field"], "style");
    assert_eq!(err.details()["reason"], "empty");
}

#[test]
fn free_text_over_500_characters_is_rejected_with_its_length() {
    assert!(parse(&"a".repeat(500)).is_ok());
    let err = parse(&"é".repeat(501)).unwrap_err();
    assert_eq!(err.details()["max_length"], 500);
    assert_eq!(err.details()["current_length"], 501);
}

#[test]
fn style_strength_bands_cover_the_whole_range() {
    assert!(style_strength_instruction(0.0).contains("lightly"));
    assert!(style_strength_instruction(0.29).contains("lightly"));
    assert!(style_strength_instruction(0.3).contains("restraint"));
    assert!(style_strength_instruction(0.7).contains("strongly"));
    assert!(style_strength_instruction(0.85).contains("completely"));
    assert!(style_strength_instruction(1.0).contains("completely"));
}

#[test]
fn the_style_transfer_prompt_carries_style_band_and_content_rule() {
    let style = parse("monet").unwrap();
    let p = style_transfer_prompt(&style, Some(0.9), true);
    assert!(p.contains(style.instruction().as_str()));
    assert!(p.contains(style_strength_instruction(0.9)));
    assert!(p.contains(PRESERVE_CONTENT_INSTRUCTION));
    assert!(!p.contains(REINTERPRET_CONTENT_INSTRUCTION));

    let p = style_transfer_prompt(&style, None, false);
    assert!(p.contains(REINTERPRET_CONTENT_INSTRUCTION));
    assert!(
        !p.contains("Apply the style"),
        "no band without a strength: {p}"
    );
}

#[test]
fn the_inpaint_prompt_confines_the_edit_to_the_region() {
    let p = inpaint_prompt(
        "replace the cat with a dog",
        Some("the cat on the sofa"),
        false,
    );
    assert!(p.contains("replace the cat with a dog"));
    assert!(p.contains("The region to change: the cat on the sofa."));
    assert!(p.contains("must stay identical"));
    assert!(!p.contains("second image"));
}

#[test]
fn the_inpaint_prompt_explains_the_mask_overlay_when_there_is_a_mask() {
    let p = inpaint_prompt("add a window", None, true);
    assert!(p.contains("second image") && p.contains(MASK_OVERLAY_DESCRIPTION));
    assert!(!p.contains("The region to change"));
    let blank = inpaint_prompt("add a window", Some("  "), true);
    assert!(!blank.contains("The region to change"));
}

#[test]
fn the_outpaint_prompt_names_the_grey_sides_and_forbids_touching_the_original() {
    let top_right = Directions {
        top: true,
        right: true,
        ..Directions::default()
    };
    let p = outpaint_prompt("more sky with birds", top_right);
    assert!(p.contains("the top and right sides"), "{p}");
    assert!(p.contains("RGB 128, 128, 128"));
    assert!(p.contains("more sky with birds"));
    assert!(p.contains("Do not alter"));

    let left = Directions {
        left: true,
        ..Directions::default()
    };
    assert!(outpaint_prompt("x", left).contains("on the left side is new"));
    let three = Directions {
        right: false,
        ..Directions::ALL
    };
    assert!(outpaint_prompt("x", three).contains("the top, bottom and left sides"));
    assert!(outpaint_prompt("x", Directions::ALL).contains("all four sides"));
}

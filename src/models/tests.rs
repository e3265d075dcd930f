use super::*;

#[test]
fn the_guides_retired_model_routes_to_the_current_default() {
    let table = ModelTable::embedded();
    let resolved = table.resolve("gemini-2.5-flash-image-preview").unwrap();
    assert_eq!(resolved.entry.upstream_id, DEFAULT_MODEL);
    let (from, substitution) = resolved.substituted.unwrap();
    assert_eq!(from, "gemini-2.5-flash-image-preview");
    assert_eq!(substitution.shut_down.as_deref(), Some("2026-01-15"));
    assert_eq!(substitution.reason, Reason::Retired);
}

#[test]
fn a_deprecated_model_serves_until_upstream_says_otherwise() {
    let table = ModelTable::embedded();
    let resolved = table.resolve("gemini-3.1-flash-image").unwrap();
    assert_eq!(resolved.entry.name, "gemini-3.1-flash-image");
    assert!(resolved.substituted.is_none());
    assert!(table.mark_retired("gemini-3.1-flash-image"));
    let resolved = table.resolve("gemini-3.1-flash-image").unwrap();
    assert_eq!(resolved.entry.name, DEFAULT_MODEL);
    let chained = table.resolve("gemini-3.1-flash-image-preview").unwrap();
    assert_eq!(chained.entry.name, DEFAULT_MODEL, "the chain is followed");
    assert_eq!(chained.substituted.unwrap().1.successor, DEFAULT_MODEL);
}

#[test]
fn nothing_recognises_an_image_model_by_its_name() {
    let banana = ModelTable::embedded().resolve(DEFAULT_MODEL).unwrap().entry;
    assert!(!banana.name.contains("image"));
    assert_eq!(banana.image_sizes, ["1K", "2K", "4K"]);
    assert_eq!(banana.aspect_ratios.len(), 14);
    assert_eq!(banana.max_input_images, 14);
    assert_eq!(banana.thinking_levels, ["minimal", "medium", "high"]);
    assert_eq!(banana.prices.image_output, 30.0);
}

#[test]
fn unknown_models_list_the_known_ones() {
    let err = ModelTable::embedded().resolve("dall-e-3").unwrap_err();
    assert_eq!(err.details()["field"], "model");
    let known = err.details()["known_models"].as_array().unwrap();
    assert!(known.iter().any(|m| m == "gemini-3-pro-image"));
}

#[test]
fn a_configured_successor_is_honoured_and_cycles_are_refused() {
    let table = ModelTable::with_overrides(&[ModelOverride {
        name: "gemini-2.5-flash-image".into(),
        successor: Some("gemini-3-pro-image".into()),
        ..Default::default()
    }])
    .unwrap();
    let resolved = table.resolve("gemini-2.5-flash-image").unwrap();
    assert_eq!(resolved.entry.upstream_id, "gemini-3-pro-image");

    let cycle = ModelTable::with_overrides(&[ModelOverride {
        name: "gemini-3-pro-image".into(),
        successor: Some("gemini-3-pro-image-preview".into()),
        ..Default::default()
    }]);
    assert!(cycle.is_err());
}

#[test]
fn a_model_the_build_does_not_know_needs_declared_prices() {
    let missing = ModelTable::with_overrides(&[ModelOverride {
        name: "gemini-4-image".into(),
        ..Default::default()
    }]);
    assert!(missing.unwrap_err().contains("declare its prices"));
    let table = ModelTable::with_overrides(&[ModelOverride {
        name: "gemini-4-image".into(),
        prices: Some(Prices {
            input: 1.0,
            text_output: 2.0,
            image_output: 40.0,
        }),
        image_sizes: Some(vec!["1K".into()]),
        thinking_levels: Some(vec!["HIGH".into()]),
        ..Default::default()
    }])
    .unwrap();
    let entry = table.resolve("gemini-4-image").unwrap().entry;
    assert_eq!(entry.thinking_levels, ["high"]);
}

#[test]
fn a_pinned_model_is_not_retired_by_upstream() {
    let table = ModelTable::with_overrides(&[ModelOverride {
        name: "gemini-3.1-flash-image".into(),
        active: Some(true),
        ..Default::default()
    }])
    .unwrap();
    assert!(!table.mark_retired("gemini-3.1-flash-image"));
    assert!(
        table
            .resolve("gemini-3.1-flash-image")
            .unwrap()
            .substituted
            .is_none()
    );
}

#[test]
fn a_fallback_must_name_a_model() {
    let bad = ModelTable::with_overrides(&[ModelOverride {
        name: "gemini-3-pro-image".into(),
        fallback: Some(vec!["nano-banana-9".into()]),
        ..Default::default()
    }]);
    assert!(bad.unwrap_err().contains("fallback"));
}

use image::{GenericImageView, GrayImage, ImageBuffer, Luma, LumaA, Rgb, RgbImage, RgbaImage};
use proptest::prelude::*;

use super::*;

fn gradient(w: u32, h: u32) -> DynamicImage {
    DynamicImage::ImageRgb8(RgbImage::from_fn(w, h, |x, y| {
        Rgb([(x * 7 % 256) as u8, (y * 13 % 256) as u8, 200])
    }))
}

fn png(image: &DynamicImage) -> Vec<u8> {
    imaging::encode(image, ImageFormat::Png).unwrap().to_vec()
}

fn strings(values: &[&str]) -> Vec<String> {
    values.iter().map(|s| s.to_string()).collect()
}

#[test]
fn no_direction_means_all_four_sides() {
    assert_eq!(Directions::parse(None).unwrap(), Directions::ALL);
    assert_eq!(Directions::parse(Some(&[])).unwrap(), Directions::ALL);
    assert_eq!(
        Directions::parse(Some(&strings(&[" "]))).unwrap(),
        Directions::ALL
    );
}

#[test]
fn directions_are_case_insensitive_and_may_repeat() {
    let d = Directions::parse(Some(&strings(&["Top", "RIGHT", "top"]))).unwrap();
    assert_eq!(
        d,
        Directions {
            top: true,
            right: true,
            ..Directions::default()
        }
    );
    assert_eq!(d.names(), vec!["top", "right"]);
}

#[test]
fn an_unknown_direction_is_rejected_listing_the_allowed_ones() {
    let err = Directions::parse(Some(&strings(&["up"]))).unwrap_err();
    assert!(matches!(err, GenerationError::Invalid { .. }), "{err:?}");
    assert_eq!(err.details()["field"], "direction");
    assert_eq!(err.details()["allowed"].as_array().unwrap().len(), 4);
    assert!(err.to_string().contains("'up'"), "{}", err.to_string());
}

#[test]
fn extension_ratio_defaults_to_a_half_and_keeps_to_its_range() {
    assert_eq!(ExtensionRatio::parse(None).unwrap().get(), 0.5);
    assert_eq!(ExtensionRatio::parse(Some(0.1)).unwrap().get(), 0.1);
    assert_eq!(ExtensionRatio::parse(Some(2.0)).unwrap().get(), 2.0);
    for bad in [0.05, 2.5, -1.0, f64::NAN] {
        let err = ExtensionRatio::parse(Some(bad)).unwrap_err();
        assert_eq!(err.details()["field"], "extension_ratio");
        assert_eq!(err.details()["max"], 2.0);
    }
}

#[test]
fn growing_top_and_right_by_0_8_places_the_original_bottom_left() {
    let grown = grow_canvas(
        &gradient(100, 50),
        Directions {
            top: true,
            right: true,
            ..Directions::default()
        },
        &ExtensionRatio::parse(Some(0.8)).unwrap(),
    );
    assert_eq!((grown.image.width(), grown.image.height()), (180, 90));
    assert_eq!(
        grown.original,
        Placement {
            x: 0,
            y: 40,
            width: 100,
            height: 50
        }
    );
    assert_eq!(grown.image.get_pixel(150, 10), Rgba([128, 128, 128, 255]));
    assert_eq!(
        grown.image.get_pixel(3, 41),
        gradient(100, 50).get_pixel(3, 1)
    );
}

#[test]
fn growing_all_sides_centres_the_original() {
    let grown = grow_canvas(
        &gradient(10, 20),
        Directions::ALL,
        &ExtensionRatio::parse(Some(0.5)).unwrap(),
    );
    assert_eq!((grown.image.width(), grown.image.height()), (20, 40));
    assert_eq!(
        grown.original,
        Placement {
            x: 5,
            y: 10,
            width: 10,
            height: 20
        }
    );
}

#[test]
fn a_grown_canvas_keeps_the_originals_colour_type() {
    let rgba = DynamicImage::ImageRgba8(RgbaImage::from_pixel(4, 4, Rgba([1, 2, 3, 4])));
    let grown = grow_canvas(
        &rgba,
        Directions::ALL,
        &ExtensionRatio::parse(None).unwrap(),
    );
    assert_eq!(grown.image.color(), image::ColorType::Rgba8);
    assert_eq!(grown.image.get_pixel(0, 0), Rgba([128, 128, 128, 255]));
    assert_eq!(grown.image.get_pixel(2, 2), Rgba([1, 2, 3, 4]));
}

#[test]
fn sixteen_bit_originals_come_back_exactly_in_sixteen_bits() {
    let original = DynamicImage::ImageRgb16(ImageBuffer::from_fn(6, 4, |x, y| {
        image::Rgb([x as u16 * 1001 + 1, y as u16 * 3003 + 7, 65_535])
    }));
    let model = gradient(9, 9);
    let mask = Mask::from_fn(6, 4, |x, _| x < 2);
    let out = composite_inpaint(&original, &model, &mask);
    let (o, r) = (original.as_rgb16().unwrap(), out.as_rgb16().unwrap());
    for (x, y, p) in o.enumerate_pixels() {
        if x >= 2 {
            assert_eq!(r.get_pixel(x, y), p);
        }
    }
}

#[test]
fn a_mask_is_white_where_the_image_should_change() {
    let mask_image = DynamicImage::ImageLuma8(GrayImage::from_fn(4, 2, |x, _| {
        Luma([if x < 2 { 255 } else { 0 }])
    }));
    let mask = Mask::from_png(&png(&mask_image), 4, 2).unwrap();
    assert_eq!(mask.changed_pixels(), 4);
    assert!(mask.contains(1, 1) && !mask.contains(2, 1) && !mask.contains(9, 9));
    assert_eq!(
        mask.bounding_box(),
        Some(Placement {
            x: 0,
            y: 0,
            width: 2,
            height: 2
        })
    );
}

#[test]
fn the_mask_threshold_is_half_grey_and_transparent_white_changes_nothing() {
    let mask_image =
        DynamicImage::ImageLumaA8(image::GrayAlphaImage::from_fn(4, 1, |x, _| match x {
            0 => LumaA([127, 255]),
            1 => LumaA([128, 255]),
            2 => LumaA([255, 0]),
            _ => LumaA([255, 1]),
        }));
    let mask = Mask::from_png(&png(&mask_image), 4, 1).unwrap();
    let changed: Vec<bool> = (0..4).map(|x| mask.contains(x, 0)).collect();
    assert_eq!(changed, vec![false, true, false, true]);
}

#[test]
fn a_mask_of_another_size_is_scaled_nearest_neighbour() {
    // 2×2 mask, top-right white, applied to an 8×6 image.
    let mask_image = DynamicImage::ImageLuma8(GrayImage::from_fn(2, 2, |x, y| {
        Luma([if x == 1 && y == 0 { 255 } else { 0 }])
    }));
    let mask = Mask::from_png(&png(&mask_image), 8, 6).unwrap();
    assert_eq!(mask.dimensions(), (8, 6));
    assert_eq!(
        mask.bounding_box(),
        Some(Placement {
            x: 4,
            y: 0,
            width: 4,
            height: 3
        })
    );
    assert_eq!(mask.changed_pixels(), 12);
}

#[test]
fn a_jpeg_mask_is_accepted_because_its_bytes_are_sniffed() {
    let mask_image = DynamicImage::ImageLuma8(GrayImage::from_pixel(8, 8, Luma([255])));
    let bytes = imaging::encode(&mask_image, ImageFormat::Jpeg).unwrap();
    assert_eq!(Mask::from_png(&bytes, 8, 8).unwrap().changed_pixels(), 64);
}

#[test]
fn an_all_black_mask_is_rejected_as_nothing_to_change() {
    let black = DynamicImage::ImageLuma8(GrayImage::new(4, 4));
    let err = Mask::from_png(&png(&black), 4, 4).unwrap_err();
    assert!(matches!(err, GenerationError::Invalid { .. }), "{err:?}");
    assert_eq!(err.details()["field"], "mask");
    assert_eq!(err.details()["reason"], "empty");
}

#[test]
fn a_mask_that_is_not_an_image_is_rejected_without_leaking_the_cause() {
    for bytes in [&b"not an image"[..], &png(&gradient(4, 4))[..20]] {
        let err = Mask::from_png(bytes, 4, 4).unwrap_err();
        assert_eq!(err.details()["field"], "mask");
        assert_eq!(err.details()["reason"], "undecodable");
        assert!(std::error::Error::source(&err).is_some());
    }
}

#[test]
fn the_overlay_marks_the_mask_in_magenta_and_leaves_the_rest() {
    let original = gradient(6, 6);
    let mask = Mask::from_fn(6, 6, |x, y| (1..5).contains(&x) && (1..5).contains(&y));
    let overlay = mask_overlay(&original, &mask);
    assert_eq!(overlay.color(), image::ColorType::Rgb8);
    assert_eq!(overlay.get_pixel(1, 1), Rgba([255, 0, 255, 255]));
    assert_ne!(overlay.get_pixel(2, 2), original.get_pixel(2, 2));
    assert_eq!(overlay.get_pixel(0, 0), original.get_pixel(0, 0));
    assert_eq!(overlay.get_pixel(5, 5), original.get_pixel(5, 5));
}

// ---- properties ----------------------------------------------------------------------

/// A small image of a random 8-bit colour type (grey, RGB or RGBA).
fn image_of(w: u32, h: u32) -> impl Strategy<Value = DynamicImage> {
    (0usize..3).prop_flat_map(move |kind| {
        let channels = [1, 3, 4][kind];
        prop::collection::vec(any::<u8>(), (w * h * channels) as usize).prop_map(move |data| {
            match kind {
                0 => DynamicImage::ImageLuma8(GrayImage::from_raw(w, h, data).unwrap()),
                1 => DynamicImage::ImageRgb8(RgbImage::from_raw(w, h, data).unwrap()),
                _ => DynamicImage::ImageRgba8(RgbaImage::from_raw(w, h, data).unwrap()),
            }
        })
    })
}

fn small_image() -> impl Strategy<Value = DynamicImage> {
    (1u32..10, 1u32..10).prop_flat_map(|(w, h)| image_of(w, h))
}

/// An original, a model output of an unrelated size and a random mask for the original.
fn inpaint_case() -> impl Strategy<Value = (DynamicImage, DynamicImage, Mask)> {
    (1u32..10, 1u32..10).prop_flat_map(|(w, h)| {
        let bits = prop::collection::vec(any::<bool>(), (w * h) as usize);
        (image_of(w, h), small_image(), bits).prop_map(move |(original, model, bits)| {
            let mask = Mask::from_fn(w, h, |x, y| bits[(y * w + x) as usize]);
            (original, model, mask)
        })
    })
}

fn directions() -> impl Strategy<Value = Directions> {
    (any::<bool>(), any::<bool>(), any::<bool>(), any::<bool>()).prop_map(
        |(top, bottom, left, right)| Directions {
            top,
            bottom,
            left,
            right,
        },
    )
}

fn assert_unchanged_outside(
    original: &DynamicImage,
    out: &DynamicImage,
    mask: &Mask,
) -> Result<(), TestCaseError> {
    prop_assert_eq!(out.color(), original.color());
    prop_assert_eq!(out.dimensions(), original.dimensions());
    for (x, y, p) in original.pixels() {
        if !mask.contains(x, y) {
            prop_assert_eq!(out.get_pixel(x, y), p, "pixel ({}, {})", x, y);
        }
    }
    Ok(())
}

fn assert_original_region(
    out: &DynamicImage,
    original: &DynamicImage,
    at: Placement,
) -> Result<(), TestCaseError> {
    prop_assert_eq!(out.color(), original.color());
    for (x, y, p) in original.pixels() {
        prop_assert_eq!(out.get_pixel(at.x + x, at.y + y), p, "pixel ({}, {})", x, y);
    }
    Ok(())
}

proptest! {
    #[test]
    fn inpaint_never_touches_a_pixel_outside_the_mask((original, model, mask) in inpaint_case()) {
        let out = composite_inpaint(&original, &model, &mask);
        assert_unchanged_outside(&original, &out, &mask)?;
    }

    #[test]
    fn inpaint_output_survives_a_png_round_trip((original, model, mask) in inpaint_case()) {
        let out = composite_inpaint(&original, &model, &mask);
        let received = imaging::decode(&png(&out)).unwrap();
        assert_unchanged_outside(&original, &received, &mask)?;
    }

    #[test]
    fn outpaint_has_the_grown_size_and_returns_the_original_unchanged(
        original in small_image(),
        model in small_image(),
        directions in directions(),
        ratio in 0.1f64..=2.0,
    ) {
        let ratio = ExtensionRatio::parse(Some(ratio)).unwrap();
        let grown = grow_canvas(&original, directions, &ratio);
        let (w, h) = original.dimensions();
        let (add_x, add_y) = ((ratio.get() * f64::from(w)).round() as u32, (ratio.get() * f64::from(h)).round() as u32);
        let expected_w = w + add_x * (u32::from(directions.left) + u32::from(directions.right));
        let expected_h = h + add_y * (u32::from(directions.top) + u32::from(directions.bottom));
        prop_assert_eq!(grown.image.dimensions(), (expected_w, expected_h));

        let out = composite_outpaint(&model, &grown, &original);
        prop_assert_eq!(out.dimensions(), (expected_w, expected_h));
        assert_original_region(&out, &original, grown.original)?;

        let received = imaging::decode(&png(&out)).unwrap();
        prop_assert_eq!(received.dimensions(), (expected_w, expected_h));
        assert_original_region(&received, &original, grown.original)?;
    }
}

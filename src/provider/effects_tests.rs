use image::GenericImageView;

use super::*;
use crate::generation::styles::STYLE_PRESETS;

/// Varied colour and a hard diagonal edge, so every effect has something to act on.
fn scene(w: u32, h: u32) -> DynamicImage {
    DynamicImage::ImageRgb8(RgbImage::from_fn(w, h, |x, y| {
        if x > y {
            Rgb([(x * 5 % 256) as u8, 40, (y * 9 % 256) as u8])
        } else {
            Rgb([230, (x * 3 % 256) as u8, 60])
        }
    }))
}

fn differing_pixels(a: &DynamicImage, b: &DynamicImage) -> usize {
    a.pixels()
        .zip(b.pixels())
        .filter(|(p, q)| p.2 != q.2)
        .count()
}

#[test]
fn every_style_keeps_the_size_and_visibly_changes_the_image() {
    let input = scene(40, 30);
    let names = STYLE_PRESETS
        .iter()
        .map(|p| p.name)
        .chain(["a dreamy 1970s postcard"]);
    for name in names {
        let out = apply_style(&input, name, 1.0);
        assert_eq!(out.dimensions(), (40, 30), "{name}");
        assert!(
            differing_pixels(&input, &out) > 40 * 30 / 4,
            "{name} barely changed the image"
        );
    }
}

#[test]
fn presets_look_different_from_each_other() {
    let input = scene(32, 32);
    let outputs: Vec<_> = STYLE_PRESETS
        .iter()
        .map(|p| apply_style(&input, p.name, 1.0))
        .collect();
    for (i, a) in outputs.iter().enumerate() {
        for b in &outputs[i + 1..] {
            assert_ne!(a, b);
        }
    }
}

#[test]
fn strength_zero_returns_the_input_unchanged() {
    let input = DynamicImage::ImageRgba8(scene(16, 16).to_rgba8());
    for name in ["van_gogh", "pixel_art", "something else"] {
        assert_eq!(apply_style(&input, name, 0.0), input);
        assert_eq!(apply_style(&input, name, f64::NAN), input);
    }
}

#[test]
fn pixel_art_is_made_of_flat_blocks_that_grow_with_strength() {
    let input = scene(64, 48);
    assert!(pixel_block(64, 48, 0.2) < pixel_block(64, 48, 1.0));
    let block = pixel_block(64, 48, 1.0);
    assert_eq!(block, 4);
    let out = apply_style(&input, "pixel_art", 1.0).to_rgb8();
    for (x, y, p) in out.enumerate_pixels() {
        let corner = out.get_pixel(x - x % block, y - y % block);
        assert_eq!(p, corner, "({x},{y}) differs from its block");
    }
}

#[test]
fn pencil_sketch_is_grey() {
    let out = apply_style(&scene(24, 24), "pencil_sketch", 1.0).to_rgb8();
    assert!(out.pixels().all(|p| p[0] == p[1] && p[1] == p[2]));
    // Lines are drawn along the diagonal edge, not just a flat grey.
    let darkest = out.pixels().map(|p| p[0]).min().unwrap_or(255);
    let lightest = out.pixels().map(|p| p[0]).max().unwrap_or(0);
    assert!(lightest - darkest > 60, "{darkest}..{lightest}");
}

#[test]
fn half_strength_lies_between_the_input_and_the_full_effect() {
    let input = scene(16, 16);
    let full = apply_style(&input, "monet", 1.0).to_rgb8();
    let half = apply_style(&input, "monet", 0.5).to_rgb8();
    let rgb = input.to_rgb8();
    for (x, y, p) in half.enumerate_pixels() {
        for c in 0..3 {
            let (a, b) = (rgb.get_pixel(x, y)[c], full.get_pixel(x, y)[c]);
            assert!((a.min(b)..=a.max(b)).contains(&p[c]));
        }
    }
}

#[test]
fn styling_keeps_alpha() {
    let input = DynamicImage::ImageRgba8(RgbaImage::from_fn(8, 8, |x, _| {
        Rgba([200, 30, 30, (x * 30) as u8])
    }));
    let out = apply_style(&input, "pop_art", 1.0).to_rgba8();
    assert!(
        out.enumerate_pixels()
            .all(|(x, _, p)| p[3] == (x * 30) as u8)
    );
}

#[test]
fn free_text_styles_are_deterministic_and_differ_by_name() {
    let input = scene(16, 16);
    let a = apply_style(&input, "moody film noir", 1.0);
    assert_eq!(a, apply_style(&input, "moody film noir", 1.0));
    assert_ne!(a, apply_style(&input, "sunny travel poster", 1.0));
}

#[test]
fn fill_region_changes_only_pixels_inside_the_region() {
    let input = scene(20, 16);
    let region = Placement {
        x: 5,
        y: 4,
        width: 8,
        height: 6,
    };
    let out = fill_region(&input, region, b"seed");
    assert_eq!(out.color(), input.color());
    for (x, y, p) in input.pixels() {
        if !region.contains(x, y) {
            assert_eq!(out.get_pixel(x, y), p, "({x},{y})");
        }
    }
    assert!(differing_pixels(&input, &out) > 0);
}

#[test]
fn a_filled_hole_continues_its_surroundings() {
    // A flat blue image with a hole: the fill stays close to blue, not to the seed tint.
    let input = DynamicImage::ImageRgb8(RgbImage::from_pixel(30, 30, Rgb([20, 60, 200])));
    let out = fill_region(
        &input,
        Placement {
            x: 10,
            y: 10,
            width: 10,
            height: 10,
        },
        b"x",
    );
    let p = out.get_pixel(15, 15);
    assert!(p[2] > 150 && p[0] < 100, "{p:?}");
}

#[test]
fn fill_region_is_deterministic_and_clips_to_the_image() {
    let input = scene(12, 12);
    let region = Placement {
        x: 8,
        y: 8,
        width: 100,
        height: 100,
    };
    let a = fill_region(&input, region, b"s");
    assert_eq!(a, fill_region(&input, region, b"s"));
    assert_eq!(a.dimensions(), (12, 12));
    let whole = fill_region(
        &input,
        Placement {
            x: 0,
            y: 0,
            width: 12,
            height: 12,
        },
        b"s",
    );
    assert_eq!(whole.dimensions(), (12, 12));
}

#[test]
fn fill_around_extends_the_original_and_leaves_it_alone() {
    let canvas = DynamicImage::ImageRgb8(RgbImage::from_fn(30, 20, |x, y| {
        let inside = (10..20).contains(&x) && (5..15).contains(&y);
        if inside {
            Rgb([200, (x * 10) as u8, 40])
        } else {
            Rgb([128, 128, 128])
        }
    }));
    let known = Placement {
        x: 10,
        y: 5,
        width: 10,
        height: 10,
    };
    let out = fill_around(&canvas, known, b"seed");
    for (x, y, p) in canvas.pixels() {
        if known.contains(x, y) {
            assert_eq!(out.get_pixel(x, y), p);
        } else {
            assert_ne!(
                out.get_pixel(x, y),
                Rgba([128, 128, 128, 255]),
                "grey left at ({x},{y})"
            );
        }
    }
    // Right next to the original the extension matches its edge closely.
    let (edge, next) = (canvas.get_pixel(10, 8), out.get_pixel(9, 8));
    assert!(
        (0..3).all(|c| edge[c].abs_diff(next[c]) < 25),
        "{edge:?} vs {next:?}"
    );
}

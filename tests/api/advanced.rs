//! Inpainting with masks (pixels outside unchanged), outpainting (grown canvas, original
//! preserved), style transfer — offline and through the real client.

use image::{GenericImageView, Rgb, RgbImage};
use serde_json::json;

use crate::support::fake_gemini::FakeGemini;
use crate::support::{TestApp, decode_image, expect_invalid, file_part, jpeg, json_of, png};

fn mask_png(w: u32, h: u32, region: (u32, u32, u32, u32)) -> Vec<u8> {
    let (x0, y0, x1, y1) = region;
    let img = RgbImage::from_fn(w, h, |x, y| {
        if (x0..x1).contains(&x) && (y0..y1).contains(&y) {
            Rgb([255, 255, 255])
        } else {
            Rgb([0, 0, 0])
        }
    });
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

fn assert_unchanged_outside(
    original: &image::DynamicImage,
    out: &image::DynamicImage,
    inside: impl Fn(u32, u32) -> bool,
) -> usize {
    assert_eq!(original.dimensions(), out.dimensions());
    let (a, b) = (original.to_rgb8(), out.to_rgb8());
    let mut changed_inside = 0;
    for (x, y, p) in a.enumerate_pixels() {
        if inside(x, y) {
            changed_inside += usize::from(p != b.get_pixel(x, y));
        } else {
            assert_eq!(
                p,
                b.get_pixel(x, y),
                "pixel ({x},{y}) outside the mask changed"
            );
        }
    }
    changed_inside
}

#[tokio::test]
async fn inpainting_with_a_mask_returns_every_pixel_outside_it_unchanged() {
    let app = TestApp::offline().await;
    let input = png(200, 150);
    let form = reqwest::multipart::Form::new()
        .part("image", file_part(input.clone(), "scene.png"))
        .part(
            "mask",
            file_part(mask_png(200, 150, (50, 40, 120, 90)), "mask.png"),
        )
        .text("prompt", "A red vintage car")
        .text("region_description", "the blue car in the centre");
    let (status, _, body) = json_of(app.post_form("/advanced/inpaint", form).await).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["mime_types"],
        json!(["image/png"]),
        "composites are lossless"
    );
    let out = decode_image(&body["images"][0]);
    let original = image::load_from_memory(&input).unwrap();
    let changed = assert_unchanged_outside(&original, &out, |x, y| {
        (50..120).contains(&x) && (40..90).contains(&y)
    });
    assert!(changed > 0, "the masked region was edited");
}

#[tokio::test]
async fn inpainting_a_large_photo_through_gemini_composites_at_full_resolution() {
    let fake = FakeGemini::start().await;
    let app = TestApp::gemini(&fake).await;
    let input = jpeg(2048, 1536);
    // A mask at a quarter of the size: it is scaled to the photo.
    let form = reqwest::multipart::Form::new()
        .part("image", file_part(input.clone(), "scene.jpg"))
        .part(
            "mask",
            file_part(mask_png(512, 384, (128, 96, 256, 192)), "mask.png"),
        )
        .text("prompt", "A red vintage car")
        .text("region_description", "the car");
    let (status, _, body) = json_of(app.post_form("/advanced/inpaint", form).await).await;
    assert_eq!(status, 200, "{body}");
    let sent = &fake.requests()[0];
    assert_eq!(sent.images.len(), 2, "the photo and the marked-up overlay");
    let first = image::load_from_memory(&sent.images[0].1).unwrap();
    assert_eq!(
        first.dimensions(),
        (1024, 768),
        "downscaled before going upstream"
    );
    let text = sent.body["contents"][0]["parts"][2]["text"]
        .as_str()
        .unwrap();
    assert!(
        text.contains("A red vintage car") && text.contains("the car") && text.contains("magenta"),
        "{text}"
    );
    let out = decode_image(&body["images"][0]);
    let original = image::load_from_memory(&input).unwrap();
    let changed = assert_unchanged_outside(&original, &out, |x, y| {
        (512..1024).contains(&x) && (384..768).contains(&y)
    });
    assert!(changed > 0);
}

#[tokio::test]
async fn inpainting_without_a_mask_lets_the_region_description_guide_the_model() {
    let fake = FakeGemini::start().await;
    let app = TestApp::gemini(&fake).await;
    let form = reqwest::multipart::Form::new()
        .part("image", file_part(jpeg(320, 240), "scene.jpg"))
        .text("prompt", "A red vintage car")
        .text(
            "region_description",
            "the blue car in the center of the image",
        );
    let (status, _, body) = json_of(app.post_form("/advanced/inpaint", form).await).await;
    assert_eq!(status, 200, "{body}");
    let sent = &fake.requests()[0];
    assert_eq!(sent.images.len(), 1);
    let text = sent.body["contents"][0]["parts"][1]["text"]
        .as_str()
        .unwrap();
    assert!(
        text.contains("the blue car in the center of the image"),
        "{text}"
    );
}

#[tokio::test]
async fn bad_masks_are_refused() {
    let app = TestApp::offline().await;
    for (mask, reason) in [
        (mask_png(100, 100, (0, 0, 0, 0)), "an all-black mask"),
        (b"GIF89a..".to_vec(), "a gif"),
    ] {
        let form = reqwest::multipart::Form::new()
            .part("image", file_part(png(100, 100), "a.png"))
            .part("mask", file_part(mask, "m.png"))
            .text("prompt", "x");
        let body = expect_invalid(app.post_form("/advanced/inpaint", form).await).await;
        assert_eq!(body["details"]["field"], "mask", "{reason}: {body}");
    }
}

#[tokio::test]
async fn outpainting_grows_the_canvas_and_keeps_the_original_region() {
    let app = TestApp::offline().await;
    let input = png(200, 100);
    let form = reqwest::multipart::Form::new()
        .part("image", file_part(input.clone(), "landscape.png"))
        .text("prompt", "Continue the mountain landscape")
        .text("direction", "top")
        .text("direction", "right")
        .text("extension_ratio", "0.8");
    let (status, _, body) = json_of(app.post_form("/advanced/outpaint", form).await).await;
    assert_eq!(status, 200, "{body}");
    let out = decode_image(&body["images"][0]).to_rgb8();
    assert_eq!(
        out.dimensions(),
        (360, 180),
        "200×100 grown by 0.8 to the top and right"
    );
    let original = image::load_from_memory(&input).unwrap().to_rgb8();
    for (x, y, p) in original.enumerate_pixels() {
        assert_eq!(p, out.get_pixel(x, y + 80), "original pixel ({x},{y})");
    }
    assert_ne!(
        out.get_pixel(300, 10),
        &Rgb([128, 128, 128]),
        "the new area is filled, not left grey"
    );
}

#[tokio::test]
async fn outpainting_sends_the_grown_canvas_upstream() {
    let fake = FakeGemini::start().await;
    let app = TestApp::gemini(&fake).await;
    let form = reqwest::multipart::Form::new()
        .part("image", file_part(jpeg(800, 600), "landscape.jpg"))
        .text("prompt", "more sky")
        .text("direction", "[\"left\", \"right\"]")
        .text("extension_ratio", "0.5");
    let (status, _, body) = json_of(app.post_form("/advanced/outpaint", form).await).await;
    assert_eq!(status, 200, "{body}");
    let sent = &fake.requests()[0];
    let canvas = image::load_from_memory(&sent.images[0].1)
        .unwrap()
        .to_rgb8();
    assert_eq!(
        canvas.dimensions(),
        (1024, 384),
        "1600×600 grown canvas, downscaled to 1024"
    );
    assert_eq!(
        canvas.get_pixel(5, 200),
        &Rgb([128, 128, 128]),
        "the new area is neutral grey"
    );
    let text = sent.body["contents"][0]["parts"][1]["text"]
        .as_str()
        .unwrap();
    assert!(
        text.contains("left") && text.contains("right") && text.contains("more sky"),
        "{text}"
    );
    let out = decode_image(&body["images"][0]);
    assert_eq!(out.dimensions(), (1600, 600));
}

#[tokio::test]
async fn outpaint_fields_are_validated() {
    let app = TestApp::offline().await;
    for (name, value, field) in [
        ("direction", "up", "direction"),
        ("extension_ratio", "3", "extension_ratio"),
        ("extension_ratio", "0.05", "extension_ratio"),
    ] {
        let form = reqwest::multipart::Form::new()
            .part("image", file_part(png(50, 50), "a.png"))
            .text("prompt", "x")
            .text(name, value);
        let body = expect_invalid(app.post_form("/advanced/outpaint", form).await).await;
        assert_eq!(body["details"]["field"], field, "{body}");
    }
}

#[tokio::test]
async fn style_transfer_applies_presets_and_free_text() {
    let app = TestApp::offline().await;
    for style in ["van_gogh", "Pixel-Art", "a moody film noir still"] {
        let form = reqwest::multipart::Form::new()
            .part("image", file_part(png(120, 90), "photo.png"))
            .text("style", style)
            .text("style_strength", "0.8")
            .text("preserve_content", "True");
        let (status, _, body) =
            json_of(app.post_form("/advanced/style-transfer", form).await).await;
        assert_eq!(status, 200, "{style}: {body}");
        assert_eq!(decode_image(&body["images"][0]).dimensions(), (120, 90));
    }
    for (name, value, field) in [
        ("style_strength", "1.5", "style_strength"),
        ("preserve_content", "perhaps", "preserve_content"),
    ] {
        let form = reqwest::multipart::Form::new()
            .part("image", file_part(png(20, 20), "a.png"))
            .text("style", "monet")
            .text(name, value);
        let body = expect_invalid(app.post_form("/advanced/style-transfer", form).await).await;
        assert_eq!(body["details"]["field"], field);
    }
    let form = reqwest::multipart::Form::new().part("image", file_part(png(20, 20), "a.png"));
    let body = expect_invalid(app.post_form("/advanced/style-transfer", form).await).await;
    assert_eq!(body["details"]["field"], "style");
}

#[tokio::test]
async fn style_transfer_tells_the_model_the_preset_and_how_much_to_keep() {
    let fake = FakeGemini::start().await;
    let app = TestApp::gemini(&fake).await;
    let form = reqwest::multipart::Form::new()
        .part("image", file_part(jpeg(200, 200), "photo.jpg"))
        .text("style", "ukiyo_e")
        .text("style_strength", "0.2")
        .text("preserve_content", "true");
    let (status, _, body) = json_of(app.post_form("/advanced/style-transfer", form).await).await;
    assert_eq!(status, 200, "{body}");
    let text = fake.requests()[0].body["contents"][0]["parts"][1]["text"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        text.contains("ukiyo-e") && text.contains("Preserve the content exactly"),
        "{text}"
    );
}

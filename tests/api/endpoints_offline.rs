//! The guide's core endpoints end to end on the offline provider.

use serde_json::json;

use crate::support::{
    TestApp, decode_image, expect_error, expect_invalid, file_part, json_of, png,
};

#[tokio::test]
async fn generate_image_returns_a_stored_decodable_image_labelled_offline() {
    let app = TestApp::offline().await;
    let response = app
        .post_json(
            "/generate-image",
            json!({"prompt": "A golden retriever in a park", "model": "gemini-3.1-flash-image"}),
        )
        .await;
    let (status, request_id, body) = json_of(response).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["request_id"], request_id.as_str());
    assert_eq!(body["model"], "offline");
    assert_eq!(body["finish_reason"], "STOP");
    assert_eq!(body["mime_types"], json!(["image/png"]));
    assert_eq!(body["cached"], false);
    assert_eq!(body["usage"]["cost_usd"], 0.0);
    assert!(
        body["text"]
            .as_str()
            .unwrap()
            .contains("No model was called")
    );
    let image = decode_image(&body["images"][0]);
    assert_eq!((image.width(), image.height()), (1024, 1024));

    let image_id = body["image_ids"][0].as_str().unwrap();
    let stored = app.get(&format!("/images/{image_id}")).await;
    assert_eq!(stored.status(), 200);
    assert_eq!(stored.headers()["content-type"], "image/png");
    assert!(stored.headers().contains_key("x-request-id"));
    let bytes = stored.bytes().await.unwrap();
    let returned = base64::Engine::decode(
        &base64::engine::general_purpose::STANDARD,
        body["images"][0].as_str().unwrap(),
    )
    .unwrap();
    assert_eq!(
        bytes.as_ref(),
        returned.as_slice(),
        "stored bytes are the returned bytes"
    );
}

#[tokio::test]
async fn the_same_prompt_renders_the_same_image_offline() {
    let app = TestApp::offline().await;
    let body = json!({"prompt": "a lighthouse", "model": "gemini-3.1-flash-image", "aspect_ratio": "1:1", "image_size": "512"});
    let (_, _, a) = json_of(app.post_json("/generate-image", body.clone()).await).await;
    let (_, _, b) = json_of(app.post_json("/generate-image", body).await).await;
    assert_eq!(a["images"][0], b["images"][0]);
    assert_ne!(a["image_ids"][0], b["image_ids"][0]);
}

#[tokio::test]
async fn aspect_ratio_and_image_size_are_obeyed() {
    let app = TestApp::offline().await;
    for (ratio, size, expected) in [
        ("16:9", "512", (688, 384)),
        ("9:16", "512", (384, 688)),
        ("4:3", "1K", (1200, 896)),
    ] {
        let response = app
            .post_json(
                "/generate-image",
                json!({"prompt": "a fox", "model": "gemini-3.1-flash-image", "aspect_ratio": ratio, "image_size": size}),
            )
            .await;
        let (status, _, body) = json_of(response).await;
        assert_eq!(status, 200, "{body}");
        let image = decode_image(&body["images"][0]);
        assert_eq!((image.width(), image.height()), expected, "{ratio} {size}");
    }
}

#[tokio::test]
async fn image_only_modality_returns_no_text() {
    let app = TestApp::offline().await;
    let (status, _, body) = json_of(
        app.post_json(
            "/generate-image",
            json!({"prompt": "a fox", "model": "gemini-3.1-flash-image", "response_modalities": ["IMAGE"], "image_size": "512"}),
        )
        .await,
    )
    .await;
    assert_eq!(status, 200);
    assert!(body.get("text").is_none(), "{body}");
}

#[tokio::test]
async fn the_guides_2150_character_prompt_gets_400_with_details() {
    let app = TestApp::offline().await;
    let body = expect_invalid(
        app.post_json("/generate-image", json!({"prompt": "x".repeat(2150)}))
            .await,
    )
    .await;
    assert_eq!(
        body["message"],
        "The prompt is too long. Maximum length is 2000 characters."
    );
    assert_eq!(
        body["details"],
        json!({"field": "prompt", "max_length": 2000, "current_length": 2150})
    );
}

#[tokio::test]
async fn bad_json_bodies_get_400_naming_the_field() {
    let app = TestApp::offline().await;
    let cases = [
        (json!({}), "prompt"),
        (json!({"prompt": "   "}), "prompt"),
        (json!({"prompt": 42}), "prompt"),
        (json!({"prompt": "a", "temperature": "hot"}), "temperature"),
        (json!({"prompt": "a", "temperature": 2.5}), "temperature"),
        (json!({"prompt": "a", "promt": "typo"}), "promt"),
        (json!({"prompt": "a", "model": "dall-e-3"}), "model"),
        (
            json!({"prompt": "a", "response_modalities": ["audio"]}),
            "response_modalities",
        ),
        (
            json!({"prompt": "a", "aspect_ratio": "7:3"}),
            "aspect_ratio",
        ),
        (
            json!({"prompt": "a", "model": "gemini-3-pro-image", "image_size": "512"}),
            "image_size",
        ),
        (json!({"prompt": "a", "seed": 1u64 << 40}), "seed"),
        (json!({"prompt": "a", "async": "yes"}), "async"),
        (
            json!({"prompt": "a", "webhook_url": "https://example.com/hook"}),
            "webhook_url",
        ),
    ];
    for (request, field) in cases {
        let body = expect_invalid(app.post_json("/generate-image", request.clone()).await).await;
        assert_eq!(body["details"]["field"], field, "for {request}: {body}");
    }
}

#[tokio::test]
async fn unknown_model_errors_list_the_known_models() {
    let app = TestApp::offline().await;
    let body = expect_invalid(
        app.post_json(
            "/generate-image",
            json!({"prompt": "a", "model": "dall-e-3"}),
        )
        .await,
    )
    .await;
    let known = body["details"]["known_models"].as_array().unwrap();
    assert!(known.contains(&json!("gemini-3.1-flash-image")), "{body}");
}

#[tokio::test]
async fn malformed_and_non_json_bodies_are_refused_in_the_contract_shape() {
    let app = TestApp::offline().await;
    let send = |content_type: &str, body: String| {
        let request = app.client.post(app.url("/generate-image"));
        request
            .header("content-type", content_type)
            .body(body)
            .send()
    };
    let broken = send("application/json", "{\"prompt\": ".into())
        .await
        .unwrap();
    expect_invalid(broken).await;
    let form = send("text/plain", "prompt=hello".into()).await.unwrap();
    expect_invalid(form).await;
    let huge = format!("{{\"prompt\": \"{}\"}}", "a".repeat(2 * 1024 * 1024));
    let huge = send("application/json", huge).await.unwrap();
    expect_error(huge, 413, "file_too_large").await;
}

#[tokio::test]
async fn retired_models_are_routed_with_a_deprecation_header() {
    let app = TestApp::offline().await;
    let response = app
        .post_json("/generate-image", json!({"prompt": "a cat", "model": "gemini-2.5-flash-image-preview", "image_size": "1K"}))
        .await;
    assert_eq!(response.status(), 200);
    let headers = response.headers();
    assert_eq!(
        headers["deprecation"], "@1768435200",
        "RFC 9745 date of the shutdown"
    );
    assert_eq!(
        headers["x-imagegate-requested-model"],
        "gemini-2.5-flash-image-preview"
    );
    assert_eq!(
        headers["x-imagegate-model-substituted"],
        "gemini-2.5-flash-image-preview -> gemini-nano-banana-2.1"
    );
}

#[tokio::test]
async fn edit_image_returns_an_image_derived_from_the_input() {
    let app = TestApp::offline().await;
    let form = reqwest::multipart::Form::new()
        .part("image", file_part(png(320, 200), "photo.png"))
        .text("prompt", "Replace the background with a cozy coffee shop")
        .text("preserve_subject", "True")
        .text("edit_strength", "0.7");
    let (status, _, body) = json_of(app.post_form("/edit-image", form).await).await;
    assert_eq!(status, 200, "{body}");
    let out = decode_image(&body["images"][0]).to_rgb8();
    assert_eq!(
        out.dimensions(),
        (320, 200),
        "an edit keeps the input's size"
    );
    // The input is a left-to-right red ramp: the edit keeps it visible.
    assert!(out.get_pixel(310, 100)[0] > out.get_pixel(5, 100)[0]);
}

#[tokio::test]
async fn edit_image_validates_its_fields() {
    let app = TestApp::offline().await;
    let image = || reqwest::multipart::Form::new().part("image", file_part(png(8, 8), "a.png"));
    let cases: Vec<(reqwest::multipart::Form, &str)> = vec![
        (reqwest::multipart::Form::new().text("prompt", "x"), "image"),
        (image(), "prompt"),
        (
            image().text("prompt", "x").text("edit_strength", "1.5"),
            "edit_strength",
        ),
        (
            image()
                .text("prompt", "x")
                .text("preserve_subject", "maybe"),
            "preserve_subject",
        ),
        (image().text("prompt", "x").text("mystery", "1"), "mystery"),
        (
            image()
                .part("image", file_part(png(8, 8), "b.png"))
                .text("prompt", "x"),
            "image",
        ),
    ];
    for (form, field) in cases {
        let body = expect_invalid(app.post_form("/edit-image", form).await).await;
        assert_eq!(body["details"]["field"], field, "{body}");
    }
    let not_multipart = app.post_json("/edit-image", json!({"prompt": "x"})).await;
    expect_invalid(not_multipart).await;
}

#[tokio::test]
async fn compose_images_lays_out_its_inputs() {
    let app = TestApp::offline().await;
    let form = reqwest::multipart::Form::new()
        .part("images", file_part(png(100, 80), "person.png"))
        .part("images", file_part(png(120, 80), "background.png"))
        .text("prompt", "Place the person into the background")
        .text("composition_style", "side_by_side");
    let (status, _, body) = json_of(app.post_form("/compose-images", form).await).await;
    assert_eq!(status, 200, "{body}");
    let out = decode_image(&body["images"][0]);
    assert_eq!((out.width(), out.height()), (220, 80));

    let blend = reqwest::multipart::Form::new()
        .part("images", file_part(png(100, 80), "a.png"))
        .part("images", file_part(png(100, 80), "b.png"))
        .part("images", file_part(png(50, 40), "c.png"))
        .text("prompt", "blend them")
        .text("composition_style", "blend");
    let (status, _, body) = json_of(app.post_form("/compose-images", blend).await).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn compose_images_takes_two_or_three_images() {
    let app = TestApp::offline().await;
    for count in [0, 1, 4] {
        let mut form = reqwest::multipart::Form::new().text("prompt", "compose");
        for i in 0..count {
            form = form.part("images", file_part(png(16, 16), &format!("{i}.png")));
        }
        let body = expect_invalid(app.post_form("/compose-images", form).await).await;
        assert_eq!(body["details"]["field"], "images");
        assert_eq!(body["details"]["count"], count);
    }
    let form = reqwest::multipart::Form::new()
        .part("images", file_part(png(16, 16), "a.png"))
        .part("images", file_part(png(16, 16), "b.png"))
        .text("prompt", "compose")
        .text("composition_style", "mosaic");
    let body = expect_invalid(app.post_form("/compose-images", form).await).await;
    assert_eq!(body["details"]["field"], "composition_style");
}

#[tokio::test]
async fn unknown_images_routes_and_methods_answer_in_the_contract_shape() {
    let app = TestApp::offline().await;
    expect_error(
        app.get("/images/img_01JF0000000000000000000000").await,
        404,
        "not_found",
    )
    .await;
    expect_error(
        app.get("/images/..%2F..%2Fetc%2Fpasswd").await,
        404,
        "not_found",
    )
    .await;
    expect_error(app.get("/nope").await, 404, "not_found").await;
    expect_error(app.get("/generate-image").await, 405, "method_not_allowed").await;
}

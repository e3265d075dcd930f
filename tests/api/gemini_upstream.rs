//! The real Gemini client against the local fake, through the HTTP API: what is sent
//! upstream, and every answer shape of docs/upstream.md mapped to docs/api.md#errors.

use serde_json::{Value, json};

use crate::support::fake_gemini::{FAKE_API_KEY, FakeGemini, FakeOptions};
use crate::support::{
    TestApp, decode_image, expect_error, expect_invalid, file_part, jpeg, json_of, png,
};

async fn generate(app: &TestApp, prompt: &str) -> reqwest::Response {
    app.post_json("/generate-image", json!({"prompt": prompt}))
        .await
}

#[tokio::test]
async fn every_generation_parameter_reaches_the_upstream_request() {
    let fake = FakeGemini::start().await;
    let app = TestApp::gemini(&fake).await;
    let response = app
        .post_json(
            "/generate-image",
            json!({"prompt": "a lighthouse [[fake:png]]", "model": "gemini-3.1-flash-image",
                   "aspect_ratio": "16:9", "image_size": "2K", "temperature": 0.8, "seed": 7,
                   "response_modalities": ["Text", "Image"]}),
        )
        .await;
    let (status, _, body) = json_of(response).await;
    assert_eq!(status, 200, "{body}");
    let sent = &fake.requests()[0];
    assert_eq!(
        sent.path,
        "/v1beta/models/gemini-3.1-flash-image:generateContent"
    );
    assert_eq!(sent.api_key.as_deref(), Some(FAKE_API_KEY));
    let config = &sent.body["generationConfig"];
    assert_eq!(config["responseModalities"], json!(["TEXT", "IMAGE"]));
    assert_eq!(
        config["imageConfig"],
        json!({"aspectRatio": "16:9", "imageSize": "2K"})
    );
    assert_eq!(config["temperature"], 0.8);
    assert_eq!(config["seed"], 7);
    assert_eq!(sent.body["contents"][0]["role"], "user");
    assert_eq!(
        sent.body["contents"][0]["parts"][0]["text"],
        "a lighthouse [[fake:png]]"
    );

    assert_eq!(body["model"], "gemini-3.1-flash-image");
    let image = decode_image(&body["images"][0]);
    assert_eq!(
        (image.width(), image.height()),
        (2752, 1536),
        "the fake honours 16:9 2K"
    );
    assert_eq!(body["mime_types"], json!(["image/png"]));
}

#[tokio::test]
async fn usage_is_priced_with_image_tokens_at_the_image_rate() {
    let fake = FakeGemini::start().await;
    let app = TestApp::gemini(&fake).await;
    let (status, _, body) = json_of(
        app.post_json("/generate-image", json!({"prompt": "a fox", "model": "gemini-3-pro-image", "response_modalities": ["IMAGE"]}))
            .await,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let usage = &body["usage"];
    assert_eq!(
        usage["image_tokens"], 1120,
        "3 Pro Image at 1K: 1120 tokens"
    );
    let input = usage["input_tokens"].as_u64().unwrap() as f64;
    let output = usage["output_tokens"].as_u64().unwrap() as f64;
    // $2/M input, $12/M text output, $120/M image output (docs/upstream.md#prices).
    let expected = (input * 2.0 + (output - 1120.0) * 12.0 + 1120.0 * 120.0) / 1e6;
    assert!(
        (usage["cost_usd"].as_f64().unwrap() - expected).abs() < 1e-6,
        "{usage} vs {expected}"
    );
    assert!(
        usage["cost_usd"].as_f64().unwrap() > 0.134,
        "≈$0.134 per image"
    );
}

#[tokio::test]
async fn a_retired_model_is_sent_upstream_as_its_successor() {
    let fake = FakeGemini::start().await;
    let app = TestApp::gemini(&fake).await;
    let response = app
        .post_json(
            "/generate-image",
            json!({"prompt": "a cat", "model": "gemini-2.5-flash-image-preview"}),
        )
        .await;
    assert_eq!(
        response.headers()["x-imagegate-model"],
        "gemini-nano-banana-2.1"
    );
    assert!(response.headers().contains_key("deprecation"));
    let (status, _, body) = json_of(response).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(fake.requests()[0].model, "gemini-nano-banana-2.1");
}

#[tokio::test]
async fn text_and_image_are_both_returned_and_thoughts_are_not() {
    let fake = FakeGemini::start().await;
    let app = TestApp::gemini(&fake).await;
    let (status, _, body) = json_of(generate(&app, "a diagram [[fake:thoughts]]").await).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["images"].as_array().unwrap().len(),
        1,
        "the interim thought image is not a result"
    );
    let text = body["text"].as_str().unwrap();
    assert_eq!(text, "Here is the image you asked for.");
    assert!(
        !text.contains("Composing the scene"),
        "thought text is not returned"
    );
    let returned = base64::Engine::decode(
        &base64::engine::general_purpose::STANDARD,
        body["images"][0].as_str().unwrap(),
    )
    .unwrap();
    let final_image = image::load_from_memory(&returned).unwrap().to_rgb8();
    // The fake paints the interim thought image in a different colour from the final one.
    assert_eq!(body["mime_types"], json!(["image/jpeg"]));
    assert!(final_image.width() > 0);
    assert!(body["usage"]["thought_tokens"].as_u64().unwrap() > 0);

    let (status, _, plain) = json_of(generate(&app, "a plain one").await).await;
    assert_eq!(status, 200);
    assert!(
        plain["text"].as_str().is_some(),
        "TEXT was requested, so text comes back: {plain}"
    );
}

#[tokio::test]
async fn every_refusal_shape_is_a_422_never_an_empty_200() {
    let fake = FakeGemini::start().await;
    let app = TestApp::gemini(&fake).await;
    let blocked = [
        ("image_safety", "IMAGE_SAFETY", false),
        ("image_prohibited", "IMAGE_PROHIBITED_CONTENT", false),
        ("image_recitation", "IMAGE_RECITATION", false),
        ("safety", "SAFETY", false),
        ("recitation", "RECITATION", false),
        ("prompt_blocked", "PROHIBITED_CONTENT", true),
    ];
    for (marker, reason, prompt_blocked) in blocked {
        let body = expect_error(
            generate(&app, &format!("x [[fake:{marker}]]")).await,
            422,
            "content_blocked",
        )
        .await;
        assert_eq!(body["details"]["reason"], reason, "{marker}: {body}");
        assert_eq!(
            body["details"]["prompt_blocked"], prompt_blocked,
            "{marker}"
        );
    }
    for (marker, reason) in [
        ("no_image", "NO_IMAGE"),
        ("max_tokens", "MAX_TOKENS"),
        ("image_other", "IMAGE_OTHER"),
        ("other", "OTHER"),
        ("text_only", "STOP"),
    ] {
        let body = expect_error(
            generate(&app, &format!("x [[fake:{marker}]]")).await,
            422,
            "no_image_generated",
        )
        .await;
        assert_eq!(body["details"]["finish_reason"], reason, "{marker}: {body}");
    }
    let body = expect_error(
        generate(&app, "x [[fake:text_only]]").await,
        422,
        "no_image_generated",
    )
    .await;
    assert!(
        body["details"]["text"]
            .as_str()
            .is_some_and(|t| !t.is_empty()),
        "the model's words: {body}"
    );
    expect_error(
        generate(&app, "x [[fake:empty]]").await,
        502,
        "upstream_error",
    )
    .await;
}

#[tokio::test]
async fn a_429_with_retry_info_is_retried_after_the_upstream_delay() {
    let fake = FakeGemini::start_with(FakeOptions {
        retry_delay: "0.3s".into(),
        ..Default::default()
    })
    .await;
    let app = TestApp::gemini(&fake).await;
    let (status, _, body) = json_of(generate(&app, "quota [[fake:429:2]]").await).await;
    assert_eq!(status, 200, "{body}");
    let calls = fake.calls_for("[[fake:429:2]]");
    assert_eq!(calls.len(), 3);
    for pair in calls.windows(2) {
        let gap = pair[1].at.duration_since(pair[0].at);
        assert!(
            gap.as_secs_f64() >= 0.3,
            "RetryInfo.retryDelay honoured, waited {gap:?}"
        );
    }
}

#[tokio::test]
async fn upstream_quota_that_never_clears_is_a_429_with_retry_after() {
    let fake = FakeGemini::start_with(FakeOptions {
        retry_delay: "0.05s".into(),
        ..Default::default()
    })
    .await;
    let app = TestApp::gemini(&fake).await;
    let response = generate(&app, "quota [[fake:429]]").await;
    assert_eq!(response.headers()["retry-after"], "1");
    let body = expect_error(response, 429, "rate_limit_exceeded").await;
    assert_eq!(body["details"]["retry_after_seconds"], 1);
    assert_eq!(fake.calls_for("[[fake:429]]").len(), 4, "max_attempts");

    let response = generate(&app, "quota [[fake:429_bare]]").await;
    assert!(response.headers().contains_key("retry-after"));
    expect_error(response, 429, "rate_limit_exceeded").await;
    assert_eq!(fake.calls_for("[[fake:429_bare]]").len(), 4);
}

#[tokio::test]
async fn overload_and_server_errors_are_retried_then_mapped() {
    let fake = FakeGemini::start().await;
    let app = TestApp::gemini(&fake).await;
    let (status, _, _) = json_of(generate(&app, "busy [[fake:503:1]]").await).await;
    assert_eq!(status, 200, "one overload then success");
    assert_eq!(fake.calls_for("[[fake:503:1]]").len(), 2);

    let cases = [
        ("503", 503, "upstream_unavailable"),
        ("500", 502, "upstream_error"),
        ("504", 504, "upstream_timeout"),
        ("502_html", 502, "upstream_error"),
        ("408_html", 504, "upstream_timeout"),
    ];
    for (marker, status, code) in cases {
        let tag = format!("[[fake:{marker}]]");
        let body = expect_error(generate(&app, &format!("x {tag}")).await, status, code).await;
        assert_eq!(fake.calls_for(&tag).len(), 4, "{marker} is retried");
        let message = body["message"].as_str().unwrap();
        assert!(
            !message.contains("html") && !message.contains("internal error has occurred"),
            "{message}"
        );
    }
}

#[tokio::test]
async fn client_errors_upstream_are_not_retried() {
    let fake = FakeGemini::start().await;
    let app = TestApp::gemini(&fake).await;
    let body = expect_invalid(generate(&app, "x [[fake:400]]").await).await;
    assert!(
        body["details"]["upstream_message"]
            .as_str()
            .unwrap()
            .contains("Unable to process input image")
    );
    for marker in ["400", "402", "403"] {
        let tag = format!("[[fake:{marker}]]");
        if marker != "400" {
            expect_error(
                generate(&app, &format!("x {tag}")).await,
                502,
                "upstream_error",
            )
            .await;
        }
        assert_eq!(fake.calls_for(&tag).len(), 1, "{marker} is not retried");
    }
}

#[tokio::test]
async fn a_model_id_retired_upstream_without_a_successor_is_a_502_naming_the_404() {
    let fake = FakeGemini::start().await;
    let app = TestApp::gemini_with(&fake, |c| {
        c.models.push(imagegate::models::ModelOverride {
            name: "legacy-banana".into(),
            upstream_id: Some("gemini-2.5-flash-image-preview".into()),
            prices: Some(imagegate::models::Prices {
                input: 0.3,
                text_output: 2.5,
                image_output: 30.0,
            }),
            // Declared active: neither upstream's list nor its 404 retires it.
            active: Some(true),
            ..Default::default()
        });
    })
    .await;
    let body = expect_error(
        app.post_json(
            "/generate-image",
            json!({"prompt": "x", "model": "legacy-banana"}),
        )
        .await,
        502,
        "upstream_error",
    )
    .await;
    assert_eq!(body["details"]["upstream_status"], 404);
    assert_eq!(fake.requests().len(), 1, "404 is not retried");
}

#[tokio::test]
async fn a_slow_upstream_past_the_deadline_is_a_504() {
    let fake = FakeGemini::start().await;
    let app = TestApp::gemini_with(&fake, |c| c.gemini.deadline_secs = 2.0).await;
    let body = expect_error(
        generate(&app, "x [[fake:slow_5000]]").await,
        504,
        "upstream_timeout",
    )
    .await;
    assert_eq!(body["details"]["deadline_seconds"], 2.0);
}

#[tokio::test]
async fn a_wrong_google_key_is_an_upstream_error_not_a_client_error() {
    let fake = FakeGemini::start().await;
    let base_url = fake.base_url();
    let app = TestApp::spawn(move |c| {
        c.provider = imagegate::config::ProviderChoice::Gemini;
        c.google_api_key = Some(imagegate::config::Secret::new("AIza-wrong"));
        c.gemini.base_url = base_url;
    })
    .await;
    let body = expect_error(generate(&app, "x").await, 502, "upstream_error").await;
    assert!(
        !body.to_string().contains("AIza-wrong"),
        "the key never appears: {body}"
    );
}

#[tokio::test]
async fn declared_types_are_not_trusted_and_both_base64_alphabets_decode() {
    let fake = FakeGemini::start().await;
    let app = TestApp::gemini(&fake).await;
    let (status, _, body) = json_of(generate(&app, "x [[fake:mime_mismatch]]").await).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["mime_types"],
        json!(["image/jpeg"]),
        "sniffed, not declared"
    );
    let (status, _, body) = json_of(generate(&app, "x [[fake:urlsafe]]").await).await;
    assert_eq!(status, 200, "{body}");
    decode_image(&body["images"][0]);
    let (status, _, body) = json_of(generate(&app, "x [[fake:two_images]]").await).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["images"].as_array().unwrap().len(), 2);
    assert_eq!(body["image_ids"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn edits_send_the_downscaled_image_then_the_instructions() {
    let fake = FakeGemini::start().await;
    let app = TestApp::gemini(&fake).await;
    let form = reqwest::multipart::Form::new()
        .part("image", file_part(jpeg(2048, 1536), "photo.jpg"))
        .text("prompt", "add a red scarf")
        .text("edit_strength", "0.2")
        .text("preserve_subject", "true");
    let (status, _, body) = json_of(app.post_form("/edit-image", form).await).await;
    assert_eq!(status, 200, "{body}");
    let sent = &fake.requests()[0];
    assert_eq!(sent.images.len(), 1);
    let (mime, bytes) = &sent.images[0];
    assert_eq!(mime, "image/jpeg");
    let upstream = image::load_from_memory(bytes).unwrap();
    assert_eq!((upstream.width(), upstream.height()), (1024, 768));
    let parts = &sent.body["contents"][0]["parts"];
    assert!(parts[0].get("inlineData").is_some(), "image first");
    let text = parts[1]["text"].as_str().unwrap();
    assert!(
        text.contains("add a red scarf")
            && text.contains("subtle")
            && text.contains("main subject"),
        "{text}"
    );
}

#[tokio::test]
async fn compositions_send_every_image_in_order() {
    let fake = FakeGemini::start().await;
    let app = TestApp::gemini(&fake).await;
    let first = png(64, 32);
    let second = jpeg(48, 48);
    let form = reqwest::multipart::Form::new()
        .part("images", file_part(first.clone(), "a.png"))
        .part("images", file_part(second.clone(), "b.jpg"))
        .text("prompt", "put them together")
        .text("composition_style", "collage");
    let (status, _, body) = json_of(app.post_form("/compose-images", form).await).await;
    assert_eq!(status, 200, "{body}");
    let sent = &fake.requests()[0];
    assert_eq!(
        sent.images,
        vec![
            ("image/png".to_owned(), first),
            ("image/jpeg".to_owned(), second)
        ]
    );
    let text = sent.body["contents"][0]["parts"][2]["text"]
        .as_str()
        .unwrap();
    assert!(text.contains("collage"), "{text}");
    let _: &Value = &body;
}

#[tokio::test]
async fn a_refused_call_is_still_billed_for_its_tokens() {
    let fake = FakeGemini::start().await;
    let app = TestApp::gemini(&fake).await;
    expect_error(
        generate(&app, "a forbidden thing [[fake:image_safety]]").await,
        422,
        "content_blocked",
    )
    .await;
    let usage: Value = app.get("/usage").await.json().await.unwrap();
    let totals = &usage["totals"];
    assert!(
        totals["input_tokens"].as_u64().unwrap() > 0,
        "the prompt's tokens are recorded: {usage}"
    );
    assert_eq!(totals["images"], 0);
    assert!(totals["cost_usd"].as_f64().unwrap() > 0.0, "{usage}");
}

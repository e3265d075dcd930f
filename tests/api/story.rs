//! Story sequences: steps as turns of one conversation, captions, failures by step.

use serde_json::json;

use crate::support::fake_gemini::FakeGemini;
use crate::support::{TestApp, decode_image, expect_error, expect_invalid, json_of};

#[tokio::test]
async fn a_story_has_one_captioned_image_per_step() {
    let app = TestApp::offline().await;
    let (status, _, body) = json_of(
        app.post_json(
            "/story/generate",
            json!({"description": "A visual guide for making pizza", "num_images": 3, "content_type": "recipe",
                   "style": "clean food photography", "model": "gemini-3.1-flash-image", "image_size": "512"}),
        )
        .await,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let steps = body["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 3);
    for (i, step) in steps.iter().enumerate() {
        assert_eq!(step["index"], i + 1);
        assert!(!step["caption"].as_str().unwrap().is_empty());
        // Each image once: in `images[]`, which `steps[]` name by id, index for index.
        assert!(step.get("image").is_none(), "{step}");
        assert_eq!(step["image_id"], body["image_ids"][i]);
        let image = decode_image(&body["images"][i]);
        assert_eq!((image.width(), image.height()), (512, 512));
    }
    assert_eq!(body["images"].as_array().unwrap().len(), 3);
}

#[tokio::test]
async fn every_step_is_generated_with_the_earlier_steps_in_context() {
    let fake = FakeGemini::start().await;
    let app = TestApp::gemini(&fake).await;
    let (status, _, body) = json_of(
        app.post_json(
            "/story/generate",
            json!({"description": "a fox who learns to fly", "num_images": 3, "content_type": "comic", "style": "watercolour"}),
        )
        .await,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let calls = fake.requests();
    assert_eq!(calls.len(), 3);
    for (k, call) in calls.iter().enumerate() {
        let contents = call.body["contents"].as_array().unwrap();
        assert_eq!(
            contents.len(),
            2 * k + 1,
            "step {} sees all earlier steps",
            k + 1
        );
        assert_eq!(
            call.body["generationConfig"]["responseModalities"],
            json!(["TEXT", "IMAGE"])
        );
    }
    let first = calls[0].body["contents"][0]["parts"][0]["text"]
        .as_str()
        .unwrap();
    assert!(
        first.contains("a fox who learns to fly")
            && first.contains("watercolour")
            && first.contains("comic strip"),
        "{first}"
    );
    // Step 3 carries the images of steps 1 and 2 exactly as they were returned.
    let step1 = base64::Engine::decode(
        &base64::engine::general_purpose::STANDARD,
        body["images"][0].as_str().unwrap(),
    )
    .unwrap();
    assert!(calls[2].images.iter().any(|(_, b)| *b == step1));
    assert_eq!(
        body["steps"][0]["caption"],
        "Here is the image you asked for."
    );
    let cost: f64 = body["usage"]["cost_usd"].as_f64().unwrap();
    assert!(
        cost > 3.0 * 0.0336 - 1e-9,
        "three 1K images on Nano Banana 2.1 (1120 tokens at $30/M): {cost}"
    );
}

#[tokio::test]
async fn a_failed_step_fails_the_story_and_names_the_step() {
    let fake = FakeGemini::start().await;
    let app = TestApp::gemini(&fake).await;
    let body = expect_error(
        app.post_json(
            "/story/generate",
            json!({"description": "a tale [[fake:image_safety@2]]", "num_images": 4}),
        )
        .await,
        422,
        "content_blocked",
    )
    .await;
    assert_eq!(body["details"]["step"], 2);
    assert_eq!(body["details"]["completed_steps"], 1);
    assert_eq!(fake.requests().len(), 2, "no step runs after the failure");
}

#[tokio::test]
async fn story_requests_are_validated() {
    let app = TestApp::offline().await;
    for (request, field) in [
        (json!({}), "description"),
        (json!({"description": "x", "num_images": 0}), "num_images"),
        (json!({"description": "x", "num_images": 11}), "num_images"),
        (json!({"description": "x", "num_images": 2.5}), "num_images"),
        (
            json!({"description": "x", "content_type": "poem"}),
            "content_type",
        ),
        (
            json!({"description": "x", "style": "s".repeat(501)}),
            "style",
        ),
    ] {
        let body = expect_invalid(app.post_json("/story/generate", request).await).await;
        assert_eq!(body["details"]["field"], field, "{body}");
    }
}

#[tokio::test]
async fn a_story_can_stream_each_step_as_it_finishes() {
    let app = TestApp::offline().await;
    let response = app
        .client
        .post(app.url("/story/generate"))
        .header("accept", "text/event-stream")
        .json(&json!({"description": "a snail's journey", "num_images": 3, "model": "gemini-3.1-flash-image", "image_size": "512"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let text = response.text().await.unwrap();
    let events: Vec<(&str, serde_json::Value)> = text
        .split("\n\n")
        .filter_map(|block| {
            let name = block.lines().find_map(|l| l.strip_prefix("event: "))?;
            let data: String = block
                .lines()
                .filter_map(|l| l.strip_prefix("data: "))
                .collect();
            Some((name, serde_json::from_str(&data).ok()?))
        })
        .collect();
    let names: Vec<&str> = events.iter().map(|(n, _)| *n).collect();
    assert_eq!(names, ["step", "step", "step", "done"]);
    assert_eq!(events[1].1["index"], 2);
    assert_eq!(events[3].1["steps"].as_array().unwrap().len(), 3);
    // Each image travels once: in its `step` event; `done` names them by id.
    for (_, step) in &events[..3] {
        assert!(step["image"].as_str().is_some_and(|i| i.len() > 100));
    }
    let done = &events[3].1;
    assert!(done.get("images").is_none(), "{done}");
    assert_eq!(done["image_ids"].as_array().unwrap().len(), 3);
    assert!(done["steps"][0].get("image").is_none());
    let images_in_stream = text.matches(events[0].1["image"].as_str().unwrap()).count();
    assert_eq!(images_in_stream, 1, "step 1's image is sent once");
}

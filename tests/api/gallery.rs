//! `GET /images`: the calling key's recent images, newest first, ids and URLs only.

use serde_json::json;

use crate::support::{TestApp, client_with_key, expect_error, expect_invalid, json_of};

async fn generate(app: &TestApp, client: &reqwest::Client, prompt: &str) -> String {
    let response = app
        .post_json_as(
            client,
            "/generate-image",
            json!({"prompt": prompt, "model": "gemini-3.1-flash-image", "image_size": "512"}),
        )
        .await;
    let (status, _, body) = json_of(response).await;
    assert_eq!(status, 200, "{body}");
    body["image_ids"][0].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn the_gallery_lists_only_the_callers_images_newest_first_without_bytes() {
    let app = TestApp::offline().await;
    let mut mine = Vec::new();
    for prompt in ["a fox", "a hare", "an owl"] {
        mine.push(generate(&app, &app.client, prompt).await);
    }
    let other = client_with_key(Some(&app.create_key("free").await));
    let theirs = generate(&app, &other, "a badger").await;

    let (status, _, body) = json_of(app.get("/images").await).await;
    assert_eq!(status, 200, "{body}");
    let listed: Vec<&str> = body["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["image_id"].as_str().unwrap())
        .collect();
    mine.reverse();
    assert_eq!(
        listed, mine,
        "newest first, and not the other key's {theirs}"
    );
    let first = &body["images"][0];
    assert_eq!(first["url"], format!("/images/{}", mine[0]));
    assert_eq!(first["mime_type"], "image/png");
    assert!(first["size_bytes"].as_i64().unwrap() > 0);
    assert!(first["created_at"].as_str().unwrap().ends_with('Z'));
    assert!(
        body.to_string().len() < 2048,
        "no image bytes in the list: {body}"
    );
    let served = app.get(first["url"].as_str().unwrap()).await;
    assert_eq!(served.status(), 200);
}

#[tokio::test]
async fn the_limit_takes_the_newest_and_is_bounded() {
    let app = TestApp::offline().await;
    let _older = generate(&app, &app.client, "first").await;
    let newer = generate(&app, &app.client, "second").await;
    let (status, _, body) = json_of(app.get("/images?limit=1").await).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["limit"], 1);
    assert_eq!(body["images"], json!([body["images"][0]]));
    assert_eq!(body["images"][0]["image_id"], newer.as_str());

    for bad in ["/images?limit=0", "/images?limit=101", "/images?limit=many"] {
        let body = expect_invalid(app.get(bad).await).await;
        assert_eq!(body["details"]["field"], "limit", "{bad}");
    }
    let body = expect_invalid(app.get("/images?page=2").await).await;
    assert_eq!(body["details"]["field"], "page");
}

#[tokio::test]
async fn the_gallery_needs_a_key() {
    let app = TestApp::offline().await;
    let response = app.get_anonymously("/images").await;
    expect_error(response, 401, "unauthorized").await;
}

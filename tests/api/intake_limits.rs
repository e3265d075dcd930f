//! Image intake: formats from bytes, corrupted files, decompression bombs, size limits,
//! downscaling.

use std::time::Duration;

use bytes::Bytes;
use serde_json::Value;

use crate::support::{
    TestApp, decode_image, expect_error, expect_invalid, file_part, jpeg, json_of, png,
    png_claiming,
};

/// `POST /edit-image` of `bytes` as the file `name`, to make it blue.
async fn edit(app: &TestApp, bytes: Vec<u8>, name: &str) -> reqwest::Response {
    let form = reqwest::multipart::Form::new()
        .part("image", file_part(bytes, name))
        .text("prompt", "make it blue");
    app.post_form("/edit-image", form).await
}

#[tokio::test]
async fn a_gif_named_png_is_refused_by_its_bytes() {
    let app = TestApp::offline().await;
    let gif = b"GIF89a\x01\x00\x01\x00\x00\x00\x00;".to_vec();
    let body = expect_invalid(edit(&app, gif, "photo.png").await).await;
    assert_eq!(body["details"]["field"], "image");
    assert_eq!(body["details"]["detected"], "gif");
}

#[tokio::test]
async fn a_jpeg_named_png_is_accepted_by_its_bytes() {
    let app = TestApp::offline().await;
    let (status, _, body) = json_of(edit(&app, jpeg(64, 48), "photo.png").await).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn a_corrupted_image_is_refused() {
    let app = TestApp::offline().await;
    let mut bytes = png(200, 200);
    bytes.truncate(bytes.len() / 3);
    let body = expect_invalid(edit(&app, bytes, "cut.png").await).await;
    assert!(
        body["message"].as_str().unwrap().contains("corrupted"),
        "{body}"
    );
}

#[tokio::test]
async fn a_decompression_bomb_is_refused_without_decoding() {
    let app = TestApp::offline().await;
    // A real PNG whose header claims 60000×60000 pixels (3.6 gigapixels).
    let bytes = png_claiming(60_000, 60_000);
    let body = expect_invalid(edit(&app, bytes, "bomb.png").await).await;
    assert_eq!(body["details"]["width"], 60_000);
}

#[tokio::test]
async fn inputs_over_1024_pixels_are_downscaled_before_the_provider() {
    let app = TestApp::offline().await;
    // The offline edit keeps the size it receives, so the output shows what went upstream.
    let (status, _, body) = json_of(edit(&app, jpeg(2048, 1536), "big.jpg").await).await;
    assert_eq!(status, 200, "{body}");
    let out = decode_image(&body["images"][0]);
    assert_eq!((out.width(), out.height()), (1024, 768));
}

#[tokio::test]
async fn a_file_over_20_mb_gets_413() {
    let app = TestApp::offline().await;
    let mut bytes = png(4, 4);
    bytes.resize(20 * 1024 * 1024 + 1, 0);
    let body = expect_error(edit(&app, bytes, "huge.png").await, 413, "file_too_large").await;
    assert_eq!(body["details"]["field"], "image");
    assert_eq!(body["details"]["max_bytes"], 20 * 1024 * 1024);
}

#[tokio::test]
async fn a_body_declared_over_the_limit_is_refused_before_it_is_sent() {
    let app = TestApp::offline().await;
    let response = app
        .client
        .post(app.url("/edit-image"))
        .header("content-type", "multipart/form-data; boundary=x")
        .header("content-length", (500u64 * 1024 * 1024).to_string())
        .body(reqwest::Body::wrap_stream(futures_util::stream::pending::<
            Result<Bytes, std::io::Error>,
        >()))
        .send();
    let response = tokio::time::timeout(Duration::from_secs(10), response)
        .await
        .expect("the server answers without waiting for the body")
        .unwrap();
    expect_error(response, 413, "file_too_large").await;
}

#[tokio::test]
async fn an_oversized_file_is_refused_without_reading_the_rest_of_the_body() {
    let app = TestApp::offline().await;
    // 21 MB of one file, then a body that never ends: only an early answer can arrive.
    let head = "--b\r\ncontent-disposition: form-data; name=\"image\"; filename=\"a.png\"\r\ncontent-type: image/png\r\n\r\n";
    let chunk = Bytes::from(vec![0u8; 1024 * 1024]);
    let chunks = std::iter::once(Bytes::from(head)).chain(std::iter::repeat_n(chunk, 21));
    let stream = futures_util::stream::iter(chunks.map(Ok::<_, std::io::Error>))
        .chain(futures_util::stream::pending());
    let response = app
        .client
        .post(app.url("/edit-image"))
        .header("content-type", "multipart/form-data; boundary=b")
        .body(reqwest::Body::wrap_stream(stream))
        .send();
    let response = tokio::time::timeout(Duration::from_secs(20), response)
        .await
        .expect("413 arrives while the body is still being sent")
        .unwrap();
    let body: Value = expect_error(response, 413, "file_too_large").await;
    assert_eq!(body["details"]["field"], "image");
}

use futures_util::StreamExt as _;

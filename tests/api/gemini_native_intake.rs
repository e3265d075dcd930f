//! The Gemini-native surface takes images and bodies as the guide's endpoints do, and
//! accounts for every upstream answer it relays (issue 16).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

use crate::support::fake_gemini::FakeGemini;
use crate::support::{TestApp, decode_image, jpeg, json_of, png};

const GENERATE: &str = "/v1beta/models/gemini-3.1-flash-image:generateContent";

fn with_image(prompt: &str, image: &[u8], mime: &str) -> Value {
    json!({"contents": [{"role": "user", "parts": [
        {"text": prompt},
        {"inlineData": {"mimeType": mime, "data": STANDARD.encode(image)}},
    ]}]})
}

fn text_only(prompt: &str) -> Value {
    json!({"contents": [{"role": "user", "parts": [{"text": prompt}]}]})
}

/// A real PNG whose header claims 60000×60000 pixels (3.6 gigapixels).
fn bomb() -> Vec<u8> {
    let mut bytes = png(1, 1);
    bytes[16..20].copy_from_slice(&60_000u32.to_be_bytes());
    bytes[20..24].copy_from_slice(&60_000u32.to_be_bytes());
    let crc = crc32fast(&bytes[12..29]);
    bytes[29..33].copy_from_slice(&crc.to_be_bytes());
    bytes
}

fn crc32fast(data: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

fn assert_google_envelope(body: &Value, code: u16, status: &str) {
    assert_eq!(body["error"]["code"], code, "{body}");
    assert_eq!(body["error"]["status"], status, "{body}");
    assert!(body["error"]["message"].as_str().is_some(), "{body}");
}

#[tokio::test]
async fn an_inline_decompression_bomb_gets_400_in_googles_envelope_and_never_goes_upstream() {
    let fake = FakeGemini::start().await;
    let app = TestApp::gemini(&fake).await;
    for path in [
        GENERATE.to_owned(),
        "/v1/models/gemini-3.1-flash-image:generateContent".to_owned(),
        "/v1beta/models/gemini-3.1-flash-image:streamGenerateContent?alt=sse".to_owned(),
    ] {
        let (status, _, body) = json_of(
            app.post_json(&path, with_image("make it blue", &bomb(), "image/png"))
                .await,
        )
        .await;
        assert_eq!(status, 400, "{path}: {body}");
        assert_google_envelope(&body, 400, "INVALID_ARGUMENT");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("dimensions are too large"),
            "{body}"
        );
    }
    assert!(fake.requests().is_empty(), "nothing was relayed");
}

#[tokio::test]
async fn an_inline_image_that_is_not_an_image_format_we_take_is_refused() {
    let fake = FakeGemini::start().await;
    let app = TestApp::gemini(&fake).await;
    let gif = b"GIF89a\x01\x00\x01\x00\x00\x00\x00;".to_vec();
    let (status, _, body) = json_of(
        app.post_json(GENERATE, with_image("x", &gif, "image/gif"))
            .await,
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_google_envelope(&body, 400, "INVALID_ARGUMENT");
    let (status, _, body) = json_of(
        app.post_json(
            GENERATE,
            json!({"contents": [{"parts": [{"inlineData": {"mimeType": "image/png", "data": "%%%"}}]}]}),
        )
        .await,
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_google_envelope(&body, 400, "INVALID_ARGUMENT");
    assert!(fake.requests().is_empty());
}

#[tokio::test]
async fn a_large_inline_image_is_downscaled_before_it_is_relayed() {
    let fake = FakeGemini::start().await;
    let app = TestApp::gemini(&fake).await;
    let (status, _, body) = json_of(
        app.post_json(
            GENERATE,
            with_image("make it blue", &jpeg(2048, 1536), "image/jpeg"),
        )
        .await,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let sent = &fake.requests()[0].body;
    let relayed = decode_image(&sent["contents"][0]["parts"][1]["inlineData"]["data"]);
    assert_eq!((relayed.width(), relayed.height()), (1024, 768));
}

#[tokio::test]
async fn a_json_body_over_the_json_limit_gets_413_in_googles_envelope() {
    let fake = FakeGemini::start().await;
    let app = TestApp::gemini(&fake).await;
    // 2 MiB: over the 1 MiB JSON limit, well under the 64 MiB multipart total.
    let padding = "a".repeat(2 * 1024 * 1024);
    let (status, _, body) = json_of(app.post_json(GENERATE, text_only(&padding)).await).await;
    assert_eq!(status, 413, "{body}");
    assert_eq!(body["error"]["code"], 413, "{body}");
    assert!(body["error"]["status"].as_str().is_some(), "{body}");
    assert!(fake.requests().is_empty());
    // Under the limit, the same surface relays.
    let (status, _, body) = json_of(app.post_json(GENERATE, text_only("a red kite")).await).await;
    assert_eq!(status, 200, "{body}");
}

async fn usage_requests(app: &TestApp) -> (u64, u64) {
    let usage: Value = app.get("/usage").await.json().await.unwrap();
    (
        usage["totals"]["requests"].as_u64().unwrap_or(0),
        usage["totals"]["input_tokens"].as_u64().unwrap_or(0),
    )
}

#[tokio::test]
async fn usage_is_recorded_for_relayed_refusals_and_max_tokens_answers() {
    let fake = FakeGemini::start().await;
    let app = TestApp::gemini(&fake).await;
    let mut expected = 0;
    for (marker, check) in [
        ("prompt_blocked", "blockReason"),
        ("safety", "SAFETY"),
        ("max_tokens", "MAX_TOKENS"),
    ] {
        let (status, _, body) = json_of(
            app.post_json(
                GENERATE,
                text_only(&format!("a lighthouse [[fake:{marker}]]")),
            )
            .await,
        )
        .await;
        assert_eq!(status, 200, "relayed as upstream answered: {body}");
        assert!(body.to_string().contains(check), "{body}");
        expected += 1;
        let (requests, tokens) = usage_requests(&app).await;
        assert_eq!(requests, expected, "a usage row after {marker}");
        assert!(tokens > 0, "the prompt's tokens after {marker}");
    }
    // A streamed refusal is accounted for once the stream has been read to its end.
    let response = app
        .post_json(
            "/v1beta/models/gemini-3.1-flash-image:streamGenerateContent?alt=sse",
            text_only("a lighthouse [[fake:safety]]"),
        )
        .await;
    assert_eq!(response.status(), 200);
    let _ = response.text().await.unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while usage_requests(&app).await.0 < expected + 1 {
        assert!(
            std::time::Instant::now() < deadline,
            "no usage row for the streamed refusal"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

//! The Gemini-native surface takes images and bodies as the guide's endpoints do, and
//! accounts for every upstream answer it relays (issue 16). Its `generateContent` is a
//! unit of work like the others (issue 12): queued with `Prefer: respond-async`, refused
//! the same way either way, and run to its end when the client hangs up.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

use imagegate::config::Config;

use crate::support::fake_gemini::FakeGemini;
use crate::support::{TestApp, decode_image, jpeg, json_of, on_gemini, png, png_claiming};

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
    png_claiming(60_000, 60_000)
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
    let counted = || async { usage_requests(&app).await.0 > expected };
    crate::support::eventually("a usage row for the streamed refusal", counted).await;
}

/// The Gemini provider pointed at `fake`; the test runs the async queue itself.
fn relaying(fake: &FakeGemini) -> impl FnOnce(&mut Config) + use<> {
    let gemini = on_gemini(fake, 20.0);
    move |c: &mut Config| {
        gemini(c);
        c.jobs.workers = 0;
    }
}

async fn post_native(
    app: &TestApp,
    path: &str,
    body: &Value,
    respond_async: bool,
) -> reqwest::Response {
    let mut request = app.client.post(app.url(path)).json(body);
    if respond_async {
        request = request.header("prefer", "respond-async");
    }
    request.send().await.unwrap()
}

#[tokio::test]
async fn prefer_respond_async_queues_generate_content_and_a_worker_relays_it() {
    let fake = FakeGemini::start().await;
    let app = TestApp::spawn(relaying(&fake)).await;
    let image = png(64, 48);
    let body = with_image("make it blue", &image, "image/png");
    let response = post_native(&app, GENERATE, &body, true).await;
    assert_eq!(response.headers()["preference-applied"], "respond-async");
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let (status, id, accepted) = json_of(response).await;
    assert_eq!(status, 202, "{accepted}");
    assert_eq!(accepted["status"], "queued");
    assert_eq!(location, format!("/requests/{id}"));
    assert!(
        fake.requests().is_empty(),
        "nothing is relayed before a worker runs it"
    );
    assert!(app.jobs.run_once().await.unwrap());
    let (_, _, done) = json_of(app.get(&format!("/requests/{id}")).await).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    // The result is Google's own response object, as the synchronous call answers.
    let parts = done["result"]["candidates"][0]["content"]["parts"]
        .as_array()
        .unwrap_or_else(|| panic!("{done}"));
    assert!(
        parts.iter().any(|p| p["inlineData"]["data"].is_string()),
        "{done}"
    );
    // The inline image went through the blob store and was relayed as it was sent.
    let sent = &fake.requests()[0].body;
    let parts = &sent["contents"][0]["parts"];
    assert_eq!(parts[0]["text"], "make it blue");
    assert_eq!(parts[1]["inlineData"]["mimeType"], "image/png");
    let relayed = STANDARD
        .decode(parts[1]["inlineData"]["data"].as_str().unwrap())
        .unwrap();
    assert_eq!(relayed, image);
    // A stream is relayed as it arrives: it stays synchronous whatever it prefers.
    let streamed = post_native(
        &app,
        "/v1beta/models/gemini-3.1-flash-image:streamGenerateContent?alt=sse",
        &text_only("a kite"),
        true,
    )
    .await;
    assert_eq!(streamed.status(), 200);
    assert!(streamed.headers().get("preference-applied").is_none());
    assert!(streamed.text().await.unwrap().contains("data:"));
}

/// An error body without what differs between two requests (their ids).
fn error_of(body: &Value) -> Value {
    json!([
        body["error"]["code"],
        body["error"]["status"],
        body["error"]["message"]
    ])
}

#[tokio::test]
async fn the_same_invalid_native_body_gets_the_same_400_sync_or_async() {
    let fake = FakeGemini::start().await;
    let app = TestApp::spawn(relaying(&fake)).await;
    let gif = b"GIF89a\x01\x00\x01\x00\x00\x00\x00;".to_vec();
    let bodies = [
        with_image("make it blue", &bomb(), "image/png"),
        with_image("x", &gif, "image/gif"),
        json!({"contents": [{"parts": [{"inlineData": {"mimeType": "image/png", "data": "%%%"}}]}]}),
    ];
    for body in &bodies {
        let (status, _, now) = json_of(post_native(&app, GENERATE, body, false).await).await;
        let (queued_status, _, queued) =
            json_of(post_native(&app, GENERATE, body, true).await).await;
        assert_eq!((status, queued_status), (400, 400), "{now} / {queued}");
        assert_google_envelope(&queued, 400, "INVALID_ARGUMENT");
        assert_eq!(error_of(&now), error_of(&queued));
    }
    // A body that is not JSON is refused in Google's words, both ways.
    let mut answers = Vec::new();
    for respond_async in [false, true] {
        let mut request = app
            .client
            .post(app.url(GENERATE))
            .header("content-type", "application/json")
            .body("{\"contents\": [");
        if respond_async {
            request = request.header("prefer", "respond-async");
        }
        let (status, _, body) = json_of(request.send().await.unwrap()).await;
        assert_eq!(status, 400, "{body}");
        assert_google_envelope(&body, 400, "INVALID_ARGUMENT");
        answers.push(error_of(&body));
    }
    assert_eq!(answers[0], answers[1]);
    assert!(fake.requests().is_empty(), "nothing was relayed");
    assert!(!app.jobs.run_once().await.unwrap(), "nothing was queued");
}

#[tokio::test]
async fn a_native_call_whose_client_hangs_up_runs_to_its_end_and_a_graceful_stop_waits_for_it() {
    let fake = FakeGemini::start().await;
    let app = TestApp::spawn(relaying(&fake)).await;
    let marker = "[[fake:slow_1500]]";
    let request = app
        .client
        .post(app.url(GENERATE))
        .json(&text_only(&format!("a fox {marker}")));
    let client = tokio::spawn(async move { request.send().await.map(|r| r.status()) });
    fake.wait_for_calls(marker, 1).await;
    client.abort();
    let _ = client.await;
    // The client is gone; the paid call goes on, tracked, so the graceful stop that
    // restarts the server waits for it and its answer is kept for the caller.
    let app = app.restart(relaying(&fake)).await;
    assert_eq!(fake.in_flight(), 0, "the stop waited for the upstream call");
    let (requests, tokens) = usage_requests(&app).await;
    assert_eq!(
        requests, 1,
        "the answer of the call whose client left was kept"
    );
    assert!(tokens > 0);
}

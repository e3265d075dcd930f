//! Checks that the fake Gemini upstream speaks the wire format of the spec, using plain HTTP.

use std::io::Cursor;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Value, json};

use crate::support::fake_gemini::{
    ACTIVE_MODELS, FAKE_API_KEY, FakeGemini, FakeOptions, RETIRED_MODELS,
};

const FLASH: &str = "gemini-3.1-flash-image";

struct Answer {
    status: u16,
    headers: reqwest::header::HeaderMap,
    text: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.text).expect("a JSON body")
    }
}

fn client() -> reqwest::Client {
    // reqwest is built without a default crypto provider; plain HTTP still needs one installed.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

async fn call(fake: &FakeGemini, path: &str, key: Option<&str>, body: &Value) -> Answer {
    let mut request = client()
        .post(format!("{}{path}", fake.base_url()))
        .header("content-type", "application/json")
        .body(body.to_string());
    if let Some(key) = key {
        request = request.header("x-goog-api-key", key);
    }
    let response = request.send().await.expect("the fake answers");
    Answer {
        status: response.status().as_u16(),
        headers: response.headers().clone(),
        text: response.text().await.expect("a body"),
    }
}

async fn generate(fake: &FakeGemini, body: &Value) -> Answer {
    let path = format!("/v1beta/models/{FLASH}:generateContent");
    call(fake, &path, Some(FAKE_API_KEY), body).await
}

fn prompt(text: &str) -> Value {
    json!({ "contents": [{ "role": "user", "parts": [{ "text": text }] }] })
}

fn image_parts(answer: &Value) -> Vec<Value> {
    answer["candidates"][0]["content"]["parts"]
        .as_array()
        .expect("parts")
        .iter()
        .filter(|p| p.get("inlineData").is_some() && p.get("thought").is_none())
        .cloned()
        .collect()
}

fn small_png() -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    image::RgbImage::from_pixel(8, 8, image::Rgb([200, 10, 10]))
        .write_to(&mut out, image::ImageFormat::Png)
        .expect("encode a PNG");
    out.into_inner()
}

#[tokio::test]
async fn a_16_9_1k_request_returns_a_decodable_1376x768_jpeg() {
    let fake = FakeGemini::start().await;
    let mut body = prompt("A lighthouse at dusk");
    body["generationConfig"] = json!({
        "responseModalities": ["TEXT", "IMAGE"],
        "imageConfig": { "aspectRatio": "16:9", "imageSize": "1K" },
    });
    let answer = generate(&fake, &body).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    let json = answer.json();
    let candidate = &json["candidates"][0];
    assert_eq!(candidate["content"]["role"], "model");
    assert_eq!(candidate["finishReason"], "STOP");
    assert!(candidate["content"]["parts"][0]["text"].is_string());
    let image = &image_parts(&json)[0];
    assert_eq!(image["inlineData"]["mimeType"], "image/jpeg");
    assert!(image["thoughtSignature"].is_string());
    let bytes = STANDARD
        .decode(image["inlineData"]["data"].as_str().unwrap())
        .unwrap();
    let decoded = image::load_from_memory_with_format(&bytes, image::ImageFormat::Jpeg).unwrap();
    assert_eq!((decoded.width(), decoded.height()), (1376, 768));
    assert_eq!(json["modelVersion"], FLASH);
    assert_eq!(json["responseId"].as_str().unwrap().len(), 23);
    let usage = &json["usageMetadata"];
    assert_eq!(
        usage["candidatesTokensDetails"][0],
        json!({"modality": "IMAGE", "tokenCount": 1120})
    );
    let total = usage["promptTokenCount"].as_u64().unwrap()
        + usage["candidatesTokenCount"].as_u64().unwrap();
    assert_eq!(usage["totalTokenCount"].as_u64().unwrap(), total);
}

#[tokio::test]
async fn a_snake_case_request_with_a_query_key_is_accepted() {
    let fake = FakeGemini::start().await;
    let png = STANDARD.encode(small_png());
    let body = json!({
        "contents": [{ "role": "user", "parts": [
            { "inline_data": { "mime_type": "image/png", "data": png } },
            { "text": "Make it blue" },
        ]}],
        "system_instruction": { "role": "user", "parts": [{ "text": "You are an illustrator." }] },
        "safety_settings": [{ "category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_ONLY_HIGH" }],
        "generation_config": {
            "response_modalities": ["Image"],
            "candidate_count": 1,
            "image_config": { "aspect_ratio": "1:1", "image_size": "512" },
            "thinking_config": { "thinking_level": "HIGH" },
        },
    });
    let path = format!("/v1alpha/models/models/{FLASH}:generateContent?key={FAKE_API_KEY}");
    let answer = call(&fake, &path, None, &body).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    let json = answer.json();
    assert_eq!(
        json["candidates"][0]["content"]["parts"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        json["usageMetadata"]["promptTokensDetails"][1],
        json!({"modality": "IMAGE", "tokenCount": 1120})
    );
    assert_eq!(json["usageMetadata"]["candidatesTokenCount"], 747);
    let recorded = &fake.requests()[0];
    assert_eq!(recorded.api_key.as_deref(), Some(FAKE_API_KEY));
    assert_eq!(recorded.method, "POST");
    assert_eq!(
        recorded.path,
        format!("/v1alpha/models/models/{FLASH}:generateContent")
    );
    assert_eq!(recorded.model, FLASH);
    assert_eq!(recorded.images[0].0, "image/png");
    assert!(recorded.at.elapsed().as_secs() < 10);
}

#[tokio::test]
async fn an_unknown_field_is_rejected_with_a_bad_request_violation() {
    let fake = FakeGemini::start().await;
    let mut body = prompt("x");
    body["generationConfig"] = json!({ "imageConfig": { "outputMimeType": "image/png" } });
    let answer = generate(&fake, &body).await;
    assert_eq!(answer.status, 400);
    assert_eq!(
        answer.headers["content-type"],
        "application/json; charset=UTF-8"
    );
    let error = &answer.json()["error"];
    let message = "Invalid JSON payload received. Unknown name \"outputMimeType\" at 'generation_config.image_config': Cannot find field.";
    assert_eq!(error["status"], "INVALID_ARGUMENT");
    assert_eq!(error["message"], message);
    assert_eq!(
        error["details"][0]["@type"],
        "type.googleapis.com/google.rpc.BadRequest"
    );
    assert_eq!(
        error["details"][0]["fieldViolations"][0]["field"],
        "generation_config.image_config"
    );
    assert_eq!(fake.requests()[0].status, 400);

    let lenient = FakeGemini::start_with(FakeOptions {
        lenient_unknown_fields: true,
        ..FakeOptions::default()
    })
    .await;
    assert_eq!(generate(&lenient, &body).await.status, 200);
}

#[tokio::test]
async fn url_safe_unpadded_base64_input_is_accepted_and_recorded_decoded() {
    let fake = FakeGemini::start().await;
    let mut png = small_png();
    // Trailing bytes after IEND are ignored by decoders; these force '-' and '_' into the text.
    png.resize(png.len().div_ceil(3) * 3, 0);
    png.extend_from_slice(&[0xFB, 0xEF, 0xBE, 0xFF, 0xFF, 0xFF, 0x01]);
    let data = URL_SAFE_NO_PAD.encode(&png);
    assert!(data.contains('-') && data.contains('_'));
    let body = json!({ "contents": [{ "parts": [
        { "inlineData": { "mimeType": "image/png", "data": data } },
        { "text": "Edit this" },
    ]}]});
    let answer = generate(&fake, &body).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(
        fake.requests()[0].images,
        vec![("image/png".to_string(), png)]
    );
}

#[tokio::test]
async fn a_missing_key_is_403_and_a_wrong_key_is_400_api_key_invalid() {
    let fake = FakeGemini::start().await;
    let path = format!("/v1beta/models/{FLASH}:generateContent");
    let missing = call(&fake, &path, None, &prompt("x")).await;
    assert_eq!(missing.status, 403);
    assert_eq!(missing.json()["error"]["status"], "PERMISSION_DENIED");
    let wrong = call(&fake, &path, Some("AIzaWrong"), &prompt("x")).await;
    assert_eq!(wrong.status, 400);
    let details = &wrong.json()["error"]["details"];
    assert_eq!(details[0]["reason"], "API_KEY_INVALID");
    assert_eq!(
        details[1]["@type"],
        "type.googleapis.com/google.rpc.LocalizedMessage"
    );
    assert_eq!(fake.requests().len(), 2);
}

#[tokio::test]
async fn retired_models_are_404_and_active_models_are_listed() {
    let fake = FakeGemini::start().await;
    for model in RETIRED_MODELS {
        let path = format!("/v1beta/models/{model}:generateContent");
        let answer = call(&fake, &path, Some(FAKE_API_KEY), &prompt("x")).await;
        assert_eq!(answer.status, 404);
        let expected = format!(
            "models/{model} is not found for API version v1beta, or is not supported for generateContent. Call ListModels to see the list of available models and their supported methods."
        );
        assert_eq!(answer.json()["error"]["message"], expected);
    }
    let list = client()
        .get(format!(
            "{}/v1beta/models?key={FAKE_API_KEY}",
            fake.base_url()
        ))
        .send()
        .await
        .unwrap();
    let list: Value = serde_json::from_str(&list.text().await.unwrap()).unwrap();
    let names: Vec<&str> = list["models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ACTIVE_MODELS.map(|m| format!("models/{m}")));
}

async fn list_page(fake: &FakeGemini, query: &str) -> Answer {
    let response = client()
        .get(format!("{}/v1/models?{query}", fake.base_url()))
        .header("x-goog-api-key", FAKE_API_KEY)
        .send()
        .await
        .unwrap();
    Answer {
        status: response.status().as_u16(),
        headers: response.headers().clone(),
        text: response.text().await.unwrap(),
    }
}

#[tokio::test]
async fn the_model_list_pages_and_follows_the_catalogue() {
    let fake = FakeGemini::start().await;
    let first = list_page(&fake, "pageSize=3").await.json();
    assert_eq!(first["models"].as_array().unwrap().len(), 3);
    let token = first["nextPageToken"].as_str().unwrap();
    let rest = list_page(&fake, &format!("pageSize=3&pageToken={token}"))
        .await
        .json();
    assert_eq!(rest["models"].as_array().unwrap().len(), 1);
    assert!(
        rest.get("nextPageToken").is_none(),
        "the last page has no token"
    );
    assert_eq!(list_page(&fake, "pageToken=forged").await.status, 400);

    fake.retire(FLASH);
    fake.release("gemini-nano-banana-2.2-preview", "gemini-nano-banana-2.1");
    let names: Vec<String> = list_page(&fake, "").await.json()["models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap().to_owned())
        .collect();
    assert!(!names.contains(&format!("models/{FLASH}")));
    assert!(names.contains(&"models/gemini-nano-banana-2.2-preview".to_owned()));
    let gone = generate(&fake, &prompt("x")).await;
    assert_eq!(gone.status, 404, "a retired id answers 404 as Google does");
}

#[tokio::test]
async fn nano_banana_2_1_refuses_512_and_levels_and_tiers_are_checked() {
    let fake = FakeGemini::start().await;
    let banana = "/v1/models/gemini-nano-banana-2.1:generateContent";
    let with = |config: Value, tier: Option<&str>| {
        let mut body = prompt("a boat");
        body["generationConfig"] = config;
        if let Some(tier) = tier {
            body["serviceTier"] = json!(tier);
        }
        body
    };
    let cases = [
        (json!({"imageConfig": {"imageSize": "512"}}), None, 400),
        (
            json!({"imageConfig": {"imageSize": "4K", "aspectRatio": "1:8"}}),
            None,
            200,
        ),
        (
            json!({"thinkingConfig": {"thinkingLevel": "MEDIUM"}}),
            Some("flex"),
            200,
        ),
        (
            json!({"thinkingConfig": {"thinking_level": "ULTRA"}}),
            None,
            400,
        ),
        (json!({}), Some("turbo"), 400),
        (json!({}), Some("priority"), 200),
    ];
    for (config, tier, status) in cases {
        let body = with(config.clone(), tier);
        let answer = call(&fake, banana, Some(FAKE_API_KEY), &body).await;
        assert_eq!(answer.status, status, "{config} {tier:?}: {}", answer.text);
    }
    let pro = "/v1/models/gemini-3-pro-image:generateContent";
    let thinking = with(json!({"thinkingConfig": {"thinkingLevel": "HIGH"}}), None);
    assert_eq!(
        call(&fake, pro, Some(FAKE_API_KEY), &thinking).await.status,
        400
    );

    fake.overload("gemini-3-pro-image");
    let busy = call(&fake, pro, Some(FAKE_API_KEY), &prompt("x")).await;
    assert_eq!(busy.status, 503);
    assert_eq!(busy.json()["error"]["status"], "UNAVAILABLE");
    fake.shed_flex(true);
    let shed = call(
        &fake,
        banana,
        Some(FAKE_API_KEY),
        &with(json!({}), Some("flex")),
    )
    .await;
    assert_eq!(shed.status, 429);
    let standard = call(
        &fake,
        banana,
        Some(FAKE_API_KEY),
        &with(json!({}), Some("standard")),
    )
    .await;
    assert_eq!(standard.status, 200);
}

#[tokio::test]
async fn a_429_marker_with_a_limit_fails_once_then_succeeds() {
    let options = FakeOptions {
        retry_delay: "1.5s".into(),
        ..FakeOptions::default()
    };
    let fake = FakeGemini::start_with(options).await;
    let body = prompt("A fox [[fake:429:1]]");
    let first = generate(&fake, &body).await;
    assert_eq!(first.status, 429);
    assert!(first.headers.get("retry-after").is_none());
    let error = &first.json()["error"];
    assert_eq!(error["status"], "RESOURCE_EXHAUSTED");
    assert_eq!(
        error["details"][0]["@type"],
        "type.googleapis.com/google.rpc.QuotaFailure"
    );
    assert_eq!(
        error["details"][2],
        json!({"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "1.5s"})
    );
    assert_eq!(generate(&fake, &body).await.status, 200);
    let statuses: Vec<u16> = fake
        .calls_for("[[fake:429")
        .iter()
        .map(|r| r.status)
        .collect();
    assert_eq!(statuses, [429, 200]);
}

#[tokio::test]
async fn scripted_blocks_have_the_shapes_google_sends() {
    let fake = FakeGemini::start().await;
    let safety = generate(&fake, &prompt("[[fake:image_safety]]"))
        .await
        .json();
    assert_eq!(safety["candidates"][0]["content"], json!({"role": "model"}));
    assert_eq!(safety["candidates"][0]["finishReason"], "IMAGE_SAFETY");
    let no_image = generate(&fake, &prompt("[[fake:no_image]]")).await.json();
    assert!(no_image["candidates"][0].get("content").is_none());
    let blocked = generate(&fake, &prompt("[[fake:prompt_blocked]]"))
        .await
        .json();
    assert!(blocked.get("candidates").is_none());
    assert_eq!(
        blocked["promptFeedback"]["blockReason"],
        "PROHIBITED_CONTENT"
    );
    let html = generate(&fake, &prompt("[[fake:502_html]]")).await;
    assert_eq!(
        (html.status, html.text.as_str()),
        (502, "<html><body>502 Bad Gateway</body></html>")
    );
    assert_eq!(generate(&fake, &prompt("[[fake:typo]]")).await.status, 400);
}

#[tokio::test]
async fn strict_signatures_reject_an_unsigned_history_image_and_accept_a_url_safe_reencoding() {
    let options = FakeOptions {
        strict_signatures: true,
        ..FakeOptions::default()
    };
    let fake = FakeGemini::start_with(options).await;
    let first = generate(&fake, &prompt("Draw a cat")).await.json();
    let image = image_parts(&first).remove(0);
    let signature = STANDARD
        .decode(image["thoughtSignature"].as_str().unwrap())
        .unwrap();
    let history = |image_part: Value| {
        json!({ "contents": [
            { "role": "user", "parts": [{ "text": "Draw a cat" }] },
            { "role": "model", "parts": [image_part] },
            { "role": "user", "parts": [{ "text": "Now make it blue" }] },
        ]})
    };
    let unsigned = json!({ "inlineData": image["inlineData"].clone() });
    assert_eq!(
        generate(&fake, &history(unsigned.clone())).await.status,
        400
    );

    let mut resigned = unsigned.clone();
    resigned["thought_signature"] = json!(URL_SAFE_NO_PAD.encode(&signature));
    let answer = generate(&fake, &history(resigned)).await;
    assert_eq!(answer.status, 200, "{}", answer.text);

    let mut dummy = unsigned;
    dummy["thoughtSignature"] = json!("skip_thought_signature_validator");
    assert_eq!(generate(&fake, &history(dummy)).await.status, 200);
}

#[tokio::test]
async fn an_sse_stream_parses_into_events_with_text_first_and_finish_last() {
    let fake = FakeGemini::start().await;
    let path = format!("/v1beta/models/{FLASH}:streamGenerateContent?alt=sse");
    let answer = call(&fake, &path, Some(FAKE_API_KEY), &prompt("A harbour")).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.headers["content-type"], "text/event-stream");
    let events: Vec<Value> = answer
        .text
        .split("\r\n\r\n")
        .filter(|frame| !frame.is_empty())
        .map(|frame| {
            serde_json::from_str(frame.strip_prefix("data: ").expect("a data line")).unwrap()
        })
        .collect();
    assert_eq!(events.len(), 2);
    assert!(events[0]["candidates"][0]["content"]["parts"][0]["text"].is_string());
    assert!(events[0]["candidates"][0].get("finishReason").is_none());
    assert!(events[1]["candidates"][0]["content"]["parts"][0]["inlineData"].is_object());
    assert_eq!(events[1]["candidates"][0]["finishReason"], "STOP");
    assert_eq!(events[1]["usageMetadata"]["candidatesTokenCount"], 1120 + 7);
    assert_eq!(events[0]["responseId"], events[1]["responseId"]);

    let broken = call(
        &fake,
        &path,
        Some(FAKE_API_KEY),
        &prompt("[[fake:stream_error]]"),
    )
    .await;
    let last = broken.text.trim_end().rsplit("\r\n\r\n").next().unwrap();
    assert!(last.starts_with("data: {\"error\":"));
}

#[tokio::test]
async fn count_tokens_counts_text_words_and_input_images() {
    let fake = FakeGemini::start().await;
    let body = json!({ "contents": [{ "parts": [
        { "text": "three little words" },
        { "inlineData": { "mimeType": "image/png", "data": STANDARD.encode(small_png()) } },
    ]}]});
    let path = "/v1beta/models/gemini-3-pro-image:countTokens";
    let answer = call(&fake, path, Some(FAKE_API_KEY), &body).await.json();
    assert_eq!(answer["totalTokens"], 3 + 560);
}

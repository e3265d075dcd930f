//! Drop-in surfaces, driven by the official clients people already use: the `openai`
//! package on `/v1/images/*` and the `google-genai` package on `/v1beta/*` — on the
//! offline provider, and (for Gemini) relayed to the fake upstream with the gateway's key.

use std::path::Path;
use std::process::Command;

use crate::support::TestApp;
use crate::support::fake_gemini::FakeGemini;

/// Runs `tests/compat/<script>`; `false` when its Python packages are missing outside CI.
fn run(app: &TestApp, script: &str, module: &str) -> bool {
    let probe = Command::new("python3")
        .args(["-c", &format!("import {module}, PIL")])
        .output();
    if !probe.as_ref().is_ok_and(|o| o.status.success()) {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must install {module} (tests/requirements.txt)"
        );
        eprintln!("skipped: python3 with `{module}` is not installed");
        return false;
    }
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/compat")
        .join(script);
    let output = Command::new("python3")
        .arg(path)
        .env("IMAGEGATE_BASE", &app.base)
        .env("IMAGEGATE_KEY", &app.key)
        .output()
        .expect("python3 runs");
    assert!(
        output.status.success(),
        "{script} failed:\nstdout: {}\nstderr: {}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    true
}

#[tokio::test(flavor = "multi_thread")]
async fn the_official_openai_client_generates_and_edits() {
    let app = TestApp::offline().await;
    tokio::task::block_in_place(|| run(&app, "openai_client.py", "openai"));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_official_google_genai_client_works_offline() {
    let app = TestApp::offline().await;
    tokio::task::block_in_place(|| run(&app, "genai_client.py", "google.genai"));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_official_google_genai_client_is_relayed_to_gemini_with_the_gateways_key() {
    let fake = FakeGemini::start().await;
    let app = TestApp::gemini(&fake).await;
    let ran = tokio::task::block_in_place(|| run(&app, "genai_client.py", "google.genai"));
    if !ran {
        return;
    }
    let relayed = fake.requests();
    assert!(
        relayed
            .iter()
            .any(|r| r.path.ends_with(":streamGenerateContent")),
        "the stream was relayed"
    );
    assert!(relayed.iter().any(|r| r.path.ends_with(":countTokens")));
    for r in &relayed {
        assert_eq!(
            r.api_key.as_deref(),
            Some(crate::support::fake_gemini::FAKE_API_KEY),
            "the gateway's key, never the client's"
        );
    }
    // The second chat turn carried the first turn's image back.
    let chat_turn = relayed
        .iter()
        .find(|r| r.body.to_string().contains("Now make the sofa green"))
        .unwrap();
    assert_eq!(chat_turn.body["contents"].as_array().unwrap().len(), 3);
    // Usage was recorded for the caller.
    let usage: serde_json::Value = app.get("/usage").await.json().await.unwrap();
    assert!(
        usage.to_string().contains("gemini-3.1-flash-image"),
        "{usage}"
    );
}

#[tokio::test]
async fn the_native_surface_takes_the_key_as_a_query_parameter_and_answers_in_googles_envelope() {
    let app = TestApp::offline().await;
    let anonymous = reqwest::Client::new();
    let body = serde_json::json!({"contents": [{"role": "user", "parts": [{"text": "a red kite"}]}],
                                  "generationConfig": {"responseModalities": ["IMAGE"], "imageConfig": {"aspectRatio": "1:1", "imageSize": "512"}}});
    let ok = anonymous
        .post(app.url(&format!(
            "/v1beta/models/gemini-3.1-flash-image:generateContent?key={}",
            app.key
        )))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    let answer: serde_json::Value = ok.json().await.unwrap();
    assert_eq!(answer["candidates"][0]["finishReason"], "STOP");
    assert!(
        answer["candidates"][0]["content"]["parts"][0]["inlineData"]["data"]
            .as_str()
            .is_some()
    );

    let refused = anonymous
        .post(app.url("/v1beta/models/gemini-3.1-flash-image:generateContent?key=wrong"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    let error: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(error["error"]["code"], 401);
    assert_eq!(error["error"]["status"], "UNAUTHENTICATED");

    let unknown = anonymous
        .post(app.url(&format!(
            "/v1beta/models/dall-e-3:generateContent?key={}",
            app.key
        )))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);
    let error: serde_json::Value = unknown.json().await.unwrap();
    assert_eq!(error["error"]["status"], "NOT_FOUND");
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("models/dall-e-3 is not found")
    );
}

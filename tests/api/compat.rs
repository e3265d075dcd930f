//! Drop-in surfaces, driven by the official clients people already use, with their default
//! settings as README.md and docs/compat.md give them: the `openai` package on `/v1/images/*`
//! and `/v1/models`, and the `google-genai` package on whatever API version it defaults to
//! (`v1` since 3.6; one run pinned to `v1beta`) — on the offline provider, and (for Gemini)
//! relayed to the fake upstream with the gateway's key.

use std::path::Path;
use std::process::Command;

use crate::support::fake_gemini::FakeGemini;
use crate::support::tools::require_python;
use crate::support::{TestApp, json_of};

/// Runs `tests/compat/<script>`, which needs python3 with `module`.
fn run(app: &TestApp, script: &str, module: &str) {
    run_with(
        script,
        module,
        &[("IMAGEGATE_BASE", &app.base), ("IMAGEGATE_KEY", &app.key)],
    )
}

fn run_with(script: &str, module: &str, env: &[(&str, &str)]) {
    require_python(&format!("{module}, PIL"));
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/compat")
        .join(script);
    let output = Command::new("python3")
        .arg(path)
        .envs(env.iter().copied())
        .output()
        .expect("python3 runs");
    assert!(
        output.status.success(),
        "{script} failed:\nstdout: {}\nstderr: {}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[ignore = "needs python3 with tests/requirements.txt installed"]
#[tokio::test(flavor = "multi_thread")]
async fn the_official_openai_client_generates_and_edits() {
    let app = TestApp::offline().await;
    tokio::task::block_in_place(|| run(&app, "openai_client.py", "openai"));
}

/// The routes the server matched, from its own metrics.
async fn served_endpoints(app: &TestApp) -> String {
    app.get("/metrics").await.text().await.unwrap()
}

#[ignore = "needs python3 with tests/requirements.txt installed"]
#[tokio::test(flavor = "multi_thread")]
async fn the_official_google_genai_client_works_offline_with_its_default_api_version() {
    let app = TestApp::offline().await;
    tokio::task::block_in_place(|| run(&app, "genai_client.py", "google.genai"));
    let metrics = served_endpoints(&app).await;
    // google-genai 3.6 defaults to `v1`. A release that moves the default again fails
    // here, which is the point: the README's snippet must follow it.
    assert!(
        metrics.contains(r#"endpoint="/v1/models/{target}""#),
        "{metrics}"
    );
}

#[ignore = "needs python3 with tests/requirements.txt installed"]
#[tokio::test(flavor = "multi_thread")]
async fn the_official_google_genai_client_works_pinned_to_v1beta() {
    let app = TestApp::offline().await;
    tokio::task::block_in_place(|| {
        run_with(
            "genai_client.py",
            "google.genai",
            &[
                ("IMAGEGATE_BASE", &app.base),
                ("IMAGEGATE_KEY", &app.key),
                ("IMAGEGATE_GENAI_API_VERSION", "v1beta"),
            ],
        )
    });
    let metrics = served_endpoints(&app).await;
    assert!(metrics.contains(r#"endpoint="/v1beta/models/{target}""#));
    assert!(!metrics.contains(r#"endpoint="/v1/models/{target}""#));
}

#[ignore = "needs python3 with tests/requirements.txt installed"]
#[tokio::test(flavor = "multi_thread")]
async fn the_fake_upstream_accepts_what_google_genai_sends_and_refuses_what_google_refuses() {
    let fake = FakeGemini::start().await;
    fake.overload("gemini-3-pro-image");
    let base = fake.base_url();
    tokio::task::block_in_place(|| {
        run_with(
            "genai_fake.py",
            "google.genai",
            &[
                ("FAKE_BASE", &base),
                ("FAKE_KEY", crate::support::fake_gemini::FAKE_API_KEY),
            ],
        )
    });
    let calls = fake.requests();
    let version = calls[0]
        .path
        .split('/')
        .nth(1)
        .unwrap_or_default()
        .to_owned();
    assert!(
        calls
            .iter()
            .all(|c| c.path.starts_with(&format!("/{version}/")))
    );
    let flex = calls
        .iter()
        .find(|c| c.status == 200 && c.method == "POST")
        .unwrap();
    assert_eq!(flex.body["serviceTier"], "flex");
    assert!(
        fake.list_requests().len() >= 2,
        "the SDK's pager followed the pages"
    );
}

#[ignore = "needs python3 with tests/requirements.txt installed"]
#[tokio::test(flavor = "multi_thread")]
async fn the_official_google_genai_client_is_relayed_to_gemini_with_the_gateways_key() {
    let fake = FakeGemini::start().await;
    let app = TestApp::gemini(&fake).await;
    tokio::task::block_in_place(|| run(&app, "genai_client.py", "google.genai"));
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
        usage.to_string().contains("gemini-nano-banana-2.1"),
        "{usage}"
    );
    // The flex call went upstream as the SDK sent it.
    assert!(relayed.iter().any(|r| r.body["serviceTier"] == "flex"));
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

#[tokio::test]
async fn get_v1_models_answers_each_sdk_in_its_own_shape_and_envelope() {
    let app = TestApp::offline().await;
    let anonymous = reqwest::Client::new();

    // A bearer key is OpenAI's client: OpenAI's list, model object and error envelope.
    let (status, _, list) = json_of(app.get("/v1/models").await).await;
    assert_eq!(status, 200);
    assert_eq!(list["object"], "list");
    assert!(
        list["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["id"] == "gemini-nano-banana-2.1" && m["object"] == "model")
    );
    let (status, _, missing) = json_of(app.get("/v1/models/no-such-model").await).await;
    assert_eq!(status, 404);
    assert_eq!(missing["error"]["code"], "not_found", "{missing}");
    assert!(missing["error"].get("status").is_none());
    let (status, _, denied) = json_of(
        anonymous
            .get(app.url("/v1/models"))
            .bearer_auth("not-a-key")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 401);
    assert_eq!(denied["error"]["type"], "authentication_error");

    // Google's key header or query: Google's list, resource and envelope, on v1 as on v1beta.
    for version in ["v1", "v1beta"] {
        for query_key in [false, true] {
            let request = if query_key {
                anonymous.get(app.url(&format!("/{version}/models?key={}", app.key)))
            } else {
                anonymous
                    .get(app.url(&format!("/{version}/models")))
                    .header("x-goog-api-key", &app.key)
            };
            let (status, _, list) = json_of(request.send().await.unwrap()).await;
            assert_eq!(status, 200);
            assert!(
                list["models"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|m| m["name"] == "models/gemini-nano-banana-2.1"),
                "{version} {list}"
            );
            assert!(list.get("object").is_none());
        }
        let (status, _, missing) = json_of(
            anonymous
                .get(app.url(&format!("/{version}/models/no-such-model")))
                .header("x-goog-api-key", &app.key)
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, 404);
        assert_eq!(missing["error"]["status"], "NOT_FOUND");
        assert!(
            missing["error"]["message"]
                .as_str()
                .unwrap()
                .contains(&format!("for API version {version},"))
        );
        let (status, _, denied) = json_of(
            anonymous
                .get(app.url(&format!("/{version}/models")))
                .header("x-goog-api-key", "not-a-key")
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, 401);
        assert_eq!(denied["error"]["status"], "UNAUTHENTICATED");
    }

    // The methods answer alike on both versions, in Google's envelope whatever the key.
    let body = serde_json::json!({"contents": [{"parts": [{"text": "a kite"}]}]});
    for version in ["v1", "v1beta"] {
        let path = format!("/{version}/models/gemini-nano-banana-2.1:generateContent");
        let (status, _, answer) = json_of(app.post_json(&path, body.clone()).await).await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer["candidates"][0]["finishReason"], "STOP");
        let path = format!("/{version}/models/gemini-nano-banana-2.1:countTokens");
        let (status, _, count) = json_of(app.post_json(&path, body.clone()).await).await;
        assert_eq!(status, 200);
        assert!(count["totalTokens"].as_u64().unwrap() > 0);
        let path = format!("/{version}/models/gemini-nano-banana-2.1:explode");
        let (status, _, error) = json_of(app.post_json(&path, body.clone()).await).await;
        assert_eq!(status, 404);
        assert_eq!(error["error"]["status"], "NOT_FOUND");
    }
}

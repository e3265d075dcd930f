//! Quality (docs/api.md#quality): `include_quality`, `min_quality_score` and `POST /quality`,
//! checked against the guide's own NumPy code (`tests/python/quality_reference.py`).

use std::path::Path;
use std::process::Command;

use base64::Engine as _;
use serde_json::{Value, json};

use crate::support::fake_gemini::FakeGemini;
use crate::support::{TestApp, expect_invalid, file_part, json_of, png};

const METRICS: [&str; 4] = ["brightness", "contrast", "sharpness", "color_diversity"];

/// The guide's `assess_image_quality` and score on `bytes` (needs python3 with NumPy).
fn numpy_quality(bytes: &[u8]) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("image");
    std::fs::write(&path, bytes).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/quality_reference.py");
    let missing = match Command::new("python3").arg(script).arg(&path).output() {
        Ok(out) if out.status.code() == Some(77) => {
            String::from_utf8_lossy(&out.stderr).into_owned()
        }
        Ok(out) => {
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(out.status.success(), "the NumPy reference failed: {stderr}");
            let mut all: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
            return all.pop().expect("the reference printed one result");
        }
        Err(error) => format!("python3 could not be run: {error}"),
    };
    panic!(
        "this test needs python3 with NumPy (pip install -r tests/requirements.txt): {}",
        missing.trim()
    );
}

/// Asserts `metrics` and `score` are NumPy's on `bytes` to within 1e-6 relative.
fn assert_numpy_agrees(bytes: &[u8], metrics: &Value, score: &Value) {
    let numpy = numpy_quality(bytes);
    let pairs = METRICS
        .iter()
        .map(|f| (*f, &metrics[*f], &numpy[*f]))
        .chain([("quality_score", score, &numpy["quality_score"])]);
    for (field, ours, theirs) in pairs {
        let (a, b) = (ours.as_f64().unwrap(), theirs.as_f64().unwrap());
        assert!(
            (a - b).abs() <= 1e-6 * b.abs().max(1e-3),
            "{field}: ours {a}, NumPy {b}"
        );
    }
    assert_eq!(metrics["resolution"], numpy["resolution"]);
    assert_eq!(metrics["file_size"], numpy["file_size"]);
}

fn first_image(body: &Value) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .decode(body["images"][0].as_str().unwrap())
        .unwrap()
}

async fn generate(app: &TestApp, body: Value) -> (u16, Value) {
    let (status, _, body) = json_of(app.post_json("/generate-image", body).await).await;
    (status, body)
}

#[ignore = "needs python3 with NumPy (tests/requirements.txt)"]
#[tokio::test]
async fn include_quality_returns_numpys_metrics_of_images_0_for_jpeg_and_png() {
    let fake = FakeGemini::start().await;
    let gemini = TestApp::gemini(&fake).await;
    let offline = TestApp::offline().await;
    let ask = json!({"prompt": "a lighthouse at dusk", "include_quality": true});

    for (app, mime) in [(&gemini, "image/jpeg"), (&offline, "image/png")] {
        let (status, body) = generate(app, ask.clone()).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["mime_types"][0], mime);
        assert!(
            body.get("quality_attempts").is_none(),
            "only with a minimum"
        );
        assert_numpy_agrees(
            &first_image(&body),
            &body["quality_metrics"],
            &body["quality_score"],
        );
    }
}

#[tokio::test]
async fn quality_fields_appear_only_when_asked_for() {
    let app = TestApp::offline().await;

    for ask in [
        json!({"prompt": "a fox"}),
        json!({"prompt": "a fox", "include_quality": false}),
    ] {
        let (status, body) = generate(&app, ask).await;
        assert_eq!(status, 200, "{body}");
        assert!(body.get("quality_metrics").is_none(), "{body}");
        assert!(body.get("quality_score").is_none());
    }
}

#[ignore = "needs python3 with NumPy (tests/requirements.txt)"]
#[tokio::test]
async fn an_unreachable_minimum_regenerates_three_times_with_the_guides_prompts() {
    let fake = FakeGemini::start().await;
    let app = TestApp::gemini(&fake).await;
    let (_, single) = generate(&app, json!({"prompt": "a quiet harbour"})).await;

    let ask = json!({"prompt": "a quiet harbour", "min_quality_score": 20.0});
    let (status, body) = generate(&app, ask).await;

    assert_eq!(status, 200, "{body}");
    let prompts: Vec<String> = fake
        .requests()
        .iter()
        .skip(1)
        .map(|r| r.last_user_text())
        .collect();
    assert_eq!(
        prompts,
        [
            "a quiet harbour",
            "a quiet harbour (attempt 2)",
            "a quiet harbour (attempt 2) (attempt 3)"
        ]
    );
    assert_eq!(body["quality_attempts"], 3);
    assert!(body["quality_score"].as_f64().unwrap() < 20.0);
    assert_numpy_agrees(
        &first_image(&body),
        &body["quality_metrics"],
        &body["quality_score"],
    );
    // Every attempt is a paid upstream call; the response's usage adds them up.
    let one = single["usage"]["cost_usd"].as_f64().unwrap();
    let all = body["usage"]["cost_usd"].as_f64().unwrap();
    // The suffixes add a few input tokens at $0.50 per million.
    assert!(
        one > 0.0 && (all - 3.0 * one).abs() < 1e-4,
        "{one} × 3 vs {all}"
    );
    assert_eq!(
        body["usage"]["image_tokens"],
        3 * single["usage"]["image_tokens"].as_u64().unwrap()
    );
}

#[tokio::test]
async fn a_minimum_met_at_once_takes_one_generation() {
    let fake = FakeGemini::start().await;
    let app = TestApp::gemini(&fake).await;

    let ask = json!({"prompt": "a windmill", "min_quality_score": 0.0, "include_quality": false});
    let (status, body) = generate(&app, ask).await;

    assert_eq!(status, 200, "{body}");
    assert_eq!(fake.requests().len(), 1);
    assert_eq!(body["quality_attempts"], 1);
    assert!(body["quality_score"].as_f64().unwrap() >= 0.0);
    assert!(body["quality_metrics"]["resolution"].is_string());
}

#[tokio::test]
async fn quality_options_are_validated() {
    let app = TestApp::offline().await;
    for bad in [json!(-0.5), json!(25), json!("high")] {
        let response = app
            .post_json(
                "/generate-image",
                json!({"prompt": "a fox", "min_quality_score": bad}),
            )
            .await;
        let body = expect_invalid(response).await;
        assert_eq!(
            body["details"]["field"], "min_quality_score",
            "{bad}: {body}"
        );
    }
    // Text-only answers are refused on every image endpoint, quality or not.
    let text_only =
        json!({"prompt": "a fox", "include_quality": true, "response_modalities": ["TEXT"]});
    let body = expect_invalid(app.post_json("/generate-image", text_only).await).await;
    assert_eq!(body["details"]["field"], "response_modalities");
}

#[tokio::test]
async fn edit_and_compose_accept_quality_as_form_fields() {
    let app = TestApp::offline().await;
    let edit = reqwest::multipart::Form::new()
        .part("image", file_part(png(64, 48), "in.png"))
        .text("prompt", "make it blue")
        .text("include_quality", "True");
    let (status, _, body) = json_of(app.post_form("/edit-image", edit).await).await;
    assert_eq!(status, 200, "{body}");
    assert!(body["quality_score"].is_number(), "{body}");

    let compose = reqwest::multipart::Form::new()
        .part("images", file_part(png(64, 48), "a.png"))
        .part("images", file_part(png(48, 64), "b.png"))
        .text("prompt", "side by side")
        .text("min_quality_score", "0");
    let (status, _, body) = json_of(app.post_form("/compose-images", compose).await).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["quality_attempts"], 1);
}

#[ignore = "needs python3 with NumPy (tests/requirements.txt)"]
#[tokio::test]
async fn post_quality_measures_the_uploaded_bytes_without_downscaling() {
    let app = TestApp::offline().await;
    // Larger than the 1024-pixel intake edge, which generation inputs are shrunk to.
    let upload = png(1500, 1100);
    let form = reqwest::multipart::Form::new().part("image", file_part(upload.clone(), "big.png"));

    let (status, _, body) = json_of(app.post_form("/quality", form).await).await;

    assert_eq!(status, 200, "{body}");
    assert_eq!(body["quality_metrics"]["resolution"], "1500x1100");
    assert_eq!(body["quality_metrics"]["file_size"], upload.len());
    assert_eq!(
        body.as_object().unwrap().len(),
        2,
        "the metrics alone: {body}"
    );
    assert_numpy_agrees(&upload, &body["quality_metrics"], &body["quality_score"]);
}

#[tokio::test]
async fn post_quality_refuses_what_it_cannot_measure() {
    let app = TestApp::offline().await;
    let cases = [
        (b"GIF89a not supported".to_vec(), "image"),
        (png(1, 40), "image"),
        (png(8, 8)[..30].to_vec(), "image"),
    ];
    for (bytes, field) in cases {
        let form = reqwest::multipart::Form::new().part("image", file_part(bytes, "x"));
        let body = expect_invalid(app.post_form("/quality", form).await).await;
        assert_eq!(body["details"]["field"], field, "{body}");
    }
    let empty = reqwest::multipart::Form::new().text("note", "no image");
    expect_invalid(app.post_form("/quality", empty).await).await;
}

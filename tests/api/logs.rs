//! Logs as an operator gets them (`serve --log-format json`, `RUST_LOG=debug`): one
//! `request` span per request with its id, key id, route, model, status and duration, and
//! never image bytes, base64 payloads or keys, on success or failure.

use base64::Engine as _;
use serde_json::{Value, json};

use crate::support::fake_gemini::{FAKE_API_KEY, FakeGemini};
use crate::support::process;
use crate::support::{client_with_key, file_part, json_of};

/// Noise, so the upload's base64 is long and cannot be mistaken for anything else.
fn noisy_png() -> Vec<u8> {
    let image = image::RgbImage::from_fn(96, 64, |x, y| {
        let h = ((x * 7919) ^ (y * 104_729)).wrapping_mul(2_654_435_761);
        image::Rgb([(h >> 24) as u8, (h >> 16) as u8, (h >> 8) as u8])
    });
    let mut out = std::io::Cursor::new(Vec::new());
    image.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

/// The longest run of characters that could be base64 (or hex) in `text`.
fn longest_base64_run(text: &str) -> usize {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '+' | '/' | '=' | '_')))
        .map(str::len)
        .max()
        .unwrap_or(0)
}

#[tokio::test]
async fn request_spans_carry_their_fields_and_logs_never_hold_images_or_keys() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let fake = FakeGemini::start().await;
    let data = tempfile::tempdir().unwrap();
    let gemini = "[gemini]\ninitial_backoff_ms = 10\nmax_backoff_ms = 20\nmax_attempts = 2\n";
    std::fs::write(data.path().join("imagegate.toml"), gemini).unwrap();
    let mut command = process::serve_gemini(data.path(), &fake.base_url());
    command.env("RUST_LOG", "debug");
    let (server, base, _, log) = process::start_logged(&mut command).await;
    // The server's own Google key is accepted as a bearer (docs/api.md#keys-and-limits).
    let client = client_with_key(Some(FAKE_API_KEY));
    let upload = noisy_png();
    let form = reqwest::multipart::Form::new()
        .part("image", file_part(upload.clone(), "photo.png"))
        .text("prompt", "make the sky purple")
        .text("include_quality", "true");
    let edited = client.post(format!("{base}/edit-image")).multipart(form);
    let (status, _, edited) = json_of(edited.send().await.unwrap()).await;
    assert_eq!(status, 200, "{edited}");
    let failing = json!({"prompt": "a storm [[fake:500]]"});
    let failed = client.post(format!("{base}/generate-image")).json(&failing);
    let (status, failed_id, _) = json_of(failed.send().await.unwrap()).await;
    assert_eq!(status, 502, "the upstream's 500, after its retry");
    let corrupt = reqwest::multipart::Form::new()
        .part(
            "image",
            file_part(upload[..upload.len() / 2].to_vec(), "cut.png"),
        )
        .text("prompt", "fix it");
    let refused = client.post(format!("{base}/edit-image")).multipart(corrupt);
    assert_eq!(refused.send().await.unwrap().status(), 400);

    let pid = server.id().unwrap().to_string();
    std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    let log = log.until_closed().await;
    let text = log.join("\n");

    let finished: Vec<Value> = log
        .iter()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|e| e["fields"]["message"] == "request finished")
        .collect();
    let span_of = |id: &str| {
        finished
            .iter()
            .map(|e| &e["span"])
            .find(|s| s["request_id"] == id)
            .unwrap_or_else(|| panic!("no request line for {id}:\n{text}"))
            .clone()
    };
    let edit_span = span_of(edited["request_id"].as_str().unwrap());
    assert_eq!(edit_span["name"], "request");
    assert_eq!(edit_span["endpoint"], "/edit-image");
    assert_eq!(edit_span["model"], edited["model"]);
    assert_eq!(edit_span["status"], 200);
    assert!(edit_span["duration_ms"].as_f64().unwrap() > 0.0);
    assert!(
        edit_span["key_id"].as_str().is_some_and(|k| !k.is_empty()),
        "{edit_span}"
    );
    let failed_span = span_of(&failed_id);
    assert_eq!(failed_span["status"], 502);
    assert_eq!(failed_span["endpoint"], "/generate-image");
    assert!(
        text.contains("upstream call failed"),
        "the failure is logged"
    );

    assert!(
        !text.contains(FAKE_API_KEY),
        "the key never reaches a log line"
    );
    let upload_b64 = base64::engine::general_purpose::STANDARD.encode(&upload);
    let output_b64 = edited["images"][0].as_str().unwrap();
    for payload in [&upload_b64[100..160], &output_b64[100..160]] {
        assert!(!text.contains(payload), "base64 image data in the log");
    }
    let run = longest_base64_run(&text);
    assert!(
        run < 100,
        "a {run}-character base64-like run in the log:\n{text}"
    );
}

//! What the guide and the README promise: the guide's webhook handler stores images as
//! written, the CLI's `-o out.png` is a PNG and its key comes from `IMAGEGATE_KEY`, and
//! `/stats` counts async work by how it ended.

use std::process::Command;

use imagegate::config::ProviderChoice;
use serde_json::json;

use crate::guide_samples::run_sample;
use crate::support::fake_gemini::FakeGemini;
use crate::support::{TestApp, expect_invalid, json_of};

#[ignore = "needs python3 with tests/requirements.txt installed"]
#[tokio::test(flavor = "multi_thread")]
async fn the_guides_webhook_handler_verbatim_stores_the_images_it_is_sent() {
    let app = TestApp::spawn(|c| {
        c.provider = ProviderChoice::Offline;
        // The handler listens on loopback.
        c.jobs.webhooks.allow_private = true;
        c.jobs.poll_ms = 20;
    })
    .await;
    let workdir = tempfile::tempdir().unwrap();
    let dir = workdir.path().to_owned();
    let app_ref = &app;
    tokio::task::block_in_place(|| run_sample(app_ref, "webhook_handler.py", &app_ref.key, &dir));
}

fn client(app: &TestApp, args: &[&str], dir: &std::path::Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_imagegate"))
        .args(args)
        .arg("--url")
        .arg(&app.base)
        // The README's name for the key.
        .env("IMAGEGATE_KEY", &app.key)
        .env_remove("IMAGEGATE_API_KEY")
        .current_dir(dir)
        .output()
        .expect("the client runs")
}

#[tokio::test(flavor = "multi_thread")]
async fn the_cli_writes_the_format_the_file_name_asks_for_with_the_readmes_key_variable() {
    // The fake upstream answers with JPEG bytes, as Gemini does.
    let fake = FakeGemini::start().await;
    let app = TestApp::gemini(&fake).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_owned();

    let (png, jpg, gif) = tokio::task::block_in_place(|| {
        (
            client(&app, &["generate", "a lighthouse", "-o", "out.png"], &path),
            client(&app, &["generate", "a lighthouse", "-o", "out.jpg"], &path),
            client(&app, &["generate", "a lighthouse", "-o", "out.gif"], &path),
        )
    });

    for output in [&png, &jpg] {
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let written = std::fs::read(path.join("out.png")).unwrap();
    assert!(
        written.starts_with(b"\x89PNG\r\n\x1a\n"),
        "out.png is a PNG"
    );
    let written = std::fs::read(path.join("out.jpg")).unwrap();
    assert!(
        written.starts_with(&[0xFF, 0xD8, 0xFF]),
        "out.jpg is a JPEG"
    );
    assert!(!gif.status.success());
    let stderr = String::from_utf8_lossy(&gif.stderr);
    assert!(stderr.contains("use a .png, .jpg or .webp"), "{stderr}");
    assert!(!path.join("out.gif").exists());
}

#[tokio::test]
async fn stats_count_async_work_by_its_outcome_not_its_acceptance() {
    let app = TestApp::spawn(|c| {
        c.provider = ProviderChoice::Offline;
        c.jobs.poll_ms = 20;
    })
    .await;
    let id = app
        .queue(json!({"prompt": "a fox", "model": "gemini-3.1-flash-image", "image_size": "512", "async": true}))
        .await;

    let status = || async { json_of(app.get(&format!("/requests/{id}")).await).await.2 };
    let done = crate::support::poll_within(6.0, status, |done| done["status"] == "succeeded").await;
    assert_eq!(done["status"], "succeeded", "{done}");

    let (_, _, stats) = json_of(app.get("/stats").await).await;
    // One request, counted once, when it ended: the 202 is no failure.
    assert_eq!(stats["total_requests"], 1, "{stats}");
    assert_eq!(stats["successful_requests"], 1, "{stats}");
    assert_eq!(stats["success_rate"], 1.0, "{stats}");
}

#[tokio::test]
async fn text_only_modalities_on_image_endpoints_are_refused_not_an_empty_200() {
    let app = TestApp::offline().await;
    for modalities in [json!(["Text"]), json!(["TEXT"])] {
        let response = app
            .post_json(
                "/generate-image",
                json!({"prompt": "a fox", "response_modalities": modalities}),
            )
            .await;
        let body = expect_invalid(response).await;
        assert_eq!(body["details"]["field"], "response_modalities", "{body}");
        assert!(body["message"].as_str().unwrap().contains("Image"));
    }
    let form = reqwest::multipart::Form::new()
        .part(
            "image",
            crate::support::file_part(crate::support::png(64, 64), "in.png"),
        )
        .text("prompt", "make it blue")
        .text("response_modalities", "Text");
    let body = expect_invalid(app.post_form("/edit-image", form).await).await;
    assert_eq!(body["details"]["field"], "response_modalities", "{body}");
    let (status, _, body) = json_of(
        app.post_json(
            "/generate-image",
            json!({"prompt": "a fox", "model": "gemini-3.1-flash-image", "image_size": "512", "response_modalities": ["Image"]}),
        )
        .await,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["images"].as_array().unwrap().len(), 1);
}

//! The guide's own code samples, run unchanged with Python against a live server.

use std::path::Path;
use std::process::Command;

use crate::support::TestApp;

/// What the guide leaves to the reader: the key, and where relative URLs point.
const PRELUDE: &str = r#"
import requests
your_api_key = "@KEY@"
_original_request = requests.sessions.Session.request
def _request(self, method, url, *args, **kwargs):
    if isinstance(url, str) and url.startswith("/"):
        url = "@BASE@" + url
    headers = dict(kwargs.get("headers") or {})
    if not any(k.lower() == "authorization" for k in headers):
        headers["Authorization"] = "Bearer " + your_api_key
    kwargs["headers"] = headers
    return _original_request(self, method, url, *args, **kwargs)
requests.sessions.Session.request = _request
"#;

/// Input photos the samples open, generated for each run.
const PHOTOS: &[(&str, (u32, u32))] = &[
    ("photo.jpg", (640, 480)),
    ("portrait.jpg", (480, 640)),
    ("person.jpg", (400, 600)),
    ("background.jpg", (800, 600)),
    ("cafe_interior.jpg", (800, 600)),
    ("scene.jpg", (640, 480)),
    ("landscape.jpg", (640, 360)),
];

/// Runs a sample from `tests/guide/` in `workdir` (python3 with `requests` and Pillow).
pub fn run_sample(app: &TestApp, sample: &str, api_key: &str, workdir: &Path) {
    crate::support::tools::require_python("requests, PIL");
    let source = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/guide")
            .join(sample),
    )
    .expect("sample exists");
    let prelude = PRELUDE
        .replace("@BASE@", &app.base)
        .replace("@KEY@", api_key);
    let script = format!(
        "{prelude}\n{}",
        source.replace("http://localhost:8000", &app.base)
    );
    for (name, (w, h)) in PHOTOS {
        std::fs::write(workdir.join(name), crate::support::jpeg(*w, *h)).expect("photo written");
    }
    let output = Command::new("python3")
        .arg("-c")
        .arg(script)
        .current_dir(workdir)
        .output()
        .expect("python3 runs");
    assert!(
        output.status.success(),
        "{sample} failed:\nstdout: {}\nstderr: {}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[ignore = "needs python3 with tests/requirements.txt installed"]
#[tokio::test(flavor = "multi_thread")]
async fn the_quick_start_sample_writes_a_decodable_image() {
    let app = TestApp::offline().await;
    let workdir = tempfile::tempdir().unwrap();
    let app_ref = &app;
    let dir = workdir.path().to_owned();
    tokio::task::block_in_place(|| run_sample(app_ref, "quickstart.py", &app_ref.key, &dir));
    let written = std::fs::read(workdir.path().join("generated_image.png"))
        .expect("the sample wrote generated_image.png");
    let image = image::load_from_memory(&written).expect("a decodable image");
    assert_eq!((image.width(), image.height()), (1024, 1024));
}

async fn run_in_tempdir(sample: &str) {
    let app = TestApp::offline().await;
    let workdir = tempfile::tempdir().unwrap();
    let dir = workdir.path().to_owned();
    let app_ref = &app;
    tokio::task::block_in_place(|| run_sample(app_ref, sample, &app_ref.key, &dir));
}

#[ignore = "needs python3 with tests/requirements.txt installed"]
#[tokio::test(flavor = "multi_thread")]
async fn the_chat_workflow_sample_refines_three_times() {
    run_in_tempdir("chat_workflow.py").await;
}

#[ignore = "needs python3 with tests/requirements.txt installed"]
#[tokio::test(flavor = "multi_thread")]
async fn the_story_sample_makes_six_steps() {
    run_in_tempdir("story_recipe.py").await;
}

#[ignore = "needs python3 with tests/requirements.txt installed"]
#[tokio::test(flavor = "multi_thread")]
async fn the_background_replacement_sample_edits_the_portrait() {
    run_in_tempdir("edit_background.py").await;
}

#[ignore = "needs python3 with tests/requirements.txt installed"]
#[tokio::test(flavor = "multi_thread")]
async fn the_cafe_composition_sample_composes_two_photos() {
    run_in_tempdir("compose_cafe.py").await;
}

#[ignore = "needs python3 with tests/requirements.txt installed"]
#[tokio::test(flavor = "multi_thread")]
async fn the_inpainting_sample_gets_back_an_edit_of_its_scene() {
    run_in_tempdir("inpaint.py").await;
}

#[ignore = "needs python3 with tests/requirements.txt installed"]
#[tokio::test(flavor = "multi_thread")]
async fn the_outpainting_sample_grows_the_landscape() {
    run_in_tempdir("outpaint.py").await;
}

#[ignore = "needs python3 with tests/requirements.txt installed"]
#[tokio::test(flavor = "multi_thread")]
async fn the_style_transfer_sample_gets_back_an_image_unlike_its_input() {
    run_in_tempdir("style_transfer.py").await;
}

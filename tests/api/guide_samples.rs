//! The guide's own code samples, run unchanged with Python against a live server.

use std::path::Path;
use std::process::Command;

use crate::support::TestApp;

/// Runs a sample from `tests/guide/` in `workdir`. Returns `false` when Python or
/// `requests` is missing outside CI (the test then reports itself skipped); in CI
/// (`CI` set) a missing interpreter is a failure, since `.ci/run` installs it.
pub fn run_sample(app: &TestApp, sample: &str, api_key: &str, workdir: &Path) -> bool {
    let probe = Command::new("python3")
        .args(["-c", "import requests"])
        .output();
    if !probe.as_ref().is_ok_and(|o| o.status.success()) {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must install python3 and requests"
        );
        eprintln!("skipped: python3 with `requests` is not installed");
        return false;
    }
    let source = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/guide")
            .join(sample),
    )
    .expect("sample exists");
    let script = format!(
        "your_api_key = {api_key:?}\n{}",
        source.replace("http://localhost:8000", &app.base)
    );
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
    true
}

#[tokio::test(flavor = "multi_thread")]
async fn the_quick_start_sample_writes_a_decodable_image() {
    let app = TestApp::offline().await;
    let workdir = tempfile::tempdir().unwrap();
    let app_ref = &app;
    let dir = workdir.path().to_owned();
    let ran = tokio::task::block_in_place(|| run_sample(app_ref, "quickstart.py", "dev-key", &dir));
    if !ran {
        return;
    }
    let written = std::fs::read(workdir.path().join("generated_image.png"))
        .expect("the sample wrote generated_image.png");
    let image = image::load_from_memory(&written).expect("a decodable image");
    assert_eq!((image.width(), image.height()), (1024, 1024));
}

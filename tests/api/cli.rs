//! The command-line client against a live server: each command writes what it says,
//! and server errors print the contract's message with a non-zero exit.

use std::io::Write as _;
use std::process::{Command, Output, Stdio};

use crate::support::{TestApp, png};

fn imagegate(app: &TestApp, args: &[&str], dir: &std::path::Path, stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_imagegate"))
        .args(args)
        .arg("--url")
        .arg(&app.base)
        .env("IMAGEGATE_API_KEY", &app.key)
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary starts");
    let mut input = child.stdin.take().expect("stdin");
    input
        .write_all(stdin.unwrap_or_default().as_bytes())
        .expect("stdin written");
    drop(input);
    child.wait_with_output().expect("the command ends")
}

fn ok(output: &Output) {
    assert!(
        output.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// `imagegate <args>` against `app`, run in `dir` with nothing on stdin; it must succeed.
pub(crate) fn imagegate_ok(app: &TestApp, args: &[&str], dir: &std::path::Path) -> Output {
    let output = imagegate(app, args, dir, None);
    ok(&output);
    output
}

fn dims(path: &std::path::Path) -> (u32, u32) {
    let image = image::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    (image.width(), image.height())
}

#[tokio::test(flavor = "multi_thread")]
async fn generate_edit_and_compose_write_their_images() {
    let app = TestApp::offline().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("in.png"), png(300, 200)).unwrap();
    std::fs::write(dir.path().join("b.png"), png(100, 200)).unwrap();
    let path = dir.path().to_owned();
    tokio::task::block_in_place(|| {
        imagegate_ok(
            &app,
            &[
                "generate",
                "a lighthouse",
                "-o",
                "out.png",
                "--aspect-ratio",
                "16:9",
                "--size",
                "512",
                "--model",
                "gemini-3.1-flash-image",
            ],
            &path,
        );
        assert_eq!(dims(&path.join("out.png")), (688, 384));
        imagegate_ok(
            &app,
            &[
                "edit",
                "in.png",
                "make it blue",
                "-o",
                "edited.png",
                "--strength",
                "0.3",
            ],
            &path,
        );
        assert_eq!(dims(&path.join("edited.png")), (300, 200));
        imagegate_ok(
            &app,
            &[
                "compose",
                "in.png",
                "b.png",
                "side by side",
                "--style",
                "side_by_side",
                "-o",
                "both.png",
            ],
            &path,
        );
        assert_eq!(dims(&path.join("both.png")), (400, 200));
    });
}

#[tokio::test(flavor = "multi_thread")]
async fn story_writes_one_image_per_step_and_the_captions() {
    let app = TestApp::offline().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_owned();
    tokio::task::block_in_place(|| {
        imagegate_ok(
            &app,
            &[
                "story",
                "a snail's journey",
                "-n",
                "3",
                "--out",
                "steps",
                "--size",
                "512",
                "--model",
                "gemini-3.1-flash-image",
            ],
            &path,
        );
    });
    for i in 1..=3 {
        assert_eq!(dims(&path.join(format!("steps/step-0{i}.png"))), (512, 512));
    }
    let captions = std::fs::read_to_string(path.join("steps/captions.txt")).unwrap();
    assert_eq!(captions.lines().count(), 3, "{captions}");
}

#[tokio::test(flavor = "multi_thread")]
async fn chat_can_be_driven_from_a_pipe() {
    let app = TestApp::offline().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("start.png"), png(200, 100)).unwrap();
    let path = dir.path().to_owned();
    let output = tokio::task::block_in_place(|| {
        imagegate(
            &app,
            &["chat", "--out", "turns"],
            &path,
            Some("/image start.png start from this\nmake it warmer\n/quit\n"),
        )
    });
    ok(&output);
    assert_eq!(dims(&path.join("turns/turn-01.png")), (200, 100));
    assert_eq!(
        dims(&path.join("turns/turn-02.png")),
        (200, 100),
        "the second turn refines the first"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn errors_print_the_contract_message_and_exit_non_zero() {
    let app = TestApp::offline().await;
    let dir = tempfile::tempdir().unwrap();
    let long = "x".repeat(2150);
    let output =
        tokio::task::block_in_place(|| imagegate(&app, &["generate", &long], dir.path(), None));
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("The prompt is too long. Maximum length is 2000 characters."),
        "{stderr}"
    );
    assert!(stderr.contains("invalid_request"), "{stderr}");

    let unreachable = Command::new(env!("CARGO_BIN_EXE_imagegate"))
        .args(["generate", "a cat", "--url", "http://127.0.0.1:9"])
        .output()
        .unwrap();
    assert!(!unreachable.status.success());
    assert!(String::from_utf8_lossy(&unreachable.stderr).contains("cannot reach"));
}

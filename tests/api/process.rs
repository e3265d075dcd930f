//! The binary as an operator runs it: configuration from `.env`, the start-up summary
//! with secrets redacted, and a graceful stop on SIGTERM.

use std::time::Duration;

use tokio::process::Command;

use crate::support::process;

const SECRET: &str = "AIza-test-secret-0123456789";

#[tokio::test]
async fn serve_prints_a_redacted_summary_and_stops_cleanly_on_sigterm() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let data = tempfile::tempdir().unwrap();
    let mut command = process::serve(data.path());
    command
        .args(["--provider", "offline"])
        .env("GOOGLE_API_KEY", SECRET);
    let (mut child, base, fields, log) = process::start_logged(&mut command).await;
    assert_eq!(fields["provider"], "offline");
    assert_eq!(fields["google_api_key"], "configured (redacted)");
    assert!(
        fields["models"]
            .as_str()
            .unwrap()
            .contains("gemini-3.1-flash-image")
    );
    let health = reqwest::get(format!("{base}/health")).await.unwrap();
    assert_eq!(health.status(), 200);

    let pid = child.id().unwrap().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .expect("it stops")
        .unwrap();
    assert!(status.success(), "exit status {status}");
    let all = log.until_closed().await.join("\n");
    assert!(all.contains("shutdown signal received"), "{all}");
    assert!(
        all.contains("no real model is called"),
        "the offline provider says what it is"
    );
    assert!(!all.contains(SECRET), "the key never reaches a log line");
}

#[tokio::test]
async fn configuration_comes_from_the_env_file_under_the_real_environment() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join(".env"),
        format!("GOOGLE_API_KEY={SECRET}\nIMAGEGATE_PORT=9123\nIMAGEGATE_HOST=10.1.1.1\n"),
    )
    .unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_imagegate"))
        .args(["config", "--host", "127.0.0.2"])
        .current_dir(dir.path())
        .env_remove("GOOGLE_API_KEY")
        .env_remove("GEMINI_API_KEY")
        .env("IMAGEGATE_PORT", "9124")
        .output()
        .await
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let printed = String::from_utf8_lossy(&output.stdout);
    assert!(
        printed.contains("port = 9124  # environment"),
        "the real environment beats .env: {printed}"
    );
    assert!(
        printed.contains("host = \"127.0.0.2\"  # command line"),
        "flags beat both: {printed}"
    );
    assert!(
        printed.contains("Effective provider: Gemini"),
        "the key in .env selects gemini: {printed}"
    );
    assert!(!printed.contains(SECRET), "redacted: {printed}");
}

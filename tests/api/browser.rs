//! The playground in a real browser: `tests/browser` (playwright-core driving Debian's
//! headless Chromium) run against the binary this test build produced.

use std::path::Path;
use std::process::Command;

#[ignore = "needs Chromium and tests/browser/node_modules (apt-get install chromium; cd tests/browser && npm ci)"]
#[test]
fn the_playground_works_in_headless_chromium() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    let ready = dir.join("node_modules/playwright-core").exists()
        && Path::new("/usr/bin/chromium").exists()
        && Command::new("node")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success());
    assert!(
        ready,
        "this test needs Debian's Chromium, node and tests/browser/node_modules \
         (apt-get install chromium; cd tests/browser && npm ci)"
    );
    let output = Command::new("npm")
        .arg("test")
        .current_dir(&dir)
        .env("IMAGEGATE_BIN", env!("CARGO_BIN_EXE_imagegate"))
        .output()
        .expect("npm runs");
    assert!(
        output.status.success(),
        "browser test failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

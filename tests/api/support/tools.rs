//! Tools some tests drive: python3 with `tests/requirements.txt` (the official SDKs, the
//! guide's samples, NumPy, moto) and Debian's Chromium. A test that needs one is marked
//! `#[ignore = "needs …"]`, so a plain `cargo test` lists it as ignored with the reason;
//! asked to run (`--include-ignored`, as `.ci/run` does) without the tool, it fails with
//! what is missing — never a silent pass.

use std::process::Command;

/// Fails the test unless `python3` imports every module in `modules` (comma-separated).
pub fn require_python(modules: &str) {
    let probe = Command::new("python3")
        .args(["-c", &format!("import {modules}")])
        .output();
    match probe {
        Ok(out) if out.status.success() => {}
        Ok(out) => panic!(
            "this test needs python3 with {modules}: `python3 -m pip install -r tests/requirements.txt`\n{}",
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(error) => panic!("this test needs python3, which could not be run: {error}"),
    }
}

//! Keys, tiers, limits, idempotent replays and usage (docs/api.md#keys-and-limits,
//! docs/api.md#usage), with time
//! injected through a manual clock: no test waits for a minute to pass.

mod auth;
mod idempotency;
mod limits;
mod usage;

use std::sync::Arc;

use imagegate::clock::ManualClock;
use imagegate::config::{Config, ProviderChoice};

use crate::support::TestApp;
use crate::support::fake_gemini::FakeGemini;

/// An offline server whose clock moves only when the test moves it.
pub async fn offline_at(clock: &ManualClock, configure: impl FnOnce(&mut Config)) -> TestApp {
    TestApp::spawn_full(tempfile::tempdir().unwrap(), Arc::new(clock.clone()), |c| {
        c.provider = ProviderChoice::Offline;
        configure(c);
    })
    .await
}

/// The Gemini provider pointed at `fake`, with a manual clock and a deadline long
/// enough for the slow scenarios used here.
pub async fn gemini_at(clock: &ManualClock, fake: &FakeGemini) -> TestApp {
    let gemini = crate::support::on_gemini(fake, 20.0);
    TestApp::spawn_full(
        tempfile::tempdir().unwrap(),
        Arc::new(clock.clone()),
        move |c| {
            gemini(c);
            c.gemini.initial_backoff_ms = 10;
            c.gemini.max_backoff_ms = 40;
        },
    )
    .await
}

pub fn header<'a>(response: &'a reqwest::Response, name: &str) -> &'a str {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_else(|| panic!("{name} header in {:?}", response.headers()))
}

//! `[batches]`: how batches are submitted, watched and bounded (docs/batches.md).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct BatchesConfig {
    /// Batch workers of this instance (0: accept batches, let other instances run them).
    pub workers: usize,
    /// A worker holds a batch this long for one step (submit, poll, or collect); a dead
    /// worker's batch is taken up again after it.
    pub lease_secs: f64,
    /// First wait between polls of a running batch; it doubles up to `poll_max_ms`.
    pub poll_initial_ms: u64,
    pub poll_max_ms: u64,
    /// Requests whose JSON is larger go upstream as a JSONL file through the Files API
    /// (Google's inline limit is 20 MB).
    pub inline_limit_bytes: usize,
    /// Items in one submission.
    pub max_items: usize,
    /// A JSONL upload (`Content-Type: application/jsonl`) larger than this is refused.
    pub max_upload_bytes: usize,
    /// Items not yet finished per key, by tier: Google's batch quota is separate from the
    /// per-minute one, so batches are bounded by this instead of the minute window.
    pub max_pending_items: BTreeMap<String, u64>,
    /// How long the offline provider takes to "run" a batch (half pending, half running).
    pub offline_delay_ms: u64,
    /// The signing secret (`whsec_…`) of the Gemini API webhook that posts
    /// `batch.succeeded|failed|expired` to `/gemini/batch-events`; unset: polling only.
    pub google_webhook_secret: Option<String>,
}

impl Default for BatchesConfig {
    fn default() -> Self {
        Self {
            workers: 1,
            lease_secs: 300.0,
            poll_initial_ms: 10_000,
            poll_max_ms: 300_000,
            inline_limit_bytes: 20_000_000,
            max_items: 1_000,
            max_upload_bytes: 64 << 20,
            max_pending_items: BTreeMap::from([
                ("free".to_owned(), 100),
                ("paid".to_owned(), 5_000),
            ]),
            offline_delay_ms: 3_000,
            google_webhook_secret: None,
        }
    }
}

impl BatchesConfig {
    pub fn lease(&self) -> Duration {
        Duration::from_secs_f64(self.lease_secs.max(0.01))
    }

    /// How long after the `polls`-th poll the next one is due.
    pub fn poll_after(&self, polls: i64) -> Duration {
        let factor = 1u64 << polls.clamp(0, 20);
        Duration::from_millis(
            self.poll_initial_ms
                .saturating_mul(factor)
                .min(self.poll_max_ms.max(self.poll_initial_ms)),
        )
    }

    /// A tier not listed gets the smallest cap listed (never an unbounded one).
    pub fn max_pending(&self, tier: &str) -> u64 {
        self.max_pending_items
            .get(tier)
            .copied()
            .or_else(|| self.max_pending_items.values().min().copied())
            .unwrap_or(0)
    }
}

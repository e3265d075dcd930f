//! The heartbeat that keeps a worker's lease on a batch while one step runs: without it a
//! step longer than `batches.lease_secs` (collecting thousands of images) would let a
//! second worker claim the batch and collect it in parallel, storing images and usage
//! twice. Renewals are fenced by the attempt number, as every write of the step is.

use std::time::Duration;

use super::Batches;
use crate::store::batches::BatchRecord;

impl Batches {
    /// Renews `b`'s lease every third of its length; resolves only once the lease is
    /// lost (taken over, or renewals failing until too little of it is left), and the
    /// step must then stop.
    pub(super) async fn keep_lease(&self, b: &BatchRecord, mut held_until_ms: i64) {
        let length = self.config.lease();
        let lease_ms = length.as_millis() as i64;
        // A quarter of the lease is kept in hand for clocks of other instances running a
        // little ahead, and for the step to be dropped before anyone can claim.
        let margin_ms = lease_ms / 4;
        let retry = (length / 12).max(Duration::from_millis(10));
        let mut wait = length / 3;
        loop {
            tokio::time::sleep(wait).await;
            let now = self.clock.now_ms();
            let left_ms = held_until_ms - margin_ms - now;
            if left_ms <= 0 {
                return;
            }
            let until = now + lease_ms;
            let renewal = self.store.renew(&b.id, b.attempts, until);
            match tokio::time::timeout(Duration::from_millis(left_ms as u64), renewal).await {
                Ok(Ok(true)) => {
                    held_until_ms = until;
                    wait = length / 3;
                }
                Ok(Ok(false)) => return,
                Ok(Err(e)) => {
                    tracing::warn!(batch_id = %b.id, error = %e, "batch lease renewal failed; retrying");
                    wait = retry;
                }
                // Hung past the margin: the next turn gives up.
                Err(_) => wait = Duration::ZERO,
            }
        }
    }
}

//! The process-wide budget for decoded pixels: every request that decodes images takes
//! its estimated share before decoding and holds it until its work ends (a masked edit
//! keeps its decoded original until the model's images are composited). Heavy requests
//! wait for each other instead of exhausting memory; one that waits past the deadline is
//! answered 503 with `Retry-After`.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::generation::GenerationError;

/// The budget is counted in KiB, so a u32 of permits covers any machine.
const UNIT: u64 = 1024;

#[derive(Clone)]
pub struct PixelBudget {
    permits: Arc<Semaphore>,
    total_units: u32,
    wait: Duration,
}

/// A share of the budget; dropping it gives it back.
pub struct PixelPermit {
    held: Option<OwnedSemaphorePermit>,
}

impl PixelPermit {
    /// The bytes of the budget this share holds.
    pub fn bytes(&self) -> u64 {
        self.held
            .as_ref()
            .map_or(0, |p| p.num_permits() as u64 * UNIT)
    }
}

impl PixelBudget {
    pub fn new(max_bytes: u64, wait: Duration) -> Self {
        let total_units = u32::try_from(max_bytes / UNIT).unwrap_or(u32::MAX).max(1);
        Self {
            permits: Arc::new(Semaphore::new(total_units as usize)),
            total_units,
            wait,
        }
    }

    /// Waits for `bytes` of decoded-pixel memory. A request larger than the whole budget
    /// takes all of it (and so runs alone) rather than never running.
    pub async fn take(&self, bytes: u64) -> Result<PixelPermit, GenerationError> {
        self.take_beside(bytes, 0).await
    }

    /// As [`PixelBudget::take`], for work that already holds `held` bytes of the budget:
    /// it is never asked for more than the rest, so it cannot wait on itself.
    pub async fn take_beside(&self, bytes: u64, held: u64) -> Result<PixelPermit, GenerationError> {
        let held_units = u32::try_from(held.div_ceil(UNIT)).unwrap_or(u32::MAX);
        let units = u32::try_from(bytes.div_ceil(UNIT))
            .unwrap_or(u32::MAX)
            .min(self.total_units.saturating_sub(held_units));
        if units == 0 {
            return Ok(PixelPermit { held: None });
        }
        let acquire = Arc::clone(&self.permits).acquire_many_owned(units);
        match tokio::time::timeout(self.wait, acquire).await {
            Ok(Ok(permit)) => Ok(PixelPermit { held: Some(permit) }),
            Ok(Err(closed)) => Err(GenerationError::internal("the pixel budget").caused_by(closed)),
            Err(_) => Err(GenerationError::Busy {
                retry_after_secs: self.wait.as_secs().clamp(1, 30),
            }),
        }
    }

    /// Bytes of the budget free right now (for tests and metrics).
    pub fn available_bytes(&self) -> u64 {
        self.permits.available_permits() as u64 * UNIT
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn heavy_requests_wait_for_each_other_and_time_out_with_503() {
        let budget = PixelBudget::new(10 * UNIT, Duration::from_millis(50));
        let first = budget.take(8 * UNIT).await.unwrap();
        let refused = budget.take(8 * UNIT).await.err().unwrap();
        assert!(matches!(
            refused,
            GenerationError::Busy {
                retry_after_secs: 1..
            }
        ));
        drop(first);
        assert!(
            budget.take(8 * UNIT).await.is_ok(),
            "freed when the first ended"
        );
        assert!(
            budget.take(100 * UNIT).await.is_ok(),
            "one request larger than the budget runs alone"
        );
    }
}

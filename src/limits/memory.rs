//! Counters of one instance, in memory. A restart forgets them, which errs on the
//! side of the client; several instances need the shared (Redis) implementation.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use super::{ConcurrencyLimiter, ConcurrencyPermit, RateDecision, RateLimiter};

const WINDOW_MS: i64 = 60_000;

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // No critical section below can panic half-way through an update.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A sliding log of the last minute's requests per key: exact ("at most N in any 60
/// seconds", as the guide states its limits), and small (at most N timestamps per key).
#[derive(Default)]
pub struct SlidingWindow {
    logs: Mutex<HashMap<String, VecDeque<i64>>>,
}

impl SlidingWindow {
    /// Counts `cost` entries if they all fit; `cost` 0 only looks.
    fn decide(&self, key_id: &str, limit: u32, now_ms: i64, cost: u32) -> RateDecision {
        let mut logs = lock(&self.logs);
        let log = logs.entry(key_id.to_owned()).or_default();
        while log.front().is_some_and(|&t| t + WINDOW_MS <= now_ms) {
            log.pop_front();
        }
        let cap = usize::try_from(limit).unwrap_or(usize::MAX);
        let needed = usize::try_from(cost.max(1)).unwrap_or(usize::MAX);
        let allowed = log.len().saturating_add(needed) <= cap;
        if allowed {
            log.extend(std::iter::repeat_n(now_ms, cost as usize));
        }
        let decision = RateDecision {
            allowed,
            limit,
            remaining: u32::try_from(cap.saturating_sub(log.len())).unwrap_or(u32::MAX),
            reset_after_ms: log.front().map_or(0, |&t| t + WINDOW_MS - now_ms),
        };
        if log.is_empty() {
            logs.remove(key_id);
        }
        decision
    }
}

#[async_trait::async_trait]
impl RateLimiter for SlidingWindow {
    async fn acquire_n(
        &self,
        key_id: &str,
        per_minute: u32,
        now_ms: i64,
        cost: u32,
    ) -> RateDecision {
        self.decide(key_id, per_minute, now_ms, cost)
    }

    async fn peek(&self, key_id: &str, per_minute: u32, now_ms: i64) -> RateDecision {
        self.decide(key_id, per_minute, now_ms, 0)
    }
}

/// Requests in flight per key.
#[derive(Default)]
pub struct InFlight {
    counts: Arc<Mutex<HashMap<String, u32>>>,
}

#[async_trait::async_trait]
impl ConcurrencyLimiter for InFlight {
    async fn try_acquire(&self, key_id: &str, max: u32) -> Option<ConcurrencyPermit> {
        {
            let mut counts = lock(&self.counts);
            let count = counts.entry(key_id.to_owned()).or_insert(0);
            if *count >= max {
                return None;
            }
            *count += 1;
        }
        let counts = Arc::clone(&self.counts);
        let key_id = key_id.to_owned();
        Some(ConcurrencyPermit::new(move || {
            let mut counts = lock(&counts);
            if let Some(count) = counts.get_mut(&key_id) {
                *count = count.saturating_sub(1);
                if *count == 0 {
                    counts.remove(&key_id);
                }
            }
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_window_slides_one_request_at_a_time() {
        let window = SlidingWindow::default();
        let t0 = 1_000_000;
        assert_eq!(window.acquire("k", 2, t0).await.remaining, 1);
        let second = window.acquire("k", 2, t0 + 10_000).await;
        assert_eq!((second.allowed, second.remaining), (true, 0));
        let refused = window.acquire("k", 2, t0 + 20_000).await;
        assert!(!refused.allowed);
        assert_eq!(
            refused.reset_after_ms, 40_000,
            "the first request leaves at t0 + 60 s"
        );
        assert_eq!(refused.reset_after_secs(), 40);
        assert!(
            window.acquire("k", 2, t0 + 60_000).await.allowed,
            "one slot came back"
        );
        assert!(!window.acquire("k", 2, t0 + 60_001).await.allowed);
        assert!(
            window.acquire("other", 2, t0).await.allowed,
            "keys do not share a window"
        );
    }

    #[tokio::test]
    async fn a_charge_that_does_not_fit_counts_nothing() {
        let window = SlidingWindow::default();
        let t0 = 1_000_000;
        assert_eq!(window.acquire_n("k", 5, t0, 4).await.remaining, 1);
        let refused = window.acquire_n("k", 5, t0, 2).await;
        assert!(!refused.allowed);
        assert_eq!(
            refused.remaining, 1,
            "nothing of the refused charge counted"
        );
        assert!(window.acquire_n("k", 5, t0, 1).await.allowed);
    }

    #[tokio::test]
    async fn a_permit_frees_its_slot_when_dropped() {
        let in_flight = InFlight::default();
        let a = in_flight.try_acquire("k", 2).await;
        let b = in_flight.try_acquire("k", 2).await;
        assert!(a.is_some() && b.is_some());
        assert!(in_flight.try_acquire("k", 2).await.is_none());
        drop(a);
        assert!(in_flight.try_acquire("k", 2).await.is_some());
    }
}

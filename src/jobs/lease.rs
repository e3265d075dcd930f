//! Holding an async request's lease while it runs, so that it runs once.
//!
//! A renewal that fails (a busy database, a network blip) is retried; the lease is only
//! given up when too little of it is left to be sure nobody else can claim the request
//! yet, or when the request was taken over. Giving up drops the run, and with it the
//! upstream call it spawned (the run is [`Tasks::attached`]), while the lease still
//! holds: the same request is never paid for twice at once.

use std::future::Future;
use std::time::Duration;

use async_trait::async_trait;

use crate::clock::Clock;
use crate::store::StoreError;
use crate::store::requests::{RequestRecord, RequestStore};
use crate::tasks::Tasks;

/// What a lease needs of the store. A trait, so that the lease tests can make chosen
/// renewals fail (`jobs::tests`).
#[async_trait]
pub trait Renew: Send + Sync {
    /// Extends the lease of attempt `attempt` to `lease_until_ms`; `false` once another
    /// worker took the request over.
    async fn renew(&self, id: &str, attempt: i64, lease_until_ms: i64) -> Result<bool, StoreError>;
}

#[async_trait]
impl Renew for RequestStore {
    async fn renew(&self, id: &str, attempt: i64, lease_until_ms: i64) -> Result<bool, StoreError> {
        RequestStore::renew(self, id, attempt, lease_until_ms).await
    }
}

pub struct Lease<'a> {
    pub store: &'a dyn Renew,
    pub clock: &'a dyn Clock,
    pub length: Duration,
}

/// How a run under a lease ended.
#[derive(Debug, PartialEq)]
pub enum Held<T> {
    Done(T),
    /// Renewals failed for too long, or another worker took the request over.
    Lost,
    /// The drain deadline passed first: the request is to go back to the queue.
    HandedBack,
}

impl<T> Held<T> {
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Held<U> {
        match self {
            Self::Done(t) => Held::Done(f(t)),
            Self::Lost => Held::Lost,
            Self::HandedBack => Held::HandedBack,
        }
    }
}

impl Lease<'_> {
    /// Runs `run` while keeping `job`'s lease, held until `held_until_ms` so far.
    pub async fn hold<F: Future>(
        &self,
        job: &RequestRecord,
        held_until_ms: i64,
        tasks: &Tasks,
        run: F,
    ) -> Held<F::Output> {
        let (run, settled) = tasks.attached(run);
        let held = tokio::select! {
            outcome = run => Held::Done(outcome),
            () = self.keep(job, held_until_ms) => Held::Lost,
            () = tasks.abandon.cancelled() => Held::HandedBack,
        };
        // The run is dropped by now; its upstream call is aborted. Wait for that to take
        // effect, so the call has stopped before the request can be claimed again.
        settled.wait().await;
        held
    }

    /// Renews every third of the lease; resolves only once the lease is lost.
    async fn keep(&self, job: &RequestRecord, mut held_until_ms: i64) {
        let lease_ms = self.length.as_millis() as i64;
        // A quarter of the lease is kept in hand: time for the cancellation to reach the
        // upstream connection, and for clocks of other instances running a little ahead.
        let margin_ms = lease_ms / 4;
        let retry = (self.length / 12).max(Duration::from_millis(10));
        let mut wait = self.length / 3;
        loop {
            tokio::time::sleep(wait).await;
            let now = self.clock.now_ms();
            let left_ms = held_until_ms - margin_ms - now;
            if left_ms <= 0 {
                tracing::warn!(request_id = %job.id, attempt = job.attempts, "lease renewal kept failing; giving the request up");
                return;
            }
            let until = now + lease_ms;
            let renewal = self.store.renew(&job.id, job.attempts, until);
            let left = Duration::from_millis(left_ms as u64);
            match tokio::time::timeout(left, renewal).await {
                Ok(Ok(true)) => {
                    held_until_ms = until;
                    wait = self.length / 3;
                }
                Ok(Ok(false)) => {
                    tracing::warn!(request_id = %job.id, attempt = job.attempts, "request taken over by another worker");
                    return;
                }
                Ok(Err(e)) => {
                    tracing::warn!(request_id = %job.id, error = %e, "lease renewal failed; retrying");
                    wait = retry;
                }
                // Hung past the margin: the next turn gives up.
                Err(_) => wait = Duration::ZERO,
            }
        }
    }
}

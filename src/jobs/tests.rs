//! Leases held against the real SQLite store, with renewals that can be made to fail,
//! around a stand-in for the upstream call that counts its calls and notes when one is
//! canceled; a rival worker claims whenever the store lets it.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;

use super::*;
use crate::clock::SystemClock;
use crate::jobs::lease::Renew;
use crate::store::Storage;
use crate::store::StoreError;

/// Renewals through the real store, with those of attempt 1 failing as a busy database
/// would.
struct Flaky {
    inner: Arc<RequestStore>,
    /// Renewals of attempt 1 that fail before they succeed again (`usize::MAX`: never).
    failing_renewals: AtomicUsize,
    events: Events,
}

#[async_trait]
impl Renew for Flaky {
    async fn renew(&self, id: &str, attempt: i64, until: i64) -> Result<bool, StoreError> {
        if attempt == 1
            && self
                .failing_renewals
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                    (n > 0).then(|| if n == usize::MAX { n } else { n - 1 })
                })
                .is_ok()
        {
            note(&self.events, format!("renewal failed {attempt}"));
            return Err(StoreError::Query(sqlx::Error::Protocol(
                "database is locked".into(),
            )));
        }
        self.inner.renew(id, attempt, until).await
    }
}

fn note(events: &Events, event: String) {
    events.lock().unwrap().push(event);
}

type Events = Arc<Mutex<Vec<String>>>;

struct Canceled(Option<(usize, Events)>);

impl Drop for Canceled {
    fn drop(&mut self) {
        if let Some((call, events)) = self.0.take() {
            events.lock().unwrap().push(format!("call {call} canceled"));
        }
    }
}

struct Bench {
    store: Arc<RequestStore>,
    renewals: Flaky,
    calls: Arc<AtomicUsize>,
    events: Events,
    lease: Duration,
    _dir: tempfile::TempDir,
}

const OWNER: &str = "key_test";

async fn bench(lease_secs: f64, failing_renewals: usize) -> Bench {
    let dir = tempfile::tempdir().unwrap();
    let config = crate::config::Config {
        data_dir: dir.path().to_owned(),
        ..Default::default()
    };
    let storage = Storage::open(&config).await.unwrap();
    let events = Arc::new(Mutex::new(Vec::new()));
    let renewals = Flaky {
        inner: storage.requests.clone(),
        failing_renewals: AtomicUsize::new(failing_renewals),
        events: events.clone(),
    };
    Bench {
        store: storage.requests,
        renewals,
        calls: Arc::new(AtomicUsize::new(0)),
        events,
        lease: Duration::from_secs_f64(lease_secs),
        _dir: dir,
    }
}

impl Bench {
    async fn submit(&self) -> String {
        let id = ids::new_id("req");
        self.store
            .insert(&RequestRecord {
                id: id.clone(),
                owner: OWNER.into(),
                tier: "paid".into(),
                path: "/generate-image".into(),
                content_type: WORK_CONTENT_TYPE.into(),
                body_ref: id.clone(),
                webhook_url: None,
                status: "queued".into(),
                attempts: 0,
                result: None,
                error: None,
                created_at_ms: SystemClock.now_ms(),
                finished_at_ms: None,
            })
            .await
            .unwrap();
        id
    }

    async fn claim(&self) -> Option<(RequestRecord, i64)> {
        let now = SystemClock.now_ms();
        let lease_ms = self.lease.as_millis() as i64;
        let job = self.store.claim(now, lease_ms).await.unwrap()?;
        note(&self.events, format!("claimed {}", job.attempts));
        Some((job, now + lease_ms))
    }

    /// The stand-in for an upstream call, spawned as the generation pipeline spawns its
    /// call: the first takes `first`, later ones 50 ms.
    async fn call(&self, first: Duration) -> usize {
        let call = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        self.events
            .lock()
            .unwrap()
            .push(format!("call {call} started"));
        let took = if call == 1 {
            first
        } else {
            Duration::from_millis(50)
        };
        let events = self.events.clone();
        crate::tasks::spawn(async move {
            let mut canceled = Canceled(Some((call, events)));
            tokio::time::sleep(took).await;
            canceled.0 = None;
        })
        .await
        .unwrap();
        call
    }

    /// Claims, runs the call under the lease and records the outcome as a worker does.
    async fn work(&self, tasks: &Tasks, first: Duration) -> Option<Held<usize>> {
        let (job, held_until) = self.claim().await?;
        let lease = Lease {
            store: &self.renewals,
            clock: &SystemClock,
            length: self.lease,
        };
        let held = lease.hold(&job, held_until, tasks, self.call(first)).await;
        if let Held::Done(call) = held {
            let result = json!({ "call": call }).to_string();
            let now = SystemClock.now_ms();
            let recorded = self
                .store
                .finish(
                    &job.id,
                    job.attempts,
                    "succeeded",
                    Some(&result),
                    None,
                    now,
                    None,
                )
                .await
                .unwrap();
            note(
                &self.events,
                format!("finished {} succeeded recorded={recorded}", job.attempts),
            );
        }
        Some(held)
    }

    async fn record(&self, id: &str) -> RequestRecord {
        self.store.get(id, OWNER).await.unwrap().unwrap()
    }

    fn events(&self) -> Vec<String> {
        self.events.lock().unwrap().clone()
    }
}

#[tokio::test]
async fn failed_renewals_are_retried_and_the_request_runs_once() {
    // The call takes two and a half leases; the first two renewals fail.
    let bench = bench(2.0, 2).await;
    let id = bench.submit().await;
    let tasks = Tasks::new();
    let first = bench.work(&tasks, Duration::from_secs(5));
    tokio::pin!(first);
    // A rival worker tries to claim every 50 ms meanwhile.
    let held = loop {
        tokio::select! {
            held = &mut first => break held,
            () = tokio::time::sleep(Duration::from_millis(50)) => {
                assert!(bench.claim().await.is_none(), "{:?}", bench.events());
            }
        }
    };
    assert_eq!(held, Some(Held::Done(1)));
    let record = bench.record(&id).await;
    assert_eq!((record.status.as_str(), record.attempts), ("succeeded", 1));
    assert_eq!(bench.calls.load(Ordering::SeqCst), 1, "one upstream call");
    let events = bench.events();
    let failed = events.iter().filter(|e| e.starts_with("renewal failed"));
    assert_eq!(failed.count(), 2, "{events:?}");
    let outcomes: Vec<_> = events
        .iter()
        .filter(|e| e.starts_with("finished"))
        .collect();
    assert_eq!(
        outcomes,
        ["finished 1 succeeded recorded=true"],
        "one outcome"
    );
}

#[tokio::test]
async fn a_worker_that_loses_its_lease_cancels_its_call_before_another_claims() {
    // Renewals of the first attempt never succeed; its call would take a minute.
    let bench = bench(1.0, usize::MAX).await;
    let id = bench.submit().await;
    let held = tokio::time::timeout(
        Duration::from_secs(30),
        bench.work(&Tasks::new(), Duration::from_secs(60)),
    )
    .await
    .expect("the lost lease ended the run");
    assert_eq!(held, Some(Held::Lost));
    // Another worker takes the request once the lease has expired, and finishes it.
    let mut second = None;
    for _ in 0..600 {
        second = bench.work(&Tasks::new(), Duration::ZERO).await;
        if second.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(second, Some(Held::Done(2)));
    let events = bench.events();
    let at = |wanted: &str| {
        events
            .iter()
            .position(|e| e == wanted)
            .unwrap_or_else(|| panic!("{wanted} in {events:?}"))
    };
    assert!(
        at("call 1 canceled") < at("claimed 2"),
        "canceled before the next claim: {events:?}"
    );
    let outcomes: Vec<_> = events
        .iter()
        .filter(|e| e.starts_with("finished"))
        .collect();
    assert_eq!(
        outcomes,
        ["finished 2 succeeded recorded=true"],
        "one outcome"
    );
    let record = bench.record(&id).await;
    assert_eq!((record.status.as_str(), record.attempts), ("succeeded", 2));
}

#[tokio::test]
async fn at_the_drain_deadline_a_running_request_is_canceled_and_handed_back() {
    let bench = bench(30.0, 0).await;
    let id = bench.submit().await;
    let tasks = Tasks::new();
    let abandon = tasks.abandon.clone();
    let (held, ()) = tokio::join!(bench.work(&tasks, Duration::from_secs(60)), async {
        while bench.calls.load(Ordering::SeqCst) == 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        abandon.cancel();
    });
    assert_eq!(held, Some(Held::HandedBack));
    assert!(bench.events().contains(&"call 1 canceled".to_owned()));
    assert!(bench.store.release(&id, 1).await.unwrap());
    let record = bench.record(&id).await;
    assert_eq!((record.status.as_str(), record.attempts), ("queued", 0));
    // Taken up again as if new, by this or another instance.
    assert_eq!(
        bench.work(&Tasks::new(), Duration::ZERO).await,
        Some(Held::Done(2))
    );
    assert_eq!(bench.record(&id).await.attempts, 1);
}

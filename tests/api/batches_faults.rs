//! Batches under faults (docs/batches.md, "How it runs"): a worker that dies after Google
//! accepted its batch and before it recorded the name does not pay for a second copy; an
//! offline batch running at a restart is run again, not failed; a collection longer than
//! the lease keeps its lease.

use std::sync::Arc;
use std::time::Duration;

use imagegate::clock::ManualClock;
use imagegate::config::{Config, ProviderChoice};
use serde_json::{Value, json};

use crate::batches::{batch, batching, drive, submit};
use crate::support::fake_gemini::FakeGemini;
use crate::support::{TestApp, json_of};

/// Runs the worker step by step, moving `clock` past each poll's backoff, until the batch
/// has ended.
async fn drive_manual(app: &TestApp, clock: &ManualClock, id: &str) -> Value {
    for _ in 0..200 {
        clock.advance_ms(10);
        app.batches.run_once().await.expect("a worker step");
        let body = batch(app, id, "").await;
        if !body["finished_at"].is_null() {
            return body;
        }
    }
    panic!("batch {id} never ended");
}

/// The display names of the batches the fake accepted that carry `id`.
fn creates_named(fake: &FakeGemini, id: &str) -> Vec<String> {
    fake.batch_display_names()
        .into_iter()
        .filter(|name| name.contains(id))
        .collect()
}

#[tokio::test]
async fn a_batch_google_accepted_before_a_crash_is_adopted_not_created_again() {
    let fake = FakeGemini::start().await;
    // One batch a page: finding the batch means following nextPageToken.
    fake.batch_list_page_cap(1);
    let clock = ManualClock::starting_now();
    let app = TestApp::spawn_full(
        tempfile::tempdir().unwrap(),
        Arc::new(clock.clone()),
        batching(&fake),
    )
    .await;
    // Someone else's batches upstream, before and after ours.
    let before = submit(&app, json!({"items": [{"prompt": "before"}]})).await;
    assert!(app.batches.run_once().await.unwrap());

    let id = submit(
        &app,
        json!({"items": [{"prompt": "a"}, {"prompt": "b"}], "display_name": "catalogue"}),
    )
    .await;
    fake.hold_batch_creates(Duration::from_secs(30));
    // The worker dies once Google has the batch and before it hears its name.
    tokio::select! {
        stepped = app.batches.run_once() => panic!("the create was answered: {stepped:?}"),
        () = fake.held_batch_created() => {}
    }
    assert_eq!(fake.batch_counts().0, 2, "Google accepted our batch");
    assert_eq!(
        batch(&app, &id, "").await["state"],
        "queued",
        "its name was never recorded"
    );
    fake.hold_batch_creates(Duration::ZERO);
    let after = submit(&app, json!({"items": [{"prompt": "after"}]})).await;
    clock.advance_ms(1);
    assert!(app.batches.run_once().await.unwrap());
    assert_eq!(fake.batch_counts().0, 3);

    // The lease of the dead worker runs out; the next worker takes the batch over.
    clock.advance_ms(app.config.batches.lease().as_millis() as i64 + 1);
    let done = drive_manual(&app, &clock, &id).await;
    assert_eq!(done["state"], "succeeded", "{done}");
    assert_eq!(done["counts"]["succeeded"], 2, "{done}");
    assert_eq!(fake.batch_counts().0, 3, "no second copy was created");
    assert_eq!(
        creates_named(&fake, &id),
        [format!("catalogue [{id}]")],
        "one create, under a name unique to the batch"
    );
    let lists: Vec<String> = fake
        .list_requests()
        .into_iter()
        .filter(|r| r.path.ends_with("/batches"))
        .map(|r| r.query)
        .collect();
    assert!(
        lists.iter().any(|q| q == "pageSize=100")
            && lists
                .iter()
                .any(|q| q.starts_with("pageSize=100&pageToken=")),
        "listed page by page as google-genai's pager does: {lists:?}"
    );
    for other in [before, after] {
        let done = drive_manual(&app, &clock, &other).await;
        assert_eq!(done["state"], "succeeded", "{done}");
    }
    assert_eq!(fake.batch_counts().0, 3);
}

#[tokio::test]
async fn a_batch_never_accepted_upstream_is_created_on_takeover() {
    let fake = FakeGemini::start().await;
    let clock = ManualClock::starting_now();
    let app = TestApp::spawn_full(
        tempfile::tempdir().unwrap(),
        Arc::new(clock.clone()),
        batching(&fake),
    )
    .await;
    // The upstream refuses the create (503): nothing was accepted, the step fails, and the
    // next attempt looks for the batch, finds none, and creates it.
    fake.fail_batch_creates(1);
    let id = submit(&app, json!({"items": [{"prompt": "a"}]})).await;
    let done = drive_manual(&app, &clock, &id).await;
    assert_eq!(done["state"], "succeeded", "{done}");
    assert_eq!(creates_named(&fake, &id).len(), 1);
    assert!(
        fake.list_requests()
            .iter()
            .any(|r| r.path.ends_with("/batches")),
        "the takeover looked for it first"
    );
}

#[tokio::test]
async fn an_offline_batch_running_at_a_restart_is_run_again_not_failed() {
    let configure = |c: &mut Config| {
        c.provider = ProviderChoice::Offline;
        c.batches.workers = 0;
        c.batches.poll_initial_ms = 1;
        c.batches.poll_max_ms = 5;
        c.batches.offline_delay_ms = 50;
    };
    let app = TestApp::spawn(configure).await;
    let id = submit(
        &app,
        json!({"items": [{"prompt": "a lighthouse"}, {"prompt": "a boat"}]}),
    )
    .await;
    assert!(app.batches.run_once().await.unwrap());
    assert_eq!(batch(&app, &id, "").await["state"], "running");

    let app = app.restart(configure).await;
    let done = drive(&app, &id).await;
    assert_eq!(done["state"], "succeeded", "{done}");
    assert_eq!(done["counts"]["succeeded"], 2, "{done}");
    let response = app.get(&format!("/batches/{id}/results")).await;
    let text = response.text().await.unwrap();
    for line in text.lines() {
        let line: Value = serde_json::from_str(line).unwrap();
        let image = line["image_ids"][0].as_str().unwrap();
        assert_eq!(app.get(&format!("/images/{image}")).await.status(), 200);
    }

    // Cancelled while forgotten: it ends cancelled instead of running again.
    let cancelled = submit(&app, json!({"items": [{"prompt": "a tree"}]})).await;
    assert!(app.batches.run_once().await.unwrap());
    let app = app.restart(configure).await;
    let (status, _, _) = json_of(
        app.post_json(&format!("/batches/{cancelled}/cancel"), json!({}))
            .await,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(drive(&app, &cancelled).await["state"], "cancelled");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collection_longer_than_the_lease_keeps_its_lease_and_collects_once() {
    let fake = FakeGemini::start().await;
    let app = TestApp::spawn(|c| {
        batching(&fake)(c);
        // Long enough that a loaded machine's scheduling hiccup does not lose it.
        c.batches.lease_secs = 1.0;
    })
    .await;
    fake.batch_polls_to_finish(1);
    // Reading the ended batch, then its results, takes two leases each.
    fake.slow_ended_batches(Duration::from_millis(2_000));
    let id = submit(&app, json!({"items": [{"prompt": "a"}, {"prompt": "b"}]})).await;
    assert!(app.batches.run_once().await.unwrap(), "submitted upstream");
    assert_eq!(batch(&app, &id, "").await["state"], "running");

    let collecting = app.batches.run_once();
    tokio::pin!(collecting);
    // A rival worker tries to claim every 50 ms while the collection runs.
    let mut rival_tries = 0;
    let stepped = loop {
        tokio::select! {
            stepped = &mut collecting => break stepped,
            () = tokio::time::sleep(Duration::from_millis(50)) => {
                rival_tries += 1;
                assert!(
                    !app.batches.run_once().await.unwrap(),
                    "a rival claimed the batch while it was being collected"
                );
            }
        }
    };
    assert!(stepped.unwrap());
    assert!(rival_tries > 0, "the rival tried while the collection ran");
    let done = batch(&app, &id, "").await;
    assert_eq!(
        done["state"], "succeeded",
        "collected by that one step: {done}"
    );
    let (_, _, usage) = json_of(app.get("/usage?days=1").await).await;
    let row = usage["days"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["rate"] == "batch")
        .cloned()
        .unwrap_or_else(|| panic!("{usage}"));
    assert_eq!(row["requests"], 2, "each item kept once: {usage}");
}

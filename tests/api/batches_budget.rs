//! Batches and team keys (docs/batches.md, docs/keys.md): each item is held to the key's
//! model scope at submission, the items' worst case at the batch price is reserved against
//! the key's budget before anything goes upstream and settled to the real cost when the
//! batch ends (given back for items that never ran), on SQLite and PostgreSQL; the
//! per-tier cap on items pending holds for two instances inserting at once.

use std::time::Duration;

use imagegate::config::{Config, Secret};
use imagegate::store::Db;
use imagegate::store::batches::{BatchRecord, BatchStore, Inserted};
use serde_json::{Value, json};

use crate::batches::drive_as;
use crate::support::fake_gemini::FakeGemini;
use crate::support::services::PgSchema;
use crate::support::{TestApp, client_with_key, expect_error, json_of};

use crate::support::ADMIN_TOKEN as ADMIN;

/// Pro at 4K costs exactly $0.04 at the standard price here (2000 image tokens at $20 per
/// million, input and text free), so $0.02 an item at the batch price, worst case and real
/// alike.
fn configure(fake: &FakeGemini) -> impl Fn(&mut Config) + Clone {
    let batching = crate::batches::batching(fake);
    move |c: &mut Config| {
        batching(c);
        c.auth.admin_token = Some(Secret::new(ADMIN));
        crate::support::price(c, "gemini-3-pro-image", "4K", 2000, 0.0);
    }
}

async fn create_key(app: &TestApp, body: Value) -> reqwest::Client {
    let created = crate::support::admin_create_key(app, &body).await;
    client_with_key(created["key"].as_str())
}

fn pro_items(prompts: &[&str]) -> Value {
    let items: Vec<Value> = prompts
        .iter()
        .map(|p| json!({"prompt": p, "image_size": "4K"}))
        .collect();
    json!({"items": items, "model": "gemini-3-pro-image"})
}

async fn spent(app: &TestApp, client: &reqwest::Client) -> f64 {
    let (_, _, me) = json_of(app.get_as(client, "/keys/me").await).await;
    me["budget"]["daily"]["spent_usd"]
        .as_f64()
        .unwrap_or_else(|| panic!("{me}"))
}

fn creates(fake: &FakeGemini) -> usize {
    fake.batch_counts().0 as usize
}

/// The whole story on one backend: refusals before upstream, the reservation held while
/// the batch is open, given back on cancel, settled to the real cost at the end.
async fn budget_story(app: &TestApp, fake: &FakeGemini) {
    // Scope: a key for flash only may not batch Pro; the item is named, nothing is stored.
    let flash_only = create_key(
        app,
        json!({"tier": "paid", "models": ["gemini-3.1-flash-image"]}),
    )
    .await;
    let error = expect_error(
        app.post_json_as(&flash_only, "/batches", pro_items(&["a", "b"]))
            .await,
        403,
        "forbidden",
    )
    .await;
    assert_eq!(error["details"]["item"], 0, "{error}");
    assert_eq!(error["details"]["model"], "gemini-3-pro-image", "{error}");

    let client = create_key(app, json!({"tier": "paid", "daily_budget_usd": 0.10})).await;
    // Six items at $0.02 do not fit $0.10: refused whole, before anything is stored.
    let six = pro_items(&["1", "2", "3", "4", "5", "6"]);
    let error = expect_error(
        app.post_json_as(&client, "/batches", six).await,
        402,
        "budget_exceeded",
    )
    .await;
    assert_eq!(error["details"]["reserved_usd"], 0.12, "{error}");
    assert_eq!(error["details"]["limit_usd"], 0.1, "{error}");
    let (_, _, listed) = json_of(app.get_as(&client, "/batches").await).await;
    assert_eq!(
        listed["batches"].as_array().unwrap().len(),
        0,
        "nothing stored"
    );
    assert_eq!(spent(app, &client).await, 0.0);

    // Three fit; their worst case is held while the batch is open.
    let body = pro_items(&["a red chair", "[[fake:image_safety]] a lamp", "a desk"]);
    let (status, _, accepted) = json_of(app.post_json_as(&client, "/batches", body).await).await;
    assert_eq!(status, 202, "{accepted}");
    let first = accepted["batch_id"].as_str().unwrap().to_owned();
    assert_eq!(spent(app, &client).await, 0.06);
    // Three more would make $0.12.
    expect_error(
        app.post_json_as(&client, "/batches", pro_items(&["x", "y", "z"]))
            .await,
        402,
        "budget_exceeded",
    )
    .await;
    // Two more fit exactly; cancelled before going upstream, they give their $0.04 back.
    let (status, _, accepted) = json_of(
        app.post_json_as(&client, "/batches", pro_items(&["x", "y"]))
            .await,
    )
    .await;
    assert_eq!(status, 202, "{accepted}");
    let second = accepted["batch_id"].as_str().unwrap().to_owned();
    assert_eq!(spent(app, &client).await, 0.1);
    let (status, _, cancelled) = json_of(
        app.post_json_as(&client, &format!("/batches/{second}/cancel"), json!({}))
            .await,
    )
    .await;
    assert_eq!(
        (status, cancelled["state"].as_str()),
        (200, Some("cancelled"))
    );
    assert_eq!(spent(app, &client).await, 0.06);
    assert_eq!(creates(fake), 0, "nothing went upstream yet");

    // The first ends: two images at $0.02 and one refusal; the reservation becomes that.
    let done = drive_as(app, &client, &first).await;
    assert_eq!(done["counts"]["succeeded"], 2, "{done}");
    assert_eq!(done["counts"]["blocked"], 1, "{done}");
    let (_, _, usage) = json_of(app.get_as(&client, "/usage?days=1").await).await;
    let cost: f64 = usage["days"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["cost_usd"].as_f64().unwrap())
        .sum();
    assert!(
        (cost - 0.04).abs() < 1e-9,
        "two images at the batch price: {usage}"
    );
    assert_eq!(spent(app, &client).await, 0.04, "settled to the real cost");
    assert!(!app.batches.run_once().await.unwrap());
    assert_eq!(spent(app, &client).await, 0.04, "settled once");
}

#[tokio::test]
async fn batch_items_are_scoped_and_reserved_against_the_budget_on_sqlite() {
    let fake = FakeGemini::start().await;
    let app = TestApp::spawn(configure(&fake)).await;
    budget_story(&app, &fake).await;
}

#[ignore = "needs PostgreSQL"]
#[tokio::test]
async fn batch_items_are_scoped_and_reserved_against_the_budget_on_postgresql() {
    let schema = PgSchema::create().await;
    let fake = FakeGemini::start().await;
    let url = schema.database_url();
    let base = configure(&fake);
    let app = TestApp::spawn(move |c| {
        base(c);
        c.database_url = Some(url);
        // One instance: image bytes may stay in its data directory.
        c.single_instance = true;
    })
    .await;
    budget_story(&app, &fake).await;
}

fn pending_batch(id: &str, owner: &str, items: i64) -> BatchRecord {
    BatchRecord {
        id: id.into(),
        owner: owner.into(),
        tier: "paid".into(),
        model: "gemini-3.1-flash-image".into(),
        display_name: None,
        webhook_url: None,
        state: "queued".into(),
        item_count: items,
        upstream_name: None,
        cancel_requested: false,
        attempts: 0,
        polls: 0,
        next_poll_ms: 0,
        items: None,
        error: None,
        created_at_ms: 0,
        updated_at_ms: 0,
        finished_at_ms: None,
        reserved: None,
    }
}

/// Two instances insert batches for one key at the same instant on PostgreSQL: the second
/// insert cannot decide while the first is uncommitted (READ COMMITTED would not see it),
/// so it counts it and finds the cap full.
#[ignore = "needs PostgreSQL"]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pending_items_cap_holds_for_concurrent_inserts_on_two_postgresql_instances() {
    let schema = PgSchema::create().await;
    let connect = || Db::connect_postgres(&schema.url, Duration::from_secs(3));
    let a = BatchStore::new(connect().await.unwrap());
    let b = BatchStore::new(connect().await.unwrap());
    let pool = connect().await.unwrap().pool;
    // Instance A is in the middle of inserting three items, the whole cap.
    let mut tx = pool.begin().await.unwrap();
    let first = a
        .insert_in(&mut tx, &pending_batch("batch_a", "key_race", 3), 3)
        .await
        .unwrap();
    assert_eq!(first, Inserted::Inserted);
    // Instance B inserts three more for the same key meanwhile.
    let racing = tokio::spawn(async move {
        b.insert(&pending_batch("batch_b", "key_race", 3), 3)
            .await
            .unwrap()
    });
    // Time for B to go wrong, if it can: without the per-key lock it would insert now.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!racing.is_finished(), "B decided before A's insert ended");
    tx.commit().await.unwrap();
    assert_eq!(racing.await.unwrap(), Inserted::OverCap);
    let store = a;
    assert_eq!(store.pending_items("key_race").await.unwrap(), 3);
    // Another key is not held up by it.
    let other = store
        .insert(&pending_batch("batch_c", "key_other", 3), 3)
        .await
        .unwrap();
    assert_eq!(other, Inserted::Inserted);
}

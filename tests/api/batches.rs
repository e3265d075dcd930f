//! Batches (docs/batches.md): items checked one by one before anything goes upstream, one
//! upstream batch per submission (inline, or a JSONL file through the Files API), results
//! collected once and kept as the caller's images at half price, per-item outcomes, the
//! caller's webhook once per batch, Google's signed batch events, and a killed server
//! that loses nothing.

use std::time::Duration;

use imagegate::config::Config;
use serde_json::{Value, json};

use crate::async_jobs::Receiver;
use crate::support::fake_gemini::{FAKE_API_KEY, FakeGemini};
use crate::support::{
    TestApp, client_with_key, expect_error, expect_invalid, json_of, on_gemini, poll,
};

/// The Gemini provider on `fake` with short backoffs; the tests run the batch worker
/// themselves, and polls are due within milliseconds.
pub(crate) fn batching(fake: &FakeGemini) -> impl Fn(&mut Config) + Clone + use<> {
    let gemini = on_gemini(fake, 5.0);
    move |c: &mut Config| {
        gemini(c);
        c.gemini.initial_backoff_ms = 10;
        c.gemini.max_backoff_ms = 40;
        c.batches.workers = 0;
        c.batches.poll_initial_ms = 1;
        c.batches.poll_max_ms = 5;
    }
}

/// [`batching`] on `fake` with webhooks to this machine, then `configure` (which may
/// start workers).
async fn on_fake(fake: &FakeGemini, configure: impl FnOnce(&mut Config)) -> TestApp {
    let batching = batching(fake);
    TestApp::spawn(move |c| {
        batching(c);
        c.jobs.poll_ms = 20;
        c.jobs.webhooks.allow_private = true;
        configure(c);
    })
    .await
}

pub(crate) async fn submit(app: &TestApp, body: Value) -> String {
    let (status, _, accepted) = json_of(app.post_json("/batches", body).await).await;
    assert_eq!(status, 202, "{accepted}");
    assert_eq!(accepted["state"], "queued");
    accepted["batch_id"].as_str().unwrap().to_owned()
}

pub(crate) async fn batch(app: &TestApp, id: &str, query: &str) -> Value {
    let (status, _, body) = json_of(app.get(&format!("/batches/{id}{query}")).await).await;
    assert_eq!(status, 200, "{body}");
    body
}

fn ended(body: &Value) -> bool {
    !body["finished_at"].is_null()
}

/// Runs the worker step by step until the batch has ended.
pub(crate) async fn drive(app: &TestApp, id: &str) -> Value {
    drive_as(app, &app.client, id).await
}

/// [`drive`], looking at the batch as `client` (whose key owns it).
pub(crate) async fn drive_as(app: &TestApp, client: &reqwest::Client, id: &str) -> Value {
    let url = app.url(&format!("/batches/{id}"));
    for _ in 0..2_000 {
        if !app.batches.run_once().await.expect("a worker step") {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let (status, _, body) = json_of(client.get(&url).send().await.unwrap()).await;
        assert_eq!(status, 200, "{body}");
        if ended(&body) {
            return body;
        }
    }
    panic!("batch {id} never ended");
}

/// Waits (the server's own workers run) until the batch has ended.
async fn wait_ended(app: &TestApp, id: &str) -> Value {
    let body = poll(|| batch(app, id, ""), ended).await;
    assert!(ended(&body), "batch {id} never ended: {body}");
    body
}

async fn results(app: &TestApp, id: &str) -> Vec<Value> {
    let response = app.get(&format!("/batches/{id}/results")).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/jsonl");
    let text = response.text().await.unwrap();
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

async fn generated_image(app: &TestApp, prompt: &str) -> String {
    let (status, _, body) = json_of(
        app.post_json("/generate-image", json!({"prompt": prompt}))
            .await,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body["image_ids"][0].as_str().unwrap().to_owned()
}

fn batch_creates(fake: &FakeGemini) -> usize {
    fake.requests()
        .iter()
        .filter(|r| r.path.ends_with(":batchGenerateContent"))
        .count()
}

#[tokio::test]
async fn twenty_five_items_run_end_to_end_with_per_item_outcomes() {
    let fake = FakeGemini::start().await;
    let app = on_fake(&fake, |_| {}).await;
    let first = generated_image(&app, "a red chair").await;
    let second = generated_image(&app, "a blue lamp").await;
    let mut items: Vec<Value> = (0..25)
        .map(|i| json!({"prompt": format!("product shot {i}"), "aspect_ratio": "1:1"}))
        .collect();
    items[3] = json!({"prompt": "shot 3 [[fake:image_safety]]"});
    items[7] = json!({"prompt": "shot 7 [[fake:no_image]]"});
    items[10] = json!({"prompt": "make it green", "image_id": first, "edit_strength": 0.5});
    items[11] = json!({"prompt": "put them together", "image_ids": [first, second]});
    let id = submit(&app, json!({"items": items, "display_name": "catalogue"})).await;
    assert_eq!(
        batch_creates(&fake),
        0,
        "nothing goes upstream before a worker runs"
    );

    let done = drive(&app, &id).await;
    assert_eq!(done["state"], "succeeded", "{done}");
    assert_eq!(done["counts"]["total"], 25);
    assert_eq!(done["counts"]["succeeded"], 23, "{done}");
    assert_eq!(done["counts"]["blocked"], 1);
    assert_eq!(done["counts"]["no_image"], 1);
    assert_eq!(batch_creates(&fake), 1, "one upstream batch per submission");
    let create = fake
        .requests()
        .into_iter()
        .find(|r| r.path.ends_with(":batchGenerateContent"))
        .unwrap();
    let sent = create.body["batch"]["inputConfig"]["requests"]["requests"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(sent.len(), 25);
    assert_eq!(
        create.body["batch"]["displayName"],
        format!("catalogue [{id}]"),
        "the caller's name, made unique to the batch"
    );
    let parts = |i: usize| {
        sent[i]["request"]["contents"][0]["parts"]
            .as_array()
            .unwrap()
            .len()
    };
    assert_eq!(
        (parts(0), parts(10), parts(11)),
        (1, 2, 3),
        "edit and composition carry their images"
    );

    // Paged per-item status.
    let page = batch(&app, &id, "?offset=20&limit=10").await;
    assert_eq!(page["items"].as_array().unwrap().len(), 5);
    assert_eq!(page["items"][0]["index"], 20);
    assert!(page["next_offset"].is_null());
    let page = batch(&app, &id, "?limit=2").await;
    assert_eq!(page["next_offset"], 2);

    let lines = results(&app, &id).await;
    assert_eq!(lines.len(), 25);
    assert_eq!(lines[3]["status"], "blocked");
    assert_eq!(
        lines[3]["error"]["error"], "content_blocked",
        "{}",
        lines[3]
    );
    assert_eq!(lines[7]["status"], "no_image");
    assert_eq!(
        lines[7]["error"]["error"], "no_image_generated",
        "{}",
        lines[7]
    );
    for (i, line) in lines
        .iter()
        .enumerate()
        .filter(|(i, _)| ![3, 7].contains(i))
    {
        assert_eq!(line["status"], "succeeded", "{i}: {line}");
        let image = line["image_ids"][0].as_str().unwrap();
        let got = app.get(&format!("/images/{image}")).await;
        assert_eq!(got.status(), 200, "item {i}'s image is the caller's");
    }
    let other = client_with_key(Some(&app.create_key("paid").await));
    let image = lines[0]["image_ids"][0].as_str().unwrap();
    let theirs = app.get_as(&other, &format!("/images/{image}")).await;
    assert_eq!(
        theirs.status(),
        404,
        "the images belong to the submitting key only"
    );
    assert!(
        !app.batches.run_once().await.unwrap(),
        "an ended batch is never claimed again"
    );
}

#[tokio::test]
async fn a_batch_over_the_inline_limit_goes_through_the_files_api() {
    let fake = FakeGemini::start().await;
    let app = on_fake(&fake, |c| c.batches.inline_limit_bytes = 200).await;
    let items: Vec<Value> = (0..4)
        .map(|i| json!({"prompt": format!("poster {i}")}))
        .collect();
    let id = submit(&app, json!({"items": items})).await;
    let done = drive(&app, &id).await;
    assert_eq!(done["counts"]["succeeded"], 4, "{done}");
    let uploads = fake.uploaded_files();
    assert!(
        uploads
            .iter()
            .any(|(name, size)| name.starts_with("files/up") && *size > 200),
        "{uploads:?}"
    );
    let starts: Vec<_> = fake
        .requests()
        .into_iter()
        .filter(|r| r.path.starts_with("/upload/"))
        .collect();
    assert!(
        starts.len() >= 2,
        "a resumable start, then the chunk that finalizes"
    );
    let create = fake
        .requests()
        .into_iter()
        .find(|r| r.path.ends_with(":batchGenerateContent"))
        .unwrap();
    assert!(
        create.body["batch"]["inputConfig"]["fileName"]
            .as_str()
            .unwrap()
            .starts_with("files/")
    );
    assert_eq!(
        fake.batch_counts(),
        (1, 1),
        "one batch, its responses file downloaded once"
    );
    assert_eq!(results(&app, &id).await.len(), 4);
}

#[tokio::test]
async fn usage_is_recorded_per_item_at_half_the_standard_price_and_marked_batch() {
    let fake = FakeGemini::start().await;
    let app = on_fake(&fake, |_| {}).await;
    generated_image(&app, "one standard shot").await;
    let id = submit(
        &app,
        json!({"items": [{"prompt": "batch shot a"}, {"prompt": "batch shot b"}]}),
    )
    .await;
    drive(&app, &id).await;
    let (_, _, usage) = json_of(app.get("/usage?days=1").await).await;
    let rows = usage["days"].as_array().unwrap();
    let row = |rate: &str| {
        rows.iter()
            .find(|r| r["rate"] == rate)
            .unwrap_or_else(|| panic!("{usage}"))
    };
    let (standard, batch) = (row("standard"), row("batch"));
    assert_eq!(standard["model"], batch["model"]);
    assert_eq!(batch["requests"], 2, "one per item");
    assert_eq!(batch["images"], 2);
    let per_image = |r: &Value| r["cost_usd"].as_f64().unwrap() / r["images"].as_f64().unwrap();
    assert!(per_image(standard) > 0.0);
    assert!(
        (per_image(batch) - per_image(standard) / 2.0).abs() < 1e-6,
        "{usage}"
    );
}

#[tokio::test]
async fn the_callers_webhook_arrives_once_per_batch_including_an_expired_one() {
    let fake = FakeGemini::start().await;
    let (receiver, hook) = Receiver::start(&[]).await;
    let app = on_fake(&fake, |c| c.batches.workers = 1).await;
    let done = submit(
        &app,
        json!({"items": [{"prompt": "a"}], "webhook_url": hook}),
    )
    .await;
    let expired = submit(
        &app,
        json!({"items": [{"prompt": "b"}, {"prompt": "c"}], "webhook_url": hook, "display_name": "[[fake:expire]]"}),
    )
    .await;
    assert_eq!(wait_ended(&app, &done).await["state"], "succeeded");
    let body = wait_ended(&app, &expired).await;
    assert_eq!(body["state"], "expired");
    assert_eq!(body["counts"]["expired"], 2);
    assert_eq!(results(&app, &expired).await[1]["status"], "expired");
    for _ in 0..200 {
        if receiver.calls().len() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    // Time for a duplicate to show up, if one were sent.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let calls = receiver.calls();
    assert_eq!(calls.len(), 2, "one delivery per batch");
    let (_, _, secret) = json_of(app.get("/webhooks/secret").await).await;
    let secret = secret["secret"].as_str().unwrap();
    for (headers, body) in &calls {
        let sig = headers["webhook-signature"].to_str().unwrap();
        let ts: i64 = headers["webhook-timestamp"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        let id = headers["webhook-id"].to_str().unwrap();
        assert_eq!(
            Some(sig.to_owned()),
            imagegate::jobs::webhooks::sign(secret, id, ts, body),
            "signed with the key's webhook secret"
        );
    }
    let states: Vec<Value> = calls
        .iter()
        .map(|(_, b)| serde_json::from_str::<Value>(b).unwrap()["state"].clone())
        .collect();
    assert!(
        states.contains(&json!("expired")) && states.contains(&json!("succeeded")),
        "{states:?}"
    );
}

#[tokio::test]
async fn a_signed_google_batch_event_collects_the_batch_before_its_next_poll() {
    let fake = FakeGemini::start().await;
    let secret = imagegate::jobs::webhooks::new_secret();
    let app = on_fake(&fake, |c| {
        c.batches.workers = 1;
        // Without the event, the next poll would be a minute away.
        c.batches.poll_initial_ms = 60_000;
        c.batches.poll_max_ms = 60_000;
        c.batches.google_webhook_secret = Some(secret.clone());
    })
    .await;
    fake.batch_polls_to_finish(0);
    fake.batch_webhook(&app.url("/gemini/batch-events"), &secret);
    let id = submit(&app, json!({"items": [{"prompt": "pushed"}]})).await;
    for _ in 0..200 {
        if batch(&app, &id, "").await["state"] == "running" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(batch(&app, &id, "").await["state"], "running");

    // A forged event is refused and changes nothing.
    let forged = reqwest::Client::new()
        .post(app.url("/gemini/batch-events"))
        .header("webhook-id", "msg_x")
        .header("webhook-timestamp", (app.clock.now_ms() / 1000).to_string())
        .header("webhook-signature", "v1,AAAA")
        .body(r#"{"type":"batch.succeeded","data":{"name":"batches/fake1"}}"#)
        .send()
        .await
        .unwrap();
    expect_error(forged, 401, "unauthorized").await;

    fake.end_batches().await;
    let body = wait_ended(&app, &id).await;
    assert_eq!(body["state"], "succeeded");
}

#[tokio::test]
async fn items_are_checked_one_by_one_before_anything_goes_upstream() {
    let fake = FakeGemini::start().await;
    let app = on_fake(&fake, |c| {
        c.batches.max_items = 5;
        c.batches.max_upload_bytes = 2_000;
    })
    .await;
    let bad = |items: Value| json!({"items": items});
    let cases = [
        (
            bad(json!([{"prompt": "a"}, {"prompt": "b", "temperature": "hot"}])),
            1,
            "temperature",
        ),
        (bad(json!([{"prompt": "a"}, {"prompt": ""}])), 1, "prompt"),
        (bad(json!([{"prompt": "a", "async": true}])), 0, "async"),
        (bad(json!([{"prompt": "a", "colour": "red"}])), 0, "colour"),
        (
            bad(json!([{"prompt": "a"}, {"prompt": "a", "model": "gemini-2.5-flash-image"}])),
            1,
            "model",
        ),
        (
            bad(json!([{"prompt": "a", "edit_strength": 0.5}])),
            0,
            "edit_strength",
        ),
        (
            bad(json!([{"prompt": "a", "include_quality": true}])),
            0,
            "include_quality",
        ),
        (
            bad(json!([{"prompt": "a"}, {"prompt": "b", "min_quality_score": 0.5}])),
            1,
            "min_quality_score",
        ),
        (
            bad(json!([{"prompt": "a", "service_tier": "flex"}])),
            0,
            "service_tier",
        ),
        (
            bad(json!([{"prompt": "a", "fallback": true}])),
            0,
            "fallback",
        ),
        (
            bad(json!([{"prompt": "a", "image_id": "img_01KBJ1V6F0Q9J7D5Z0000000000"}])),
            0,
            "image_id",
        ),
        (bad(json!(["just a string"])), 0, "items"),
    ];
    for (body, item, field) in cases {
        let error = expect_invalid(app.post_json("/batches", body.clone()).await).await;
        assert_eq!(error["details"]["item"], item, "{body} → {error}");
        assert_eq!(error["details"]["field"], field, "{body} → {error}");
    }
    // An image of another key is as unknown as one that does not exist.
    let other_key = app.create_key("paid").await;
    let other = client_with_key(Some(&other_key));
    let (_, _, theirs) = json_of(
        app.post_json_as(&other, "/generate-image", json!({"prompt": "theirs"}))
            .await,
    )
    .await;
    let their_image = theirs["image_ids"][0].as_str().unwrap();
    let error = expect_invalid(
        app.post_json(
            "/batches",
            bad(json!([{"prompt": "steal", "image_id": their_image}])),
        )
        .await,
    )
    .await;
    assert_eq!(error["details"]["field"], "image_id");

    let too_many: Vec<Value> = (0..6).map(|i| json!({"prompt": format!("p{i}")})).collect();
    let error = expect_invalid(app.post_json("/batches", bad(json!(too_many))).await).await;
    assert_eq!(error["details"]["max_items"], 5);
    expect_invalid(app.post_json("/batches", bad(json!([]))).await).await;
    expect_invalid(
        app.post_json(
            "/batches",
            json!({"items": [{"prompt": "a"}], "model": "dall-e"}),
        )
        .await,
    )
    .await;
    expect_invalid(
        app.post_json(
            "/batches",
            json!({"items": [{"prompt": "a"}], "webhook_url": "ftp://x"}),
        )
        .await,
    )
    .await;
    let long_name = json!({"items": [{"prompt": "a"}], "display_name": "n".repeat(129)});
    let error = expect_invalid(app.post_json("/batches", long_name).await).await;
    assert_eq!(error["details"]["field"], "display_name");

    let jsonl = |body: String| {
        app.client
            .post(app.url("/batches?display_name=lines"))
            .header("content-type", "application/jsonl")
            .body(body)
            .send()
    };
    let oversized = format!("{{\"prompt\": \"{}\"}}\n", "x".repeat(3_000));
    let response = jsonl(oversized).await.unwrap();
    assert_eq!(response.status(), 413);
    let error = expect_invalid(
        jsonl("{\"prompt\": \"a\"}\nnot json\n".into())
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(error["details"]["line"], 2, "{error}");
    assert_eq!(batch_creates(&fake), 0, "nothing refused went upstream");

    let response = jsonl("{\"prompt\": \"a\"}\n\n{\"prompt\": \"b\"}\n".into())
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    let accepted: Value = response.json().await.unwrap();
    assert_eq!(accepted["counts"]["total"], 2);
    assert_eq!(accepted["display_name"], "lines");
}

#[tokio::test]
async fn cancel_works_once_and_batches_are_private_to_their_key() {
    let fake = FakeGemini::start().await;
    let app = on_fake(&fake, |_| {}).await;
    let queued = submit(&app, json!({"items": [{"prompt": "a"}]})).await;
    let (status, _, body) = json_of(
        app.post_json(&format!("/batches/{queued}/cancel"), json!({}))
            .await,
    )
    .await;
    assert_eq!(
        (status, body["state"].as_str()),
        (200, Some("cancelled")),
        "{body}"
    );
    expect_error(
        app.post_json(&format!("/batches/{queued}/cancel"), json!({}))
            .await,
        409,
        "conflict",
    )
    .await;

    // Cancelled upstream while running.
    fake.batch_polls_to_finish(0);
    let running = submit(&app, json!({"items": [{"prompt": "b"}, {"prompt": "c"}]})).await;
    assert!(app.batches.run_once().await.unwrap());
    expect_error(
        app.get(&format!("/batches/{running}/results")).await,
        409,
        "conflict",
    )
    .await;
    let (status, _, body) = json_of(
        app.post_json(&format!("/batches/{running}/cancel"), json!({}))
            .await,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["cancel_requested"], true);
    let done = drive(&app, &running).await;
    assert_eq!(done["state"], "cancelled");
    assert!(fake.requests().iter().any(|r| r.path.ends_with(":cancel")));

    let other = client_with_key(Some(&app.create_key("paid").await));
    for path in [
        format!("/batches/{running}"),
        format!("/batches/{running}/results"),
        "/batches/batch_nonsense".into(),
    ] {
        let response = app.get_as(&other, &path).await;
        assert_eq!(response.status(), 404, "{path}");
    }
    let (_, _, listed) = json_of(app.get_as(&other, "/batches").await).await;
    assert_eq!(listed["batches"].as_array().unwrap().len(), 0);
    let (_, _, mine) = json_of(app.get("/batches").await).await;
    assert_eq!(mine["batches"].as_array().unwrap().len(), 2);
    assert_eq!(
        mine["batches"][0]["batch_id"],
        running.as_str(),
        "newest first"
    );
}

#[tokio::test]
async fn items_pending_are_capped_per_tier_and_a_submission_counts_once_per_minute() {
    let fake = FakeGemini::start().await;
    let app = on_fake(&fake, |c| {
        c.batches.max_pending_items.insert("paid".into(), 5);
    })
    .await;
    let three: Vec<Value> = (0..3).map(|i| json!({"prompt": format!("p{i}")})).collect();
    let first = submit(&app, json!({"items": three})).await;
    let response = app.post_json("/batches", json!({"items": three})).await;
    let remaining: u32 = response.headers()["x-ratelimit-remaining"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let error = expect_error(response, 429, "rate_limit_exceeded").await;
    assert_eq!(error["details"]["max_pending_items"], 5);
    assert!(error["message"].as_str().unwrap().contains('5'));
    assert!(
        remaining >= 600 - 3,
        "three submissions of many items used {} slots",
        600 - remaining
    );
    drive(&app, &first).await;
    submit(&app, json!({"items": three})).await;
}

#[tokio::test]
async fn the_offline_provider_runs_batches_locally_with_watchable_states() {
    let app = TestApp::spawn(|c| {
        c.provider = imagegate::config::ProviderChoice::Offline;
        c.batches.workers = 0;
        c.batches.poll_initial_ms = 1;
        c.batches.poll_max_ms = 5;
        c.batches.offline_delay_ms = 300;
    })
    .await;
    let id = submit(
        &app,
        json!({"items": [{"prompt": "a lighthouse"}, {"prompt": "a boat", "image_size": "1K"}]}),
    )
    .await;
    assert!(app.batches.run_once().await.unwrap());
    assert_eq!(batch(&app, &id, "").await["state"], "running");
    let done = drive(&app, &id).await;
    assert_eq!(done["counts"]["succeeded"], 2, "{done}");
    let (_, _, usage) = json_of(app.get("/usage?days=1").await).await;
    assert_eq!(usage["days"][0]["rate"], "batch", "{usage}");
}

#[ignore = "needs PostgreSQL"]
#[tokio::test]
async fn batches_are_kept_in_postgres_too() {
    let schema = crate::support::services::PgSchema::create().await;
    let fake = FakeGemini::start().await;
    let url = schema.database_url();
    let app = on_fake(&fake, move |c| {
        c.database_url = Some(url);
        // One instance: image bytes may stay in its data directory.
        c.single_instance = true;
    })
    .await;
    let id = submit(
        &app,
        json!({"items": [{"prompt": "a"}, {"prompt": "b [[fake:image_safety]]"}]}),
    )
    .await;
    let done = drive(&app, &id).await;
    assert_eq!(
        (
            done["counts"]["succeeded"].as_i64(),
            done["counts"]["blocked"].as_i64()
        ),
        (Some(1), Some(1))
    );
}

/// The fake's Batch and Files API, driven by google-genai's own `client.batches` and
/// `client.files` (tests/compat/genai_batches.py).
#[ignore = "needs python3 with tests/requirements.txt installed"]
#[tokio::test(flavor = "multi_thread")]
async fn the_fake_batch_api_answers_the_official_sdk() {
    let fake = FakeGemini::start().await;
    crate::support::tools::require_python("google.genai");
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/compat/genai_batches.py");
    let base = fake.base_url();
    let output = tokio::task::block_in_place(|| {
        std::process::Command::new("python3")
            .arg(script)
            .env("FAKE_BASE", base)
            .env("FAKE_KEY", FAKE_API_KEY)
            .output()
            .expect("python3 runs")
    });
    assert!(
        output.status.success(),
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let uploads: Vec<_> = fake
        .requests()
        .into_iter()
        .filter(|r| r.path.starts_with("/upload/"))
        .collect();
    assert!(uploads.len() >= 2, "a resumable start and its chunks");
    let lists: Vec<String> = fake
        .list_requests()
        .into_iter()
        .filter(|r| r.path.ends_with("/batches"))
        .map(|r| r.query)
        .collect();
    assert!(
        lists
            .iter()
            .any(|q| q.contains("pageSize=2") && q.contains("pageToken=")),
        "the SDK's pager asked for the next page: {lists:?}"
    );
}

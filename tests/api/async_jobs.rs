//! Async work: stored before the 202, run by workers, reported by `GET /requests/{id}`,
//! cancellable while queued, and announced by signed webhooks (verified here with an
//! independent implementation of the Standard Webhooks scheme).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode};
use base64::Engine as _;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use imagegate::caller::Caller;
use imagegate::clock::ManualClock;
use imagegate::config::Secret;

use crate::support::fake_gemini::FakeGemini;
use crate::support::{
    TestApp, client_with_key, expect_error, expect_invalid, file_part, json_of, png,
};

/// A webhook receiver on loopback that answers with the scripted statuses, then 200.
#[derive(Clone, Default)]
pub struct Receiver {
    got: Arc<Mutex<Vec<(HeaderMap, String)>>>,
    script: Arc<Mutex<Vec<u16>>>,
}

impl Receiver {
    pub async fn start(script: &[u16]) -> (Self, String) {
        let receiver = Receiver::default();
        *receiver.script.lock().unwrap() = script.iter().rev().copied().collect();
        let state = receiver.clone();
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |headers: HeaderMap, body: String| {
                let state = state.clone();
                async move {
                    state.got.lock().unwrap().push((headers, body));
                    let code = state.script.lock().unwrap().pop().unwrap_or(200);
                    StatusCode::from_u16(code).unwrap()
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        (receiver, url)
    }

    pub fn calls(&self) -> Vec<(HeaderMap, String)> {
        self.got.lock().unwrap().clone()
    }
}

/// HMAC-SHA256 written out from its definition (RFC 2104), independent of the server's.
fn hmac_sha256(key: &[u8], message: &[u8]) -> Vec<u8> {
    let mut block = [0u8; 64];
    if key.len() > 64 {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let pad = |byte: u8| block.iter().map(|b| b ^ byte).collect::<Vec<u8>>();
    let inner = Sha256::new()
        .chain_update(pad(0x36))
        .chain_update(message)
        .finalize();
    Sha256::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize()
        .to_vec()
}

fn verify(secret: &str, headers: &HeaderMap, body: &str) -> bool {
    let key = base64::engine::general_purpose::STANDARD
        .decode(secret.trim_start_matches("whsec_"))
        .unwrap();
    let id = headers["webhook-id"].to_str().unwrap();
    let ts = headers["webhook-timestamp"].to_str().unwrap();
    let expected = base64::engine::general_purpose::STANDARD
        .encode(hmac_sha256(&key, format!("{id}.{ts}.{body}").as_bytes()));
    headers["webhook-signature"]
        .to_str()
        .unwrap()
        .split(' ')
        .any(|s| s == format!("v1,{expected}"))
}

/// Runs the queue until it is empty, driving the worker directly, then reads the request.
async fn run_queue(app: &TestApp, id: &str) -> Value {
    while app.jobs.run_once().await.expect("a worker step") {}
    let (status, _, body) = json_of(app.get(&format!("/requests/{id}")).await).await;
    assert_eq!(status, 200, "{body}");
    body
}

fn quick_webhooks(c: &mut imagegate::config::Config) {
    c.provider = imagegate::config::ProviderChoice::Offline;
    c.jobs.poll_ms = 20;
    // The tests run the worker themselves (`run_once`); the webhook sender runs as usual.
    c.jobs.workers = 0;
    c.jobs.webhooks.allow_private = true;
    c.jobs.webhooks.initial_backoff_ms = 20;
    c.jobs.webhooks.max_backoff_ms = 50;
}

#[tokio::test]
async fn an_async_request_is_accepted_stored_and_completed() {
    let app = TestApp::spawn(quick_webhooks).await;
    let response = app
        .post_json(
            "/generate-image",
            json!({"prompt": "a fox", "async": true, "model": "gemini-3.1-flash-image", "image_size": "512"}),
        )
        .await;
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let (status, header_id, accepted) = json_of(response).await;
    assert_eq!(status, 202, "{accepted}");
    let id = accepted["request_id"].as_str().unwrap();
    assert_eq!(id, header_id);
    assert_eq!(accepted["status"], "queued");
    assert_eq!(accepted["status_url"], format!("/requests/{id}"));
    assert_eq!(location, format!("/requests/{id}"));
    let done = run_queue(&app, id).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["result"]["request_id"], id);
    assert_eq!(done["result"]["model"], "offline");
    assert!(
        done["result"]["images"][0]
            .as_str()
            .is_some_and(|i| i.len() > 1000)
    );
    assert!(done["error"].is_null() && done["finished_at"].is_string());
}

#[tokio::test]
async fn invalid_async_requests_are_refused_before_anything_is_stored() {
    let app = TestApp::spawn(quick_webhooks).await;
    let (status, id, body) = json_of(
        app.post_json(
            "/generate-image",
            json!({"prompt": "x".repeat(2150), "async": true}),
        )
        .await,
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["details"]["field"], "prompt");
    expect_error(app.get(&format!("/requests/{id}")).await, 404, "not_found").await;
    let body = expect_invalid(
        app.post_json(
            "/generate-image",
            json!({"prompt": "a", "async": true, "webhook_url": "ftp://x"}),
        )
        .await,
    )
    .await;
    assert_eq!(body["details"]["field"], "webhook_url");
}

#[tokio::test]
async fn webhooks_to_internal_addresses_are_refused_unless_the_operator_allows_them() {
    let app = TestApp::offline().await;
    for url in [
        "http://127.0.0.1:9/hook",
        "http://169.254.169.254/latest",
        "http://[::1]/x",
        "http://10.0.0.1/x",
    ] {
        let body = expect_invalid(
            app.post_json(
                "/generate-image",
                json!({"prompt": "a", "async": true, "webhook_url": url}),
            )
            .await,
        )
        .await;
        assert_eq!(
            body["details"]["reason"], "forbidden_address",
            "{url}: {body}"
        );
    }
}

/// The queue and the webhook sender both driven by the test (`run_once`,
/// `deliver_once`), on a clock it moves past each retry's backoff.
async fn driven(clock: &ManualClock) -> TestApp {
    TestApp::spawn_full(tempfile::tempdir().unwrap(), Arc::new(clock.clone()), |c| {
        quick_webhooks(c);
        c.jobs.webhooks.deliver = false;
    })
    .await
}

/// Longer than any backoff `quick_webhooks` allows.
const PAST_BACKOFF_MS: i64 = 60_000;

#[tokio::test]
async fn a_finished_request_sends_a_signed_webhook_with_its_status_body() {
    let (receiver, url) = Receiver::start(&[500]).await;
    let clock = ManualClock::starting_now();
    let app = driven(&clock).await;
    let id = app.queue(json!({"prompt": "a fox", "async": true, "webhook_url": url, "model": "gemini-3.1-flash-image", "image_size": "512"})).await;
    run_queue(&app, &id).await;
    assert!(
        app.jobs.deliver_once().await.unwrap(),
        "due when the request finished"
    );
    assert_eq!(receiver.calls().len(), 1);
    assert!(
        !app.jobs.deliver_once().await.unwrap(),
        "the retry of the refused attempt waits for its backoff"
    );
    clock.advance_ms(PAST_BACKOFF_MS);
    assert!(app.jobs.deliver_once().await.unwrap(), "the retry is due");
    let calls = receiver.calls();
    assert_eq!(calls.len(), 2);
    let (secret_status, _, secret) = json_of(app.get("/webhooks/secret").await).await;
    assert_eq!(secret_status, 200);
    let secret = secret["secret"].as_str().unwrap();
    assert!(secret.starts_with("whsec_"));
    for (headers, body) in &calls {
        assert!(
            verify(secret, headers, body),
            "signature verifies independently"
        );
    }
    assert_eq!(
        calls[0].0["webhook-id"], calls[1].0["webhook-id"],
        "a retry keeps its message id"
    );
    let mut delivered: Value = serde_json::from_str(&calls[1].1).unwrap();
    let mut current = run_queue(&app, &id).await;
    // The images sit at the top level, where the guide's handler reads them, and only
    // there; the rest is the body of GET /requests/{id}.
    assert_eq!(delivered["images"], current["result"]["images"]);
    assert!(delivered["result"].get("images").is_none());
    delivered.as_object_mut().unwrap().remove("images");
    current["result"].as_object_mut().unwrap().remove("images");
    assert!(
        delivered == current,
        "the webhook carries the body of GET /requests/{{id}}"
    );
    clock.advance_ms(PAST_BACKOFF_MS);
    assert!(
        !app.jobs.deliver_once().await.unwrap(),
        "no more attempts after a 2xx"
    );
    assert_eq!(receiver.calls().len(), 2);
}

#[tokio::test]
async fn a_410_stops_webhook_retries() {
    let (receiver, url) = Receiver::start(&[410, 500, 500]).await;
    let clock = ManualClock::starting_now();
    let app = driven(&clock).await;
    let id = app.queue(json!({"prompt": "a", "async": true, "webhook_url": url, "model": "gemini-3.1-flash-image", "image_size": "512"})).await;
    run_queue(&app, &id).await;
    assert!(app.jobs.deliver_once().await.unwrap());
    assert_eq!(receiver.calls().len(), 1);
    clock.advance_ms(PAST_BACKOFF_MS);
    assert!(
        !app.jobs.deliver_once().await.unwrap(),
        "nothing is retried after a 410"
    );
    assert_eq!(receiver.calls().len(), 1);
}

#[tokio::test]
async fn queued_requests_can_be_canceled_and_only_those() {
    let app = TestApp::spawn(quick_webhooks).await;
    let id = app.queue(json!({"prompt": "a", "async": true})).await;
    let (status, _, canceled) = json_of(
        app.client
            .post(app.url(&format!("/requests/{id}/cancel")))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{canceled}");
    assert_eq!(canceled["status"], "canceled");
    assert_eq!(run_queue(&app, &id).await["status"], "canceled");
    let again = app
        .client
        .post(app.url(&format!("/requests/{id}/cancel")))
        .send()
        .await
        .unwrap();
    expect_error(again, 409, "conflict").await;
}

#[tokio::test]
async fn multipart_requests_can_run_async_too() {
    let app = TestApp::spawn(quick_webhooks).await;
    let form = reqwest::multipart::Form::new()
        .part("image", file_part(png(120, 80), "a.png"))
        .text("prompt", "make it blue")
        .text("async", "True");
    let (status, id, body) = json_of(app.post_form("/edit-image", form).await).await;
    assert_eq!(status, 202, "{body}");
    let done = run_queue(&app, &id).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    let image = crate::support::decode_image(&done["result"]["images"][0]);
    assert_eq!((image.width(), image.height()), (120, 80));
}

#[tokio::test]
async fn a_refusal_upstream_is_a_failed_request_with_the_contracts_error() {
    let fake = FakeGemini::start().await;
    let app = TestApp::gemini_with(&fake, |c| {
        quick_webhooks(c);
        c.provider = imagegate::config::ProviderChoice::Gemini;
    })
    .await;
    let id = app
        .queue(json!({"prompt": "x [[fake:image_safety]]", "async": true}))
        .await;
    let done = run_queue(&app, &id).await;
    assert_eq!(done["status"], "failed");
    assert_eq!(done["error"]["error"], "content_blocked");
    assert_eq!(done["error"]["request_id"], id.as_str());
    assert!(done["result"].is_null());
}

#[tokio::test]
async fn requests_are_invisible_to_other_keys() {
    let app = TestApp::spawn(quick_webhooks).await;
    let id = app.queue(json!({"prompt": "a", "async": true})).await;
    let other = app.create_key("paid").await;
    let response = app
        .client
        .get(app.url(&format!("/requests/{id}")))
        .bearer_auth(other)
        .send()
        .await
        .unwrap();
    expect_error(response, 404, "not_found").await;
}

#[tokio::test]
async fn polling_a_request_does_not_use_up_a_free_keys_minute() {
    let app = TestApp::spawn(quick_webhooks).await;
    let free = app.create_key("free").await;
    let client = crate::support::client_with_key(Some(&free));
    let submitted = app.post_json_as(&client, "/generate-image", json!({"prompt": "a fox", "async": true, "model": "gemini-3.1-flash-image", "image_size": "512"})).await;
    assert_eq!(submitted.status(), 202);
    let id = submitted.json::<Value>().await.unwrap()["request_id"]
        .as_str()
        .unwrap()
        .to_owned();
    for _ in 0..30 {
        let poll = app.get_as(&client, &format!("/requests/{id}")).await;
        assert_eq!(poll.status(), 200, "status polls are not rate limited");
        assert_eq!(
            poll.headers()["x-ratelimit-remaining"],
            "14",
            "and do not count"
        );
    }
}

/// A request's error body without its request id, which differs between two requests.
fn without_id(mut body: Value) -> Value {
    body.as_object_mut().unwrap().remove("request_id");
    body
}

type FormFn = fn() -> reqwest::multipart::Form;

#[tokio::test]
async fn the_same_invalid_input_gets_the_same_error_sync_or_async() {
    let app = TestApp::spawn(quick_webhooks).await;
    let json_cases = [
        ("/generate-image", json!({"prompt": "a", "temperature": 5})),
        (
            "/generate-image",
            json!({"prompt": "a", "min_quality_score": 99}),
        ),
        (
            "/story/generate",
            json!({"description": "a fox", "num_images": 11}),
        ),
        (
            "/story/generate",
            json!({"description": "a fox", "content_type": "poem"}),
        ),
        (
            "/chat/chat_00000000000000000000000000/message",
            json!({"message": "hi"}),
        ),
    ];
    for (path, body) in json_cases {
        let sync = app.post_json(path, body.clone()).await;
        let (sync_status, _, sync_body) = json_of(sync).await;
        let mut queued = body.clone();
        queued["async"] = json!(true);
        let (async_status, id, async_body) = json_of(app.post_json(path, queued).await).await;
        assert!(sync_status >= 400, "{path} {body}: {sync_body}");
        assert_eq!(
            (async_status, without_id(async_body)),
            (sync_status, without_id(sync_body)),
            "{path} {body}"
        );
        expect_error(app.get(&format!("/requests/{id}")).await, 404, "not_found").await;
    }
    let form_cases: [(&str, FormFn); 5] = [
        ("/edit-image", || {
            reqwest::multipart::Form::new()
                .part("image", file_part(b"not an image".to_vec(), "a.txt"))
                .text("prompt", "blue")
        }),
        ("/compose-images", || {
            reqwest::multipart::Form::new()
                .part("images", file_part(png(40, 30), "a.png"))
                .text("prompt", "together")
        }),
        ("/advanced/inpaint", || {
            reqwest::multipart::Form::new()
                .part("image", file_part(png(40, 30), "a.png"))
                .part("mask", file_part(png(40, 30), "m.png"))
                .part("mask", file_part(png(40, 30), "m.png"))
                .text("prompt", "a door")
        }),
        ("/advanced/outpaint", || {
            reqwest::multipart::Form::new()
                .part("image", file_part(png(40, 30), "a.png"))
                .text("prompt", "more sky")
                .text("extension_ratio", "3")
        }),
        ("/advanced/style-transfer", || {
            reqwest::multipart::Form::new().part("image", file_part(png(40, 30), "a.png"))
        }),
    ];
    for (path, form) in form_cases {
        let (sync_status, _, sync_body) = json_of(app.post_form(path, form()).await).await;
        let queued = form().text("async", "true");
        let (async_status, id, async_body) = json_of(app.post_form(path, queued).await).await;
        assert_eq!(sync_status, 400, "{path}: {sync_body}");
        assert_eq!(
            (async_status, without_id(async_body)),
            (sync_status, without_id(sync_body)),
            "{path}"
        );
        expect_error(app.get(&format!("/requests/{id}")).await, 404, "not_found").await;
    }
    assert!(!app.jobs.run_once().await.unwrap(), "nothing was queued");
}

#[tokio::test]
async fn work_queued_by_an_older_version_is_finished_by_this_one() {
    let app = TestApp::spawn(quick_webhooks).await;
    let storage = imagegate::store::Storage::open(&app.config).await.unwrap();
    // The old format: the route's own HTTP body (async fields taken out), re-encoded.
    let boundary = "imagegate-b_old";
    let mut body = Vec::new();
    body.extend_from_slice(format!("--{boundary}\r\ncontent-disposition: form-data; name=\"prompt\"\r\n\r\nmake it blue\r\n").as_bytes());
    body.extend_from_slice(format!("--{boundary}\r\ncontent-disposition: form-data; name=\"image\"; filename=\"a.png\"\r\ncontent-type: image/png\r\n\r\n").as_bytes());
    body.extend_from_slice(&png(64, 48));
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let owner = {
        // The key id of the test's own key, as the server derives it.
        let (_, _, usage) = json_of(app.get("/usage").await).await;
        usage["key_id"].as_str().map(str::to_owned)
    };
    let owner = owner.expect("the usage answer names the key");
    let mut ids = Vec::new();
    for (path, content_type, stored) in [
        (
            "/edit-image",
            format!("multipart/form-data; boundary={boundary}"),
            body.clone(),
        ),
        (
            "/generate-image",
            "application/json".to_owned(),
            br#"{"prompt":"a fox","model":"gemini-3.1-flash-image","image_size":"512"}"#.to_vec(),
        ),
    ] {
        let id = imagegate::ids::new_id("req");
        storage
            .blobs
            .put(&format!("requests/{id}.body"), bytes::Bytes::from(stored))
            .await
            .unwrap();
        storage
            .requests
            .insert(&imagegate::store::requests::RequestRecord {
                id: id.clone(),
                owner: owner.clone(),
                tier: "paid".into(),
                path: path.into(),
                content_type,
                body_ref: id.clone(),
                webhook_url: None,
                status: "queued".into(),
                attempts: 0,
                result: None,
                error: None,
                created_at_ms: app.clock.now_ms(),
                finished_at_ms: None,
            })
            .await
            .unwrap();
        ids.push(id);
    }
    for id in &ids {
        let done = run_queue(&app, id).await;
        assert_eq!(done["status"], "succeeded", "{done}");
        assert_eq!(done["result"]["model"], "offline");
    }
    let edited =
        crate::support::decode_image(&run_queue(&app, &ids[0]).await["result"]["images"][0]);
    assert_eq!((edited.width(), edited.height()), (64, 48));
}

use crate::support::ADMIN_TOKEN as ADMIN;

/// A driven queue whose `solo` tier runs one request at a time, with the admin API.
async fn solo_queue(clock: &ManualClock) -> TestApp {
    TestApp::spawn_full(tempfile::tempdir().unwrap(), Arc::new(clock.clone()), |c| {
        quick_webhooks(c);
        c.auth.admin_token = Some(Secret::new(ADMIN));
        c.tiers =
            toml::from_str("[solo]\nrequests_per_minute = 100\nmax_concurrent = 1\n").unwrap();
    })
    .await
}

/// A `solo` key with `settings`: its client and its key id.
async fn solo_key(app: &TestApp, settings: Value) -> (reqwest::Client, String) {
    let mut body = json!({"tier": "solo"});
    body.as_object_mut()
        .unwrap()
        .extend(settings.as_object().unwrap().clone());
    let created = crate::support::admin_create_key(app, &body).await;
    (
        client_with_key(created["key"].as_str()),
        created["key_id"].as_str().unwrap().to_owned(),
    )
}

async fn queue_generate(app: &TestApp, client: &reqwest::Client, prompt: &str) -> String {
    let (status, id, body) = json_of(
        app.post_json_as(
            client,
            "/generate-image",
            json!({"prompt": prompt, "async": true}),
        )
        .await,
    )
    .await;
    assert_eq!(status, 202, "{body}");
    id
}

async fn status_of(app: &TestApp, client: &reqwest::Client, id: &str) -> String {
    let (_, _, body) = json_of(app.get_as(client, &format!("/requests/{id}")).await).await;
    body["status"].as_str().unwrap_or_default().to_owned()
}

/// Runs worker steps until the queue has nothing claimable. A step that waited for a
/// saturated key's slot would never return: the guard turns that into a failure.
async fn drain(app: &TestApp) {
    tokio::time::timeout(Duration::from_secs(30), async {
        while app.jobs.run_once().await.expect("a worker step") {}
    })
    .await
    .expect("no worker step waits on a key with no free slot");
}

#[tokio::test]
async fn a_saturated_keys_queue_does_not_stop_another_keys_request_from_running() {
    let clock = ManualClock::starting_now();
    let app = solo_queue(&clock).await;
    let (busy, busy_id) = solo_key(&app, json!({})).await;
    let (other, _) = solo_key(&app, json!({})).await;
    let mut queued = Vec::new();
    for i in 0..5 {
        queued.push(queue_generate(&app, &busy, &format!("fox {i}")).await);
    }
    let last = queue_generate(&app, &other, "a hare").await;
    // The busy key's one slot is taken, as by a synchronous request of its own.
    let held = app
        .jobs
        .executor()
        .try_slot(&Caller::of_tier(busy_id, "solo"))
        .await
        .expect("the slot was free");
    drain(&app).await;
    assert_eq!(status_of(&app, &other, &last).await, "succeeded");
    for id in &queued {
        assert_eq!(status_of(&app, &busy, id).await, "queued", "{id} waits");
    }
    // Once its slot is free the busy key's work runs, none of it failed for the waits.
    drop(held);
    clock.advance_ms(1_000);
    drain(&app).await;
    for id in &queued {
        assert_eq!(status_of(&app, &busy, id).await, "succeeded", "{id}");
    }
}

#[tokio::test]
async fn queued_work_runs_at_its_keys_own_concurrency_not_its_tiers() {
    let clock = ManualClock::starting_now();
    let app = solo_queue(&clock).await;
    let (wide, wide_id) = solo_key(&app, json!({"max_concurrent": 2})).await;
    let id = queue_generate(&app, &wide, "a fox").await;
    // One request of the key is in flight: all its tier allows, half of what it has.
    let _held = app
        .jobs
        .executor()
        .try_slot(&Caller::of_tier(wide_id, "solo"))
        .await
        .expect("the slot was free");
    drain(&app).await;
    assert_eq!(status_of(&app, &wide, &id).await, "succeeded");
}

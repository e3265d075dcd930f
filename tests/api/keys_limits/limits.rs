//! Per-key limits by tier: requests per minute (time moved by hand) and requests in
//! flight (held open by a slow fake upstream), and the headers on every response.

use std::sync::Arc;

use imagegate::clock::ManualClock;
use serde_json::{Value, json};

use super::{gemini_at, header, offline_at};
use crate::support::fake_gemini::FakeGemini;
use crate::support::{TestApp, client_with_key, expect_error, json_of};

#[tokio::test]
async fn a_free_key_gets_15_requests_a_minute_then_429_until_the_window_slides() {
    let clock = ManualClock::starting_now();
    let app = offline_at(&clock, |_| {}).await;
    let free = client_with_key(Some(&app.create_key("free").await));
    for n in 1..=15 {
        let response = app.get_as(&free, "/usage").await;
        assert_eq!(response.status(), 200, "request {n}");
        assert_eq!(header(&response, "x-ratelimit-limit"), "15");
        assert_eq!(
            header(&response, "x-ratelimit-remaining"),
            (15 - n).to_string()
        );
        assert_eq!(header(&response, "x-ratelimit-reset"), "60");
    }
    let refused = app
        .post_json_as(&free, "/generate-image", json!({"prompt": "one too many"}))
        .await;
    assert_eq!(header(&refused, "retry-after"), "60");
    assert_eq!(header(&refused, "x-ratelimit-remaining"), "0");
    let body = expect_error(refused, 429, "rate_limit_exceeded").await;
    assert_eq!(body["details"]["limit"], "requests_per_minute");
    assert_eq!(body["details"]["requests_per_minute"], 15);
    assert_eq!(body["details"]["retry_after_seconds"], 60);

    clock.advance_ms(30_000);
    let still = app.get_as(&free, "/usage").await;
    assert_eq!(
        header(&still, "retry-after"),
        "30",
        "half the window has passed"
    );
    expect_error(still, 429, "rate_limit_exceeded").await;

    clock.advance_ms(30_000);
    let again = app.get_as(&free, "/usage").await;
    assert_eq!(again.status(), 200, "the first 15 have left the window");
    assert_eq!(header(&again, "x-ratelimit-remaining"), "14");
    assert_eq!(
        app.get("/usage").await.status(),
        200,
        "the paid key beside it was never limited"
    );
}

#[tokio::test]
async fn every_authenticated_response_carries_rate_limit_headers_errors_included() {
    let app = TestApp::offline().await;
    let responses = [
        app.post_json("/generate-image", json!({"prompt": "a fox"}))
            .await,
        app.post_json("/generate-image", json!({"prompt": ""}))
            .await,
        app.get("/images/img_01JF0000000000000000000000").await,
        app.get("/no-such-endpoint").await,
    ];
    let statuses: Vec<u16> = responses.iter().map(|r| r.status().as_u16()).collect();
    assert_eq!(statuses, [200, 400, 404, 404]);
    // Reading a stored image is not counted (it is not new work), but says where the key stands.
    let remaining = ["599", "598", "598", "597"];
    for (response, left) in responses.iter().zip(remaining) {
        assert_eq!(header(response, "x-ratelimit-limit"), "600");
        assert_eq!(header(response, "x-ratelimit-remaining"), left);
        assert!(
            header(response, "x-ratelimit-reset")
                .parse::<u64>()
                .unwrap()
                <= 60
        );
    }
}

#[tokio::test]
async fn configured_tier_numbers_replace_the_guides() {
    let clock = ManualClock::starting_now();
    let app = offline_at(&clock, |c| {
        c.tiers = toml::from_str("[paid]\nrequests_per_minute = 2\n").unwrap();
    })
    .await;
    assert_eq!(app.get("/usage").await.status(), 200);
    assert_eq!(app.get("/usage").await.status(), 200);
    expect_error(app.get("/usage").await, 429, "rate_limit_exceeded").await;
}

fn slow_generation(
    app: &TestApp,
    client: &reqwest::Client,
    prompt: &str,
) -> tokio::task::JoinHandle<u16> {
    let request = client
        .post(app.url("/generate-image"))
        .json(&json!({"prompt": prompt, "response_modalities": ["IMAGE"]}));
    tokio::spawn(async move { request.send().await.map_or(0, |r| r.status().as_u16()) })
}

#[tokio::test]
async fn a_sixth_request_in_flight_is_refused_with_the_concurrency_limit() {
    let fake = FakeGemini::start().await;
    let app = gemini_at(&ManualClock::starting_now(), &fake).await;
    let marker = "[[fake:slow_1500]]";
    let in_flight: Vec<_> = (0..5)
        .map(|i| slow_generation(&app, &app.client, &format!("fox {i} {marker}")))
        .collect();
    fake.wait_for_calls(marker, 5).await;

    let refused = app.get("/usage").await;
    assert_eq!(header(&refused, "retry-after"), "1");
    assert_eq!(
        header(&refused, "x-ratelimit-remaining"),
        "595",
        "a refused request is not counted"
    );
    let body = expect_error(refused, 429, "rate_limit_exceeded").await;
    assert_eq!(body["details"]["limit"], "concurrency");
    assert_eq!(body["details"]["max_concurrent"], 5);
    let other_key = client_with_key(Some(&app.create_key("paid").await));
    assert_eq!(
        app.get_as(&other_key, "/usage").await.status(),
        200,
        "another key has its own five"
    );

    for request in in_flight {
        assert_eq!(request.await.unwrap(), 200);
    }
    assert_eq!(
        app.get("/usage").await.status(),
        200,
        "the slots are free again"
    );
}

/// The guide's "Batch Processing" sample: ten prompts, at most five at a time.
#[tokio::test]
async fn the_guides_batch_of_ten_prompts_five_at_a_time_never_hits_a_limit_on_a_paid_key() {
    let fake = FakeGemini::start().await;
    let app = gemini_at(&ManualClock::starting_now(), &fake).await;
    let semaphore = Arc::new(tokio::sync::Semaphore::new(5));
    let batch: Vec<_> = (0..10)
        .map(|i| {
            let semaphore = Arc::clone(&semaphore);
            let request = app
                .client
                .post(app.url("/generate-image"))
                .json(&json!({"prompt": format!("product shot {i} [[fake:slow_150]]")}));
            tokio::spawn(async move {
                let _permit = semaphore.acquire_owned().await.unwrap();
                let response = request.send().await.unwrap();
                (
                    response.status().as_u16(),
                    response.json::<Value>().await.unwrap(),
                )
            })
        })
        .collect();
    for task in batch {
        let (status, body) = task.await.unwrap();
        assert_eq!(status, 200, "{body}");
        assert!(body["images"][0].is_string());
    }
    let (_, _, usage) = json_of(app.get("/usage").await).await;
    assert_eq!(usage["totals"]["requests"], 10);
}

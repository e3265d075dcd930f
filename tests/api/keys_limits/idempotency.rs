//! `Idempotency-Key`: repeats replay the stored result without an upstream call or a
//! second charge, also when they arrive together; a changed body is refused.

use imagegate::clock::ManualClock;
use serde_json::{Value, json};

use super::{gemini_at, header};
use crate::support::fake_gemini::FakeGemini;
use crate::support::{
    TestApp, client_with_key, expect_error, expect_invalid, file_part, json_of, png,
};

async fn post_with_key(
    app: &TestApp,
    client: &reqwest::Client,
    key: &str,
    body: Value,
) -> reqwest::Response {
    client
        .post(app.url("/generate-image"))
        .header("Idempotency-Key", key)
        .json(&body)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_repeated_request_replays_the_first_result_without_calling_upstream_or_charging() {
    let fake = FakeGemini::start().await;
    let app = gemini_at(&ManualClock::starting_now(), &fake).await;
    let body = json!({"prompt": "a lighthouse [[fake:png]]", "response_modalities": ["IMAGE"]});
    let (status, _, first) =
        json_of(post_with_key(&app, &app.client, "order-42", body.clone()).await).await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["cached"], false);

    let repeat = post_with_key(&app, &app.client, "order-42", body).await;
    assert_eq!(header(&repeat, "idempotent-replayed"), "true");
    let (status, request_id, second) = json_of(repeat).await;
    assert_eq!(status, 200);
    assert_eq!(second["image_ids"], first["image_ids"]);
    assert_eq!(second["images"], first["images"]);
    assert_eq!(second["usage"], first["usage"]);
    assert_eq!(second["cached"], true);
    assert_eq!(
        second["request_id"],
        request_id.as_str(),
        "the body names this request"
    );
    assert_eq!(
        fake.calls_for("a lighthouse").len(),
        1,
        "no second upstream call"
    );

    let (_, _, usage) = json_of(app.get("/usage").await).await;
    assert_eq!(usage["totals"]["requests"], 1, "charged once: {usage}");
    assert_eq!(usage["totals"]["cost_usd"], first["usage"]["cost_usd"]);
}

#[tokio::test]
async fn two_simultaneous_requests_with_one_idempotency_key_make_one_upstream_call() {
    let fake = FakeGemini::start().await;
    let app = gemini_at(&ManualClock::starting_now(), &fake).await;
    let body =
        json!({"prompt": "twin request [[fake:slow_400]]", "response_modalities": ["IMAGE"]});
    let (a, b) = tokio::join!(
        post_with_key(&app, &app.client, "same", body.clone()),
        post_with_key(&app, &app.client, "same", body),
    );
    let ((sa, _, a), (sb, _, b)) = (json_of(a).await, json_of(b).await);
    assert_eq!((sa, sb), (200, 200), "{a} {b}");
    assert_eq!(a["image_ids"], b["image_ids"]);
    assert_eq!(fake.calls_for("twin request").len(), 1);
}

#[tokio::test]
async fn the_same_idempotency_key_with_a_different_body_is_refused() {
    let fake = FakeGemini::start().await;
    let app = gemini_at(&ManualClock::starting_now(), &fake).await;
    let first = post_with_key(&app, &app.client, "k-1", json!({"prompt": "a red barn"})).await;
    assert_eq!(first.status(), 200);
    let changed = post_with_key(&app, &app.client, "k-1", json!({"prompt": "a blue barn"})).await;
    let body = expect_invalid(changed).await;
    assert_eq!(body["details"]["field"], "Idempotency-Key");
    assert!(fake.calls_for("a blue barn").is_empty());
}

#[tokio::test]
async fn a_result_is_replayed_for_24_hours_and_not_after() {
    let clock = ManualClock::starting_now();
    let fake = FakeGemini::start().await;
    let app = gemini_at(&clock, &fake).await;
    let body = json!({"prompt": "a day long", "response_modalities": ["IMAGE"]});
    let (_, _, first) =
        json_of(post_with_key(&app, &app.client, "daily", body.clone()).await).await;
    clock.advance_ms(24 * 3_600_000 - 1_000);
    let (_, _, replayed) =
        json_of(post_with_key(&app, &app.client, "daily", body.clone()).await).await;
    assert_eq!(replayed["image_ids"], first["image_ids"]);
    clock.advance_ms(1_000);
    let (status, _, fresh) = json_of(post_with_key(&app, &app.client, "daily", body).await).await;
    assert_eq!(status, 200);
    assert_ne!(fresh["image_ids"], first["image_ids"]);
    assert_eq!(fake.calls_for("a day long").len(), 2);
}

#[tokio::test]
async fn idempotency_keys_of_one_api_key_do_not_answer_another() {
    let fake = FakeGemini::start().await;
    let app = gemini_at(&ManualClock::starting_now(), &fake).await;
    let other = client_with_key(Some(&app.create_key("paid").await));
    let body = json!({"prompt": "two owners", "response_modalities": ["IMAGE"]});
    let (_, _, mine) =
        json_of(post_with_key(&app, &app.client, "shared-name", body.clone()).await).await;
    let (status, _, theirs) = json_of(post_with_key(&app, &other, "shared-name", body).await).await;
    assert_eq!(status, 200);
    assert_ne!(theirs["image_ids"], mine["image_ids"]);
    assert_eq!(fake.calls_for("two owners").len(), 2);
}

#[tokio::test]
async fn a_failed_upstream_call_is_not_stored_so_a_retry_runs_again() {
    let fake = FakeGemini::start().await;
    let app = gemini_at(&ManualClock::starting_now(), &fake).await;
    // Four failing attempts use up the first request's retries; the fifth succeeds.
    let body = json!({"prompt": "flaky [[fake:503:4]]", "response_modalities": ["IMAGE"]});
    let failed = post_with_key(&app, &app.client, "retry-me", body.clone()).await;
    expect_error(failed, 503, "upstream_unavailable").await;
    let retried = post_with_key(&app, &app.client, "retry-me", body.clone()).await;
    assert!(retried.headers().get("idempotent-replayed").is_none());
    let (status, _, result) = json_of(retried).await;
    assert_eq!(status, 200, "{result}");
    let replayed = post_with_key(&app, &app.client, "retry-me", body).await;
    let (_, _, replayed) = json_of(replayed).await;
    assert_eq!(replayed["image_ids"], result["image_ids"]);
    assert_eq!(fake.calls_for("flaky").len(), 5);
}

#[tokio::test]
async fn a_blocked_result_is_replayed_rather_than_paid_for_again() {
    let fake = FakeGemini::start().await;
    let app = gemini_at(&ManualClock::starting_now(), &fake).await;
    let body = json!({"prompt": "forbidden [[fake:image_safety]]"});
    let first = expect_error(
        post_with_key(&app, &app.client, "blocked", body.clone()).await,
        422,
        "content_blocked",
    )
    .await;
    let again = expect_error(
        post_with_key(&app, &app.client, "blocked", body).await,
        422,
        "content_blocked",
    )
    .await;
    assert_eq!(again["details"], first["details"]);
    assert_ne!(
        again["request_id"], first["request_id"],
        "each answer names its own request"
    );
    assert_eq!(fake.calls_for("forbidden").len(), 1);
}

#[tokio::test]
async fn a_form_rebuilt_for_a_retry_with_a_new_boundary_is_replayed() {
    let fake = FakeGemini::start().await;
    let app = gemini_at(&ManualClock::starting_now(), &fake).await;
    let form = || {
        reqwest::multipart::Form::new()
            .part("image", file_part(png(64, 64), "in.png"))
            .text("prompt", "make it dusk [[fake:png]]")
    };
    let mut ids = Vec::new();
    for _ in 0..2 {
        let response = app
            .client
            .post(app.url("/edit-image"))
            .header("Idempotency-Key", "edit-1")
            .multipart(form())
            .send()
            .await
            .unwrap();
        let (status, _, body) = json_of(response).await;
        assert_eq!(status, 200, "{body}");
        ids.push(body["image_ids"].clone());
    }
    assert_eq!(ids[0], ids[1]);
    assert_eq!(fake.calls_for("make it dusk").len(), 1);
}

#[tokio::test]
async fn an_unusable_idempotency_key_is_refused() {
    let app = TestApp::offline().await;
    let too_long = "k".repeat(256);
    let response = post_with_key(&app, &app.client, &too_long, json!({"prompt": "a fox"})).await;
    let body = expect_invalid(response).await;
    assert_eq!(body["details"]["field"], "Idempotency-Key");
}

#[tokio::test]
async fn a_replayed_async_submission_names_the_request_that_was_queued() {
    let app = TestApp::spawn(|c| c.provider = imagegate::config::ProviderChoice::Offline).await;
    let body = json!({"prompt": "a fox", "async": true});
    let (status, _, first) =
        json_of(post_with_key(&app, &app.client, "async-1", body.clone()).await).await;
    assert_eq!(status, 202, "{first}");
    let (status, _, again) = json_of(post_with_key(&app, &app.client, "async-1", body).await).await;
    assert_eq!(status, 202, "{again}");
    assert_eq!(again["request_id"], first["request_id"]);
    assert_eq!(again["status_url"], first["status_url"]);
    let status_url = again["status_url"].as_str().unwrap();
    let (status, _, queued) = json_of(app.get(status_url).await).await;
    assert_eq!(status, 200, "the named request exists: {queued}");
    assert_eq!(queued["request_id"], first["request_id"]);
}

#[tokio::test]
async fn a_replayed_error_keeps_the_shape_of_the_surface_that_was_called() {
    let app = TestApp::spawn(|c| c.provider = imagegate::config::ProviderChoice::Offline).await;
    let send = || {
        app.client
            .post(app.url("/v1/images/generations"))
            .header("Idempotency-Key", "openai-error-1")
            .json(&json!({"prompt": "", "model": "gpt-image-1"}))
            .send()
    };
    let first = send().await.unwrap();
    let status = first.status();
    let first: Value = first.json().await.unwrap();
    assert!(status.is_client_error(), "{status} {first}");
    assert!(
        first["error"]["message"].is_string(),
        "OpenAI's shape: {first}"
    );
    let again = send().await.unwrap();
    assert_eq!(header(&again, "idempotent-replayed"), "true");
    assert_eq!(again.status(), status);
    let again: Value = again.json().await.unwrap();
    assert_eq!(
        again["error"], first["error"],
        "still OpenAI's shape: {again}"
    );
}

//! Monitoring (docs/api.md#monitoring): `/health`, `/ready`, `/metrics` and `/stats`.

use std::sync::Arc;

use imagegate::clock::ManualClock;
use imagegate::config::{ProviderChoice, Secret};
use serde_json::{Value, json};

use crate::support::fake_gemini::{FAKE_API_KEY, FakeGemini};
use crate::support::{TestApp, client_with_key, expect_error, expect_invalid, json_of};

async fn metrics_text(app: &TestApp) -> String {
    let response = app.get_anonymously("/metrics").await;
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    response.text().await.unwrap()
}

/// The value of one series, e.g. `imagegate_upstream_calls_total{outcome="success"}`.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .map(|v| v.parse().unwrap())
}

async fn generate(app: &TestApp, prompt: &str) -> (u16, Value) {
    let body = json!({"prompt": prompt, "response_modalities": ["IMAGE"]});
    let (status, _, body) = json_of(app.post_json("/generate-image", body).await).await;
    (status, body)
}

#[tokio::test]
async fn health_ready_and_metrics_answer_without_a_key() {
    let app = TestApp::offline().await;
    let anonymous = client_with_key(None);

    for path in ["/health", "/ready"] {
        let response = app.get_as(&anonymous, path).await;
        let (status, _, body) = json_of(response).await;
        assert_eq!(status, 200, "{path}: {body}");
    }
    let (_, _, ready) = json_of(app.get_as(&anonymous, "/ready").await).await;
    assert_eq!(ready["status"], "ready");
    let mut checks = ready["checks"].clone();
    assert!(checks["age_seconds"].is_number(), "{checks}");
    checks.as_object_mut().unwrap().remove("age_seconds");
    assert_eq!(
        checks,
        json!({"database": "ok", "image_storage": "ok", "upstream": "ok", "limits": "ok", "provider": "offline"})
    );
    assert!(
        metrics_text(&app)
            .await
            .contains("# TYPE imagegate_http_requests_total counter")
    );
}

#[tokio::test]
async fn ready_is_503_in_the_error_shape_when_images_cannot_be_written() {
    let app = TestApp::offline().await;
    let images = app.data_dir.as_ref().unwrap().path().join("images");
    std::fs::remove_dir_all(&images).unwrap();
    // A file where the directory should be: writing into it fails, even for root.
    std::fs::write(&images, b"not a directory").unwrap();

    let body = expect_error(app.get("/ready").await, 503, "not_ready").await;

    assert_eq!(body["details"]["checks"]["image_storage"], "failed");
    assert_eq!(body["details"]["checks"]["database"], "ok");
    assert!(
        !body.to_string().contains("/tmp"),
        "no internal paths: {body}"
    );
}

#[tokio::test]
async fn requests_are_counted_by_route_template_never_by_raw_path() {
    let app = TestApp::offline().await;
    let unknown = "img_01JF0000000000000000000000";
    expect_error(
        app.get(&format!("/images/{unknown}")).await,
        404,
        "not_found",
    )
    .await;
    expect_error(app.get("/no/such/thing").await, 404, "not_found").await;

    let text = metrics_text(&app).await;

    let series =
        r#"imagegate_http_requests_total{endpoint="/images/{image_id}",method="GET",status="404"}"#;
    assert_eq!(sample(&text, series), Some(1.0), "{text}");
    assert!(!text.contains(unknown), "ids never become labels");
    assert!(!text.contains("/no/such/thing"));
    assert!(text.contains(r#"endpoint="unmatched""#));
    assert!(text.contains(r#"imagegate_http_request_duration_seconds_bucket{endpoint="/images/{image_id}",le="+Inf"} 1"#));
    assert!(
        text.contains("imagegate_http_requests_in_flight 1\n"),
        "the scrape itself"
    );
    assert!(text.contains("# HELP imagegate_queue_depth"));
    assert!(text.contains("imagegate_queue_depth 0\n"), "nothing queued");
}

#[tokio::test]
async fn queue_depth_counts_async_requests_waiting_to_run() {
    let app = TestApp::spawn(|c| {
        c.provider = ProviderChoice::Offline;
        c.jobs.workers = 0;
    })
    .await;
    for prompt in ["a fox", "a hare"] {
        let body = json!({"prompt": prompt, "async": true});
        assert_eq!(app.post_json("/generate-image", body).await.status(), 202);
    }

    let text = metrics_text(&app).await;

    assert_eq!(sample(&text, "imagegate_queue_depth"), Some(2.0), "{text}");
}

#[tokio::test]
async fn upstream_calls_retries_images_tokens_and_cost_are_counted() {
    let fake = FakeGemini::start().await;
    let app = TestApp::gemini(&fake).await;

    // Fails with 503 once, then succeeds on the retry.
    let (status, body) = generate(&app, "a fox [[fake:503:1]]").await;
    assert_eq!(status, 200, "{body}");

    let text = metrics_text(&app).await;
    let calls = |outcome: &str| {
        sample(
            &text,
            &format!(r#"imagegate_upstream_calls_total{{outcome="{outcome}"}}"#),
        )
    };
    assert_eq!(calls("server_error"), Some(1.0), "{text}");
    assert_eq!(calls("success"), Some(1.0));
    let retries = r#"imagegate_upstream_retries_total{outcome="server_error"}"#;
    assert_eq!(sample(&text, retries), Some(1.0));
    assert!(text.contains("imagegate_upstream_call_duration_seconds_count 2\n"));
    let model = body["model"].as_str().unwrap();
    let images = format!(r#"imagegate_images_generated_total{{model="{model}"}}"#);
    assert_eq!(sample(&text, &images), Some(1.0));
    let image_tokens = format!(r#"imagegate_tokens_total{{model="{model}",kind="image"}}"#);
    assert_eq!(
        sample(&text, &image_tokens),
        body["usage"]["image_tokens"].as_f64()
    );
    let cost = sample(
        &text,
        &format!(r#"imagegate_cost_usd_total{{model="{model}"}}"#),
    );
    assert!((cost.unwrap() - body["usage"]["cost_usd"].as_f64().unwrap()).abs() < 1e-12);
}

#[tokio::test]
async fn rate_limit_rejections_are_counted_by_limit() {
    let app = TestApp::spawn(|c| {
        c.provider = ProviderChoice::Offline;
        c.tiers = toml::from_str("[paid]\nrequests_per_minute = 1\n").unwrap();
    })
    .await;
    assert_eq!(app.get("/usage").await.status(), 200);
    expect_error(app.get("/usage").await, 429, "rate_limit_exceeded").await;

    let text = metrics_text(&app).await;

    let series = r#"imagegate_rate_limit_rejections_total{limit="requests_per_minute"}"#;
    assert_eq!(sample(&text, series), Some(1.0), "{text}");
}

#[tokio::test]
async fn stats_report_the_callers_generations_in_the_window_as_api_monitor_does() {
    let clock = ManualClock::starting_now();
    let data_dir = tempfile::tempdir().unwrap();
    let app = TestApp::spawn_full(data_dir, Arc::new(clock.clone()), |c| {
        c.provider = ProviderChoice::Offline;
    })
    .await;
    let (empty_status, _, empty) = json_of(app.get("/stats").await).await;
    assert_eq!(empty_status, 200);
    assert_eq!(empty["success_rate"], 0.0);
    assert_eq!(empty["avg_response_time"], 0.0);
    assert_eq!(empty["p95_response_time"], 0.0);
    assert_eq!(empty["window_minutes"], 60);

    assert_eq!(generate(&app, "a red fox").await.0, 200);
    assert_eq!(generate(&app, "a blue fox").await.0, 200);
    assert_eq!(generate(&app, "").await.0, 400);
    app.get("/usage").await; // not a generation: not in the statistics

    let (_, _, stats) = json_of(app.get("/stats?window_minutes=60").await).await;
    assert_eq!(stats["total_requests"], 3, "{stats}");
    assert_eq!(stats["successful_requests"], 2);
    assert_eq!(stats["success_rate"], 2.0 / 3.0);
    let (avg, p50, p95) = (
        stats["avg_response_time"].as_f64().unwrap(),
        stats["p50_response_time"].as_f64().unwrap(),
        stats["p95_response_time"].as_f64().unwrap(),
    );
    // Two successes: p50 is their mean; p95 lies between them, above the mean.
    assert!(
        avg > 0.0 && (p50 - avg).abs() < 1e-9 && p95 >= p50,
        "{stats}"
    );

    let other = client_with_key(Some(&app.create_key("paid").await));
    let (_, _, theirs) = json_of(app.get_as(&other, "/stats").await).await;
    assert_eq!(
        theirs["total_requests"], 0,
        "a key sees only its own requests"
    );

    clock.advance_ms(61 * 60_000);
    let (_, _, later) = json_of(app.get("/stats").await).await;
    assert_eq!(later["total_requests"], 0, "{later}");
    assert_eq!(later["success_rate"], 0.0);
    let (_, _, wider) = json_of(app.get("/stats?window_minutes=62").await).await;
    assert_eq!(wider["total_requests"], 3, "{wider}");
}

#[tokio::test]
async fn stats_window_must_be_1_to_1440_minutes() {
    let app = TestApp::offline().await;
    for bad in ["0", "1441", "abc", "-5", "1.5"] {
        let response = app.get(&format!("/stats?window_minutes={bad}")).await;
        let body = expect_invalid(response).await;
        assert_eq!(body["details"]["field"], "window_minutes", "{bad}");
        assert_eq!(body["details"]["max"], 1440);
    }
    let body = expect_invalid(app.get("/stats?window=5").await).await;
    assert_eq!(body["details"]["field"], "window");
    expect_error(app.get_anonymously("/stats").await, 401, "unauthorized").await;
}

#[tokio::test]
async fn ready_probes_the_gemini_upstream_with_a_listing_never_a_generation() {
    let fake = FakeGemini::start().await;
    let app = TestApp::spawn(|c| {
        c.provider = ProviderChoice::Gemini;
        c.google_api_key = Some(Secret::new(FAKE_API_KEY));
        c.gemini.base_url = fake.base_url();
    })
    .await;

    let (status, _, body) = json_of(app.get("/ready").await).await;

    assert_eq!(status, 200, "{body}");
    assert_eq!(body["checks"]["provider"], "gemini");
    assert_eq!(body["checks"]["upstream"], "ok");
    assert!(fake.requests().is_empty(), "nothing generated per probe");
    assert!(!fake.list_requests().is_empty(), "a model listing");
}

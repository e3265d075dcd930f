//! Dependencies that go away: PostgreSQL and Redis made unreachable through a TCP proxy
//! the test controls (the machine's services keep running), and PostgreSQL absent at start.

use std::time::Duration;

use imagegate::app::App;
use imagegate::config::{Config, ProviderChoice, ServiceUrl};
use serde_json::json;

use super::tcp_proxy::TcpProxy;
use crate::support::services::{PgSchema, RedisPrefix};
use crate::support::{TestApp, expect_error, json_of};

/// `url` with its host and port replaced by the proxy's; the proxy forwards to the original.
async fn through_proxy(url: &str) -> (String, TcpProxy) {
    let mut parsed = reqwest::Url::parse(url).unwrap();
    let target = format!(
        "{}:{}",
        parsed.host_str().unwrap(),
        parsed.port_or_known_default().unwrap_or(5432)
    );
    let proxy = TcpProxy::start(target).await;
    parsed.set_host(Some("127.0.0.1")).unwrap();
    parsed.set_port(Some(proxy.port)).unwrap();
    (parsed.to_string(), proxy)
}

/// Guards against the hang the issue describes (10 s per request); not a speed test.
async fn promptly<T>(what: &str, work: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(5), work)
        .await
        .unwrap_or_else(|_| panic!("{what} did not answer within 5 s"))
}

#[ignore = "needs PostgreSQL"]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_unreachable_mid_run_answers_503_with_retry_after_and_metrics_still_answer() {
    let schema = PgSchema::create().await;
    let (url, proxy) = through_proxy(&schema.url).await;
    let app = TestApp::spawn(|c| {
        c.provider = ProviderChoice::Offline;
        c.database_url = Some(ServiceUrl::new(url));
        c.single_instance = true;
        c.database.acquire_timeout_secs = 0.5;
        c.readiness.cache_secs = 0.0;
    })
    .await;
    let (status, _, body) = json_of(app.get("/usage").await).await;
    assert_eq!(status, 200, "{body}");

    proxy.cut();

    let response = promptly("a request during the outage", app.get("/usage")).await;
    let retry_after = response.headers().get("retry-after").cloned();
    let body = expect_error(response, 503, "storage_unavailable").await;
    assert_eq!(retry_after.unwrap(), "5", "{body}");
    let generation = promptly(
        "a generation during the outage",
        app.post_json(
            "/generate-image",
            json!({"prompt": "a fox", "model": "gemini-3.1-flash-image", "image_size": "512"}),
        ),
    )
    .await;
    expect_error(generation, 503, "storage_unavailable").await;
    let metrics = promptly("/metrics during the outage", app.get("/metrics")).await;
    assert_eq!(metrics.status(), 200);
    assert!(
        metrics
            .text()
            .await
            .unwrap()
            .contains("imagegate_http_requests_total")
    );
    let ready = promptly("/ready during the outage", app.get("/ready")).await;
    let body = expect_error(ready, 503, "not_ready").await;
    assert_eq!(body["details"]["checks"]["database"], "failed", "{body}");
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains("imagegate_dependency_up{dependency=\"database\"} 0"),
        "{metrics}"
    );

    proxy.restore();
    let usage = || async { app.get("/usage").await.status().as_u16() };
    let status = crate::support::poll_within(5.0, usage, |status| *status == 200).await;
    assert_eq!(
        status, 200,
        "requests succeed again once PostgreSQL is back"
    );
}

#[tokio::test]
async fn postgres_unreachable_at_start_says_why_and_where() {
    // A port nobody listens on: connections are refused.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempfile::tempdir().unwrap();
    let config = Config {
        host: "127.0.0.1".into(),
        port: 0,
        provider: ProviderChoice::Offline,
        data_dir: dir.path().to_owned(),
        database_url: Some(ServiceUrl::new(format!(
            "postgres://postgres@127.0.0.1:{port}/test"
        ))),
        single_instance: true,
        ..Config::default()
    };

    let err = App::build(config).await.err().expect("start fails");

    let message = format!("{err:#}");
    assert!(
        message.contains(&format!("cannot connect to PostgreSQL at 127.0.0.1:{port}")),
        "{message}"
    );
    assert!(
        message.to_ascii_lowercase().contains("refused"),
        "{message}"
    );
    assert!(!message.contains("pool timed out"), "{message}");
}

#[ignore = "needs Redis"]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_mid_run_degrades_to_local_counting_without_a_stall_and_says_so() {
    let redis = RedisPrefix::create().await;
    let (url, proxy) = through_proxy(&redis.url).await;
    let app = TestApp::spawn(|c| {
        c.provider = ProviderChoice::Offline;
        redis.configure(c);
        c.redis_url = Some(ServiceUrl::new(url));
        c.readiness.cache_secs = 0.0;
    })
    .await;
    let (status, _, body) = json_of(app.get("/ready").await).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["checks"]["limits"], "ok", "{body}");

    proxy.cut();
    // The first request finds Redis gone and switches the instance to local counting.
    assert_eq!(app.get("/usage").await.status(), 200);
    // Before, each of these paid Redis's reconnect timeouts (0.5–1.1 s): 20 would take
    // 10 s or more. Degraded, none of them tries Redis.
    promptly("20 requests with Redis down", async {
        for _ in 0..20 {
            let response = app.get("/usage").await;
            assert_eq!(response.status(), 200);
            assert!(response.headers().contains_key("x-ratelimit-remaining"));
        }
    })
    .await;

    let (status, _, body) = json_of(app.get("/ready").await).await;
    assert_eq!(status, 200, "still serving: {body}");
    assert_eq!(body["checks"]["limits"], "degraded", "{body}");
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(metrics.contains("imagegate_limits_degraded 1"), "{metrics}");

    proxy.restore();
    let ready = || async { json_of(app.get("/ready").await).await.2["checks"]["limits"].clone() };
    let limits = crate::support::poll_within(5.0, ready, |limits| *limits == "ok").await;
    assert_eq!(limits, "ok", "shared again once Redis answers");
}

//! `/ready` reports what the service can do, component by component, from a cached check:
//! an upstream on a closed port or one that rejects the gateway's key makes it unready.

use imagegate::config::{ProviderChoice, Secret};

use crate::support::fake_gemini::{FAKE_API_KEY, FakeGemini};
use crate::support::{TestApp, expect_error, json_of};

async fn gemini_app(base_url: String, key: &str, cache_secs: f64) -> TestApp {
    let key = key.to_owned();
    TestApp::spawn(move |c| {
        c.provider = ProviderChoice::Gemini;
        c.google_api_key = Some(Secret::new(key));
        c.gemini.base_url = base_url;
        c.readiness.cache_secs = cache_secs;
        c.readiness.upstream_probe_secs = cache_secs;
        // The model registry lists models once, at start, and never again.
        c.registry.refresh_secs = 0;
    })
    .await
}

/// The listings made so far, once the registry's start-up listing has been made.
async fn registry_listed(fake: &FakeGemini) -> usize {
    let listed = || std::future::ready(fake.list_requests().len());
    let listed = crate::support::poll_within(2.0, listed, |listed| *listed > 0).await;
    assert!(listed > 0, "the model registry never listed the models");
    listed
}

#[tokio::test]
async fn ready_is_false_with_the_upstream_on_a_closed_port() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let app = gemini_app(format!("http://127.0.0.1:{port}"), FAKE_API_KEY, 0.0).await;

    let body = expect_error(app.get("/ready").await, 503, "not_ready").await;

    let checks = &body["details"]["checks"];
    assert_eq!(checks["upstream"], "failed", "{body}");
    assert_eq!(checks["database"], "ok", "{body}");
    assert_eq!(checks["image_storage"], "ok", "{body}");
}

#[tokio::test]
async fn ready_is_false_when_the_upstream_rejects_the_key() {
    let fake = FakeGemini::start().await;
    let app = gemini_app(fake.base_url(), "AIza-revoked-key", 0.0).await;

    let body = expect_error(app.get("/ready").await, 503, "not_ready").await;

    assert_eq!(body["details"]["checks"]["upstream"], "failed", "{body}");
}

#[tokio::test]
async fn ready_is_cached_so_probes_neither_write_objects_nor_call_upstream_each_time() {
    let fake = FakeGemini::start().await;
    let app = gemini_app(fake.base_url(), FAKE_API_KEY, 60.0).await;
    let before = registry_listed(&fake).await;

    let mut ages = Vec::new();
    for _ in 0..5 {
        let (status, _, body) = json_of(app.get("/ready").await).await;
        assert_eq!(status, 200, "{body}");
        for component in ["database", "image_storage", "upstream", "limits"] {
            assert_eq!(body["checks"][component], "ok", "{component} in {body}");
        }
        ages.push(body["checks"]["age_seconds"].as_f64().unwrap());
    }

    assert!(fake.requests().is_empty(), "nothing generated");
    let probes = fake.list_requests().len() - before;
    assert_eq!(probes, 1, "one upstream probe for five /ready calls");
    assert_eq!(ages[0], 0.0, "the first answer is fresh");
    assert!(ages[4] > 0.0, "later answers come from the cache: {ages:?}");
}

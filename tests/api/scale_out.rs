//! Two instances on different ports sharing PostgreSQL, Redis and S3 behave as one
//! service: a chat continues on the other instance, the free tier's 15 a minute holds
//! across both, and a request accepted by an instance that is then killed completes on
//! the other.

use std::sync::Arc;

use imagegate::clock::{Clock, ManualClock, SystemClock};
use imagegate::config::{Config, ProviderChoice};
use serde_json::{Value, json};
use tokio::process::Child;

use crate::support::fake_gemini::{FakeGemini, FakeOptions};
use crate::support::process;
use crate::support::services::{PgSchema, RedisPrefix, S3Bucket};
use crate::support::{TestApp, client_with_key, json_of, on_gemini};

/// PostgreSQL, Redis and S3, each of its own for one test.
struct Shared {
    pg: PgSchema,
    redis: RedisPrefix,
    s3: S3Bucket,
}

impl Shared {
    async fn create() -> Self {
        Self {
            pg: PgSchema::create().await,
            redis: RedisPrefix::create().await,
            s3: S3Bucket::create().await,
        }
    }

    fn configure(&self, config: &mut Config) {
        config.database_url = Some(self.pg.database_url());
        self.redis.configure(config);
        self.s3.configure(config);
    }

    /// An instance with a data directory of its own: nothing is shared through files.
    /// Two instances on the shared setup, both in front of `fake`.
    async fn gemini_pair(&self, fake: &FakeGemini) -> (TestApp, TestApp) {
        let a = (self.instance(Arc::new(SystemClock), on_gemini(fake, 20.0))).await;
        let b = (self.instance(Arc::new(SystemClock), on_gemini(fake, 20.0))).await;
        (a, b)
    }

    async fn instance(&self, clock: Arc<dyn Clock>, extra: impl FnOnce(&mut Config)) -> TestApp {
        let dir = tempfile::tempdir().unwrap();
        TestApp::spawn_full(dir, clock, |c| {
            self.configure(c);
            extra(c);
        })
        .await
    }
}

#[ignore = "needs PostgreSQL, Redis and moto (tests/requirements.txt)"]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chat_session_created_on_one_instance_continues_on_the_other() {
    let shared = Shared::create().await;
    // Strict mode: a turn is refused unless its history carries the images and thought
    // signatures of earlier turns byte for byte, so B must read A's image from S3.
    let fake = FakeGemini::start_with(FakeOptions {
        strict_signatures: true,
        ..Default::default()
    })
    .await;
    let (a, b) = shared.gemini_pair(&fake).await;
    assert_ne!(a.base, b.base);
    // One key, issued through A's database, used on both.
    let on_b = client_with_key(Some(&a.key));

    let (status, _, created) = json_of(
        a.post_json(
            "/chat/create",
            json!({"system_prompt": "You refine images."}),
        )
        .await,
    )
    .await;
    assert_eq!(status, 200, "{created}");
    let session = created["session_id"].as_str().unwrap();
    let (status, _, first) = json_of(
        a.post_json(
            &format!("/chat/{session}/message"),
            json!({"message": "draw a cat [[fake:thoughts]]"}),
        )
        .await,
    )
    .await;
    assert_eq!(status, 200, "{first}");

    let (status, _, second) = json_of(
        b.post_json_as(
            &on_b,
            &format!("/chat/{session}/message"),
            json!({"message": "make it blue"}),
        )
        .await,
    )
    .await;
    assert_eq!(status, 200, "the second turn runs on B: {second}");
    assert_eq!(second["turn"], 2);
    let history: Value = b
        .get_as(&on_b, &format!("/chat/{session}"))
        .await
        .json()
        .await
        .unwrap();
    let roles: Vec<&str> = history["turns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["role"].as_str().unwrap())
        .collect();
    assert_eq!(roles, ["user", "model", "user", "model"]);
    let image = first["image_ids"][0].as_str().unwrap();
    let served = b.get_as(&on_b, &format!("/images/{image}")).await;
    assert_eq!(served.status(), 200, "B serves the image A stored");
    assert_eq!(fake.requests().len(), 2);
}

#[ignore = "needs PostgreSQL, Redis and moto (tests/requirements.txt)"]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_free_tier_limit_of_15_a_minute_holds_across_both_instances() {
    let shared = Shared::create().await;
    let clock = ManualClock::starting_now();
    let a = shared
        .instance(Arc::new(clock.clone()), |c| {
            c.provider = ProviderChoice::Offline
        })
        .await;
    let b = shared
        .instance(Arc::new(clock.clone()), |c| {
            c.provider = ProviderChoice::Offline
        })
        .await;
    let free = client_with_key(Some(&a.create_key("free").await));
    let call = |app: &TestApp| {
        free.post(app.url("/generate-image"))
            .json(&json!({"prompt": "a small red square"}))
            .send()
    };
    for i in 0..15 {
        let app = if i % 2 == 0 { &a } else { &b };
        let response = call(app).await.unwrap();
        assert_eq!(response.status(), 200, "request {i}");
        assert_eq!(
            response.headers()["x-ratelimit-remaining"],
            (14 - i).to_string().as_str()
        );
    }
    for app in [&a, &b] {
        let refused = call(app).await.unwrap();
        assert_eq!(
            refused.status(),
            429,
            "the 16th request in a minute, on either instance"
        );
        assert!(refused.headers().contains_key("retry-after"));
    }
    clock.advance_ms(60_000);
    assert_eq!(
        call(&b).await.unwrap().status(),
        200,
        "a minute later the window has room again"
    );
}

/// The real binary with the shared services, as a second machine would run it.
async fn start_process(
    shared: &Shared,
    fake: &FakeGemini,
    dir: &std::path::Path,
) -> (Child, String) {
    let mut config = Config::default();
    shared.configure(&mut config);
    let s3 = &config.object_store;
    let mut command = process::serve_gemini(dir, &fake.base_url());
    command
        .args([
            "--database-url",
            &shared.pg.url,
            "--redis-url",
            &shared.redis.url,
        ])
        .args(["--object-store-url", &shared.s3.url])
        .env("IMAGEGATE_REDIS_KEY_PREFIX", &shared.redis.prefix)
        .env(
            "IMAGEGATE_OBJECT_STORE_ENDPOINT",
            s3.endpoint.as_deref().unwrap(),
        )
        .env("IMAGEGATE_OBJECT_STORE_ALLOW_HTTP", "true")
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("IMAGEGATE_JOBS_LEASE_SECS", "1.5")
        .env("IMAGEGATE_UPSTREAM_DEADLINE_SECS", "30");
    let (child, base, fields) = process::start(&mut command).await;
    let storage = fields["storage"].as_str().unwrap_or_default();
    assert!(
        storage.starts_with("PostgreSQL") && storage.contains("s3://"),
        "{storage}"
    );
    assert!(
        !storage.contains("testing"),
        "no credentials in the log: {storage}"
    );
    (child, base)
}

#[ignore = "needs PostgreSQL, Redis and moto (tests/requirements.txt)"]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_accepted_by_a_killed_instance_completes_on_the_other() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let shared = Shared::create().await;
    let fake = FakeGemini::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (mut a, a_base) = start_process(&shared, &fake, dir.path()).await;

    let id = process::submit_async(
        &a_base,
        json!({"prompt": "a lighthouse at dusk [[fake:slow_3000]]", "async": true}),
    )
    .await;
    // A's worker has the request upstream: the fake has seen the call.
    fake.wait_for_calls("lighthouse", 1).await;
    let status = process::request_status(&a_base, &id).await;
    assert_eq!(status["status"], "running");
    a.start_kill().unwrap();
    a.wait().await.unwrap();

    // B shares nothing with A but the services; its data directory is new.
    let b = shared
        .instance(Arc::new(SystemClock), |c| {
            on_gemini(&fake, 20.0)(c);
            c.jobs.lease_secs = 1.5;
            c.jobs.poll_ms = 50;
        })
        .await;
    let last = process::finished_on(&b.base, &id).await;
    assert_eq!(last["status"], "succeeded", "{last}");
    assert!(
        last["result"]["images"][0]
            .as_str()
            .is_some_and(|i| !i.is_empty())
    );
    assert_eq!(
        fake.calls_for("lighthouse").len(),
        2,
        "A's attempt died; B's succeeded"
    );
}

#[ignore = "needs PostgreSQL, Redis and moto (tests/requirements.txt)"]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_given_the_same_idempotency_key_and_body_at_once_run_it_once() {
    let shared = Shared::create().await;
    let fake = FakeGemini::start().await;
    let (a, b) = shared.gemini_pair(&fake).await;
    let client = client_with_key(Some(&a.key));
    // Slow upstream: the second request arrives while the first is still running, which
    // is when two instances each missed the stored result and both called upstream.
    let body = json!({"prompt": "a lighthouse at dusk [[fake:slow_1500]]"});
    let send = |base: &str| {
        client
            .post(format!("{base}/generate-image"))
            .header("Idempotency-Key", "same-key-on-two-instances")
            .json(&body)
            .send()
    };
    let (on_a, on_b) = tokio::join!(send(&a.base), send(&b.base));
    let (status_a, _, mut answer_a) = json_of(on_a.unwrap()).await;
    let (status_b, _, mut answer_b) = json_of(on_b.unwrap()).await;
    assert_eq!((status_a, status_b), (200, 200), "{answer_a} {answer_b}");
    assert_eq!(
        fake.calls_for("a lighthouse at dusk").len(),
        1,
        "one upstream call for both"
    );
    // The same result; only which request it answers, and whether it was replayed, differ.
    for answer in [&mut answer_a, &mut answer_b] {
        let object = answer.as_object_mut().unwrap();
        object.remove("request_id");
        object.remove("cached");
    }
    assert_eq!(answer_a, answer_b);
}

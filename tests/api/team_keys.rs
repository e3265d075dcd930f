//! Keys a team hands out (docs/keys.md): scopes, budgets reserved before each upstream
//! call (on SQLite, and on PostgreSQL across two instances), expiry, rotation, the admin
//! API and usage across keys.

use std::sync::Arc;

use imagegate::clock::{Clock, ManualClock, SystemClock};
use imagegate::config::{Config, ProviderChoice, Secret};
use serde_json::{Value, json};

use crate::support::fake_gemini::FakeGemini;
use crate::support::services::{PgSchema, S3Bucket};
use crate::support::{
    TestApp, admin_create_key, client_with_key, expect_error, expect_invalid, json_of, on_gemini,
    price,
};

use crate::support::ADMIN_TOKEN as ADMIN;

/// Pro at 4K costs exactly $0.04 here, worst case and real alike: 2000 image tokens at
/// $20 per million, input and thoughts free.
fn priced_pro(config: &mut Config) {
    price(config, "gemini-3-pro-image", "4K", 2000, 0.0);
}

fn with_fake(fake: &FakeGemini) -> impl Fn(&mut Config) + Clone {
    let gemini = on_gemini(fake, 20.0);
    move |c: &mut Config| {
        gemini(c);
        c.auth.admin_token = Some(Secret::new(ADMIN));
        priced_pro(c);
    }
}

fn admin() -> reqwest::Client {
    client_with_key(Some(ADMIN))
}

/// Creates a key through the admin API; returns (key, key_id).
async fn create_key(app: &TestApp, body: Value) -> (String, String) {
    let created = admin_create_key(app, &body).await;
    (
        created["key"].as_str().unwrap().to_owned(),
        created["key_id"].as_str().unwrap().to_owned(),
    )
}

/// Rotates a key through the admin API with `grace_secs` for the old one; the answer.
async fn rotate(app: &TestApp, key_id: &str, grace_secs: u64) -> Value {
    let (status, _, rotated) = json_of(
        app.post_json_as(
            &admin(),
            &format!("/admin/keys/{key_id}/rotate"),
            json!({"grace_secs": grace_secs}),
        )
        .await,
    )
    .await;
    assert_eq!(status, 201, "{rotated}");
    rotated
}

fn pro_4k() -> Value {
    json!({"prompt": "a lighthouse", "model": "gemini-3-pro-image", "image_size": "4K"})
}

#[tokio::test]
async fn a_scoped_key_is_refused_on_other_endpoints_and_models_before_upstream() {
    let fake = FakeGemini::start().await;
    let app = TestApp::spawn(with_fake(&fake)).await;
    let (key, _) = create_key(
        &app,
        json!({"scopes": ["generate"], "models": ["gemini-3.1-flash-image"]}),
    )
    .await;
    let client = client_with_key(Some(&key));
    let form = reqwest::multipart::Form::new()
        .text("prompt", "make it blue")
        .part(
            "image",
            crate::support::file_part(crate::support::png(8, 8), "a.png"),
        );
    let edit = client
        .post(app.url("/edit-image"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    let body = expect_error(edit, 403, "forbidden").await;
    assert_eq!(body["details"]["scope"], "edit");
    let native = app
        .post_json_as(
            &client,
            "/v1beta/models/gemini-3.1-flash-image:generateContent",
            json!({"contents": [{"parts": [{"text": "x"}]}]}),
        )
        .await;
    assert_eq!(native.status(), 403);
    let other_model = client
        .post(app.url("/generate-image"))
        .json(&pro_4k())
        .send()
        .await
        .unwrap();
    let body = expect_error(other_model, 403, "forbidden").await;
    assert_eq!(body["details"]["model"], "gemini-3-pro-image");
    assert!(fake.requests().is_empty(), "nothing went upstream");

    let allowed = app
        .post_json_as(
            &client,
            "/generate-image",
            json!({"prompt": "a lighthouse", "model": "gemini-3.1-flash-image"}),
        )
        .await;
    assert_eq!(allowed.status(), 200);
    assert_eq!(fake.requests().len(), 1);
    let (_, _, me) = json_of(app.get_as(&client, "/keys/me").await).await;
    assert_eq!(me["scopes"], json!(["generate"]));
}

/// Fires `n` requests at once, spread over `apps`; returns the statuses.
async fn concurrently(apps: &[&TestApp], key: &str, n: usize) -> Vec<u16> {
    let client = client_with_key(Some(key));
    let calls = (0..n).map(|i| {
        let url = apps[i % apps.len()].url("/generate-image");
        let client = client.clone();
        async move {
            let response = client.post(url).json(&pro_4k()).send().await.unwrap();
            let status = response.status().as_u16();
            if status != 200 {
                let body: Value = response.json().await.unwrap();
                assert_eq!(status, 402, "{body}");
                assert_eq!(body["error"], "budget_exceeded");
                assert_eq!(body["details"]["limit_usd"], 0.1);
                assert!(
                    body["details"]["resets_at"]
                        .as_str()
                        .unwrap()
                        .ends_with("T00:00:00Z")
                );
            }
            status
        }
    });
    futures_util::future::join_all(calls).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ten_cent_budget_admits_two_four_cent_calls_and_refuses_the_rest_before_upstream() {
    let fake = FakeGemini::start().await;
    let app = TestApp::spawn(with_fake(&fake)).await;
    let (key, key_id) = create_key(
        &app,
        json!({"daily_budget_usd": 0.10, "max_concurrent": 10, "requests_per_minute": 100}),
    )
    .await;
    let statuses = concurrently(&[&app], &key, 6).await;
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        2,
        "{statuses:?}"
    );
    assert_eq!(
        fake.requests().len(),
        2,
        "refused calls never went upstream"
    );

    let client = client_with_key(Some(&key));
    let response = app.get_as(&client, "/keys/me").await;
    assert_eq!(
        response.headers()["x-imagegate-budget-remaining"],
        "0.020000"
    );
    let (_, _, me) = json_of(response).await;
    assert_eq!(me["budget"]["daily"]["spent_usd"], 0.08, "{me}");
    let (_, _, usage) = json_of(
        app.get_as(&admin(), &format!("/admin/usage?key_id={key_id}"))
            .await,
    )
    .await;
    assert_eq!(usage["total_cost_usd"], 0.08, "{usage}");
}

#[ignore = "needs PostgreSQL and moto (tests/requirements.txt)"]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_on_postgresql_never_overspend_a_shared_budget() {
    let pg = PgSchema::create().await;
    // Two instances share bytes as well as the database (a shared database with local
    // bytes is refused at start).
    let s3 = S3Bucket::create().await;
    let fake = FakeGemini::start().await;
    let shared = |c: &mut Config| {
        with_fake(&fake)(c);
        c.database_url = Some(pg.database_url());
        s3.configure(c);
    };
    let a = TestApp::spawn_full(tempfile::tempdir().unwrap(), Arc::new(SystemClock), shared).await;
    let b = TestApp::spawn_full(tempfile::tempdir().unwrap(), Arc::new(SystemClock), shared).await;
    let (key, _) = create_key(
        &a,
        json!({"daily_budget_usd": 0.10, "max_concurrent": 10, "requests_per_minute": 100}),
    )
    .await;
    let statuses = concurrently(&[&a, &b], &key, 8).await;
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        2,
        "{statuses:?}"
    );
    assert_eq!(fake.requests().len(), 2);
}

#[tokio::test]
async fn an_expired_key_and_a_rotated_key_past_its_grace_get_401_saying_why() {
    let clock = ManualClock::starting_now();
    let app = TestApp::spawn_full(tempfile::tempdir().unwrap(), Arc::new(clock.clone()), |c| {
        c.provider = ProviderChoice::Offline;
        c.auth.admin_token = Some(Secret::new(ADMIN));
    })
    .await;
    let in_an_hour = imagegate::clock::rfc3339(clock.now_ms() + 3_600_000);
    let (expiring, _) = create_key(&app, json!({"expires_at": in_an_hour})).await;
    let (old, old_id) = create_key(
        &app,
        json!({"scopes": ["generate"], "metadata": {"team": "web"}}),
    )
    .await;
    let me = |key: &str| {
        let client = client_with_key(Some(key));
        let url = app.url("/keys/me");
        async move { client.get(url).send().await.unwrap() }
    };
    assert_eq!(me(&expiring).await.status(), 200);

    let rotated = rotate(&app, &old_id, 600).await;
    let new = rotated["key"].as_str().unwrap().to_owned();
    assert_eq!(rotated["scopes"], json!(["generate"]), "same settings");
    assert_eq!(rotated["metadata"]["team"], "web");
    assert_eq!(me(&old).await.status(), 200, "within the grace period");
    assert_eq!(me(&new).await.status(), 200);

    clock.advance_ms(601_000);
    let body = expect_error(me(&old).await, 401, "unauthorized").await;
    assert!(
        body["message"].as_str().unwrap().contains("rotated"),
        "{body}"
    );
    assert_eq!(me(&new).await.status(), 200);

    clock.advance_ms(3_600_000);
    let body = expect_error(me(&expiring).await, 401, "unauthorized").await;
    assert!(
        body["message"].as_str().unwrap().contains("expired"),
        "{body}"
    );
}

#[tokio::test]
async fn the_admin_api_needs_its_own_token_and_is_absent_without_one() {
    let off = TestApp::offline().await;
    let response = off.get_as(&admin(), "/admin/keys").await;
    expect_error(response, 404, "not_found").await;

    let app = TestApp::spawn(|c| {
        c.provider = ProviderChoice::Offline;
        c.auth.admin_token = Some(Secret::new(ADMIN));
    })
    .await;
    for client in [
        client_with_key(None),
        client_with_key(Some("admin-token-for-tests-0123456789abcdeX")),
        // An ordinary key, even a paid one, is not the admin token.
        client_with_key(Some(&app.key)),
    ] {
        let response = app.get_as(&client, "/admin/keys").await;
        expect_error(response, 401, "unauthorized").await;
    }
    let (status, _, listed) = json_of(app.get_as(&admin(), "/admin/keys").await).await;
    assert_eq!(status, 200);
    let keys = listed["keys"].as_array().unwrap();
    assert!(
        keys.iter()
            .all(|k| k.get("key").is_none() && k["shown"].is_string())
    );

    let (_, key_id) = create_key(&app, json!({"name": "ci", "metadata": {"owner": "ana"}})).await;
    let (status, _, updated) = json_of(
        admin()
            .patch(app.url(&format!("/admin/keys/{key_id}")))
            .json(&json!({"monthly_budget_usd": 5, "requests_per_minute": 3}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{updated}");
    assert_eq!(updated["monthly_budget_usd"], 5.0);
    assert_eq!(updated["metadata"]["owner"], "ana", "kept");
    let (_, _, got) = json_of(app.get_as(&admin(), &format!("/admin/keys/{key_id}")).await).await;
    assert_eq!(got["requests_per_minute"], 3);
    let revoked = admin()
        .delete(app.url(&format!("/admin/keys/{key_id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 200);
}

#[tokio::test]
async fn hostile_key_settings_are_refused_with_the_field_at_fault() {
    let app = TestApp::spawn(|c| {
        c.provider = ProviderChoice::Offline;
        c.auth.admin_token = Some(Secret::new(ADMIN));
    })
    .await;
    let huge: serde_json::Map<String, Value> = (0..1000)
        .map(|i| (format!("k{i}"), json!("x".repeat(1000))))
        .collect();
    for (body, field) in [
        (json!({"metadata": huge}), Some("metadata")),
        (
            json!({"metadata": {"owner": "x".repeat(100_000)}}),
            Some("metadata"),
        ),
        (json!({"daily_budget_usd": -0.01}), Some("daily_budget_usd")),
        (json!({"monthly_budget_usd": "lots"}), None),
        (
            json!({"scopes": ["generate", "everything"]}),
            Some("scopes"),
        ),
        (json!({"expires_at": "next tuesday"}), Some("expires_at")),
        (json!({"expires_at": 12}), None),
        (json!({"tier": "gold"}), Some("tier")),
        (json!({"owner": "unknown field"}), None),
    ] {
        let response = admin()
            .post(app.url("/admin/keys"))
            .json(&body)
            .send()
            .await
            .unwrap();
        let error = expect_invalid(response).await;
        if let Some(field) = field {
            assert_eq!(error["details"]["field"], field, "{error}");
        }
    }
    let response = app
        .post_json_as(
            &admin(),
            "/admin/keys/key_nope/rotate",
            json!({"grace_secs": 10}),
        )
        .await;
    expect_error(response, 404, "not_found").await;
}

#[tokio::test]
async fn usage_is_reported_across_keys_by_key_day_and_model() {
    let app = TestApp::spawn(|c| {
        c.provider = ProviderChoice::Offline;
        c.auth.admin_token = Some(Secret::new(ADMIN));
    })
    .await;
    let (first, first_id) = create_key(&app, json!({"name": "first"})).await;
    let (second, second_id) = create_key(&app, json!({"name": "second"})).await;
    for key in [&first, &second, &second] {
        let response = client_with_key(Some(key))
            .post(app.url("/generate-image"))
            .json(&json!({"prompt": "a lighthouse"}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }
    let (_, _, all) = json_of(app.get_as(&admin(), "/admin/usage").await).await;
    let rows = all["rows"].as_array().unwrap();
    let requests = |id: &str| {
        rows.iter()
            .filter(|r| r["key_id"] == id)
            .map(|r| r["requests"].as_u64().unwrap())
            .sum::<u64>()
    };
    assert_eq!((requests(&first_id), requests(&second_id)), (1, 2), "{all}");
    assert!(
        rows.iter()
            .all(|r| r["date"].is_string() && r["model"].is_string())
    );
    let (_, _, one) = json_of(
        app.get_as(&admin(), &format!("/admin/usage?key_id={first_id}"))
            .await,
    )
    .await;
    assert!(
        one["rows"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["key_id"] == first_id.as_str())
    );
    let response = app.get_as(&admin(), "/admin/usage?days=-3").await;
    expect_invalid(response).await;
}

/// 3.1 Flash at 1K here: its image is 2000 tokens at $20/M ($0.04, input free); with a
/// thinking level its thoughts may fill the rest of the 32,768 output tokens at the
/// text price of $1/M ($0.030768): a worst case of $0.070768.
fn priced_flash(config: &mut Config) {
    price(config, "gemini-3.1-flash-image", "1K", 2000, 1.0);
}

#[tokio::test]
async fn a_budget_that_fits_the_image_but_not_the_worst_case_thinking_is_refused_before_upstream() {
    let fake = FakeGemini::start().await;
    let app = TestApp::spawn(|c| {
        with_fake(&fake)(c);
        priced_flash(c);
    })
    .await;
    let thinking = json!({"prompt": "a lighthouse", "model": "gemini-3.1-flash-image",
        "image_size": "1K", "thinking_level": "high"});
    let (tight, _) = create_key(&app, json!({"daily_budget_usd": 0.06})).await;
    let client = client_with_key(Some(&tight));
    let response = client
        .post(app.url("/generate-image"))
        .json(&thinking)
        .send()
        .await
        .unwrap();
    let body = expect_error(response, 402, "budget_exceeded").await;
    assert_eq!(body["details"]["reserved_usd"], 0.070768, "{body}");
    assert!(fake.requests().is_empty(), "refused before upstream");
    // The same budget covers a call of the same image price whose model does not think
    // (Pro at 4K: $0.04).
    let response = client
        .post(app.url("/generate-image"))
        .json(&pro_4k())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);

    let (roomy, _) = create_key(&app, json!({"daily_budget_usd": 0.08})).await;
    let response = client_with_key(Some(&roomy))
        .post(app.url("/generate-image"))
        .json(&thinking)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "the worst case fits $0.08");
    let sent = &fake.requests()[1].body["generationConfig"]["thinkingConfig"];
    assert_eq!(sent["thinkingLevel"], "HIGH", "{sent}");
}

#[tokio::test]
async fn a_rotated_key_and_its_successor_spend_one_budget() {
    let fake = FakeGemini::start().await;
    let app = TestApp::spawn(with_fake(&fake)).await;
    let (old, old_id) = create_key(&app, json!({"daily_budget_usd": 0.10})).await;
    let generate = |key: &str| {
        let client = client_with_key(Some(key));
        let url = app.url("/generate-image");
        async move { client.post(url).json(&pro_4k()).send().await.unwrap() }
    };
    assert_eq!(generate(&old).await.status(), 200);

    let rotated = rotate(&app, &old_id, 600).await;
    let new = rotated["key"].as_str().unwrap().to_owned();
    // $0.04 was spent by the old key; the successor's call makes $0.08 of the $0.10.
    let response = generate(&new).await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["x-imagegate-budget-remaining"],
        "0.020000"
    );
    // Neither credential may spend another $0.04.
    for key in [&old, &new] {
        let body = expect_error(generate(key).await, 402, "budget_exceeded").await;
        assert_eq!(body["details"]["spent_usd"], 0.08, "{body}");
    }
    for key in [&old, &new] {
        let client = client_with_key(Some(key));
        let (_, _, me) = json_of(app.get_as(&client, "/keys/me").await).await;
        assert_eq!(me["budget"]["daily"]["spent_usd"], 0.08, "{me}");
        assert_eq!(me["budget"]["daily"]["remaining_usd"], 0.02, "{me}");
    }
    assert_eq!(
        fake.requests().len(),
        2,
        "refused calls never went upstream"
    );
}

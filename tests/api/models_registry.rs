//! The model registry against the fake upstream as Google's catalogue moves: models
//! leaving the list, 404s at request time, overload with fallback, service tiers and
//! their prices, thinking levels, and `GET /models` (docs/models.md).

use serde_json::{Value, json};

use crate::keys_limits::header;
use crate::support::fake_gemini::{FakeGemini, FakeOptions};
use crate::support::{TestApp, client_with_key, expect_error, expect_invalid, json_of};

const BANANA: &str = "gemini-nano-banana-2.1";
const FLASH: &str = "gemini-3.1-flash-image";
const PRO: &str = "gemini-3-pro-image";

async fn gemini_app(
    fake: &FakeGemini,
    configure: impl FnOnce(&mut imagegate::config::Config),
) -> TestApp {
    let app = TestApp::gemini_with(fake, |c| {
        c.gemini.deadline_secs = 2.0;
        configure(c);
    })
    .await;
    // The list asked for at start, so that what follows does not race it.
    app.models.refreshed(1).await;
    app
}

/// Cost of `usage` at USD-per-million `prices` (input, text output, image output).
fn cost(usage: &Value, prices: (f64, f64, f64)) -> f64 {
    let input = usage["input_tokens"].as_f64().unwrap();
    let output = usage["output_tokens"].as_f64().unwrap();
    let image = usage["image_tokens"].as_f64().unwrap();
    let thoughts = usage["thought_tokens"].as_f64().unwrap();
    (input * prices.0 + (output - image + thoughts) * prices.1 + image * prices.2) / 1e6
}

fn assert_cost(body: &Value, expected: f64) {
    let got = body["usage"]["cost_usd"].as_f64().unwrap();
    assert!(
        (got - expected).abs() < 2e-6,
        "cost {got} vs {expected}: {body}"
    );
}

#[tokio::test]
async fn a_model_upstream_stops_listing_is_served_by_its_successor_after_the_next_refresh() {
    let fake = FakeGemini::start().await;
    let app = gemini_app(&fake, |_| {}).await;
    let first = app
        .post_json(
            "/generate-image",
            json!({"prompt": "a kite", "model": FLASH}),
        )
        .await;
    assert_eq!(header(&first, "x-imagegate-model"), FLASH);

    fake.retire(FLASH);
    app.models.refresh().await.expect("the list is read");
    let calls_before = fake.requests().len();
    let response = app
        .post_json(
            "/generate-image",
            json!({"prompt": "a kite", "model": FLASH}),
        )
        .await;
    assert_eq!(header(&response, "x-imagegate-model"), BANANA);
    assert_eq!(header(&response, "x-imagegate-requested-model"), FLASH);
    assert_eq!(
        header(&response, "x-imagegate-substitution-reason"),
        "retired"
    );
    assert!(response.headers().contains_key("deprecation"));
    let (status, _, body) = json_of(response).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["model"], BANANA);
    let calls: Vec<String> = fake.requests()[calls_before..]
        .iter()
        .map(|r| r.model.clone())
        .collect();
    assert_eq!(calls, [BANANA], "no call went to the unlisted model");

    let (_, _, registry) = json_of(app.get("/models").await).await;
    let flash = registry["models"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == FLASH)
        .unwrap();
    assert_eq!(flash["status"], "retired");
    assert_eq!(flash["served_by"], BANANA);
}

#[tokio::test]
async fn a_404_at_request_time_is_served_by_the_successor_in_the_same_request() {
    let fake = FakeGemini::start().await;
    let app = gemini_app(&fake, |_| {}).await;
    fake.retire(FLASH);
    let response = app
        .post_json(
            "/generate-image",
            json!({"prompt": "a kite", "model": FLASH, "image_size": "512"}),
        )
        .await;
    assert_eq!(header(&response, "x-imagegate-model"), BANANA);
    assert_eq!(
        header(&response, "x-imagegate-substitution-reason"),
        "retired"
    );
    let (status, _, body) = json_of(response).await;
    assert_eq!(status, 200, "{body}");
    let calls = fake.requests();
    assert_eq!(calls.len(), 2, "one extra call");
    assert_eq!((calls[0].model.as_str(), calls[0].status), (FLASH, 404));
    assert_eq!((calls[1].model.as_str(), calls[1].status), (BANANA, 200));
    assert_eq!(
        calls[1].body["generationConfig"]["imageConfig"]["imageSize"], "1K",
        "2.1 has no 512: the nearest size it has"
    );
    // Marked at once: the next request goes straight to the successor.
    let again = app
        .post_json(
            "/generate-image",
            json!({"prompt": "again", "model": FLASH}),
        )
        .await;
    assert_eq!(again.status(), 200);
    assert_eq!(fake.requests().len(), 3);
}

#[tokio::test]
async fn the_native_surface_relays_a_404d_model_to_its_successor() {
    let fake = FakeGemini::start().await;
    let app = gemini_app(&fake, |_| {}).await;
    fake.retire(FLASH);
    let response = app
        .post_json(
            &format!("/v1/models/{FLASH}:generateContent"),
            json!({"contents": [{"role": "user", "parts": [{"text": "a kite"}]}]}),
        )
        .await;
    assert_eq!(header(&response, "x-imagegate-model"), BANANA);
    let (status, _, body) = json_of(response).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["modelVersion"], BANANA);
    let models: Vec<String> = fake.requests().iter().map(|r| r.model.clone()).collect();
    assert_eq!(models, [FLASH, BANANA]);
}

#[tokio::test]
async fn a_native_stream_for_a_404d_model_comes_from_its_successor() {
    let fake = FakeGemini::start().await;
    let app = gemini_app(&fake, |_| {}).await;
    fake.retire(FLASH);
    let response = app
        .post_json(
            &format!("/v1beta/models/{FLASH}:streamGenerateContent?alt=sse"),
            json!({"contents": [{"role": "user", "parts": [{"text": "a kite"}]}]}),
        )
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "x-imagegate-model"), BANANA);
    assert_eq!(
        header(&response, "x-imagegate-substitution-reason"),
        "retired"
    );
    let events = response.text().await.unwrap();
    assert!(
        events.contains(&format!("\"modelVersion\":\"{BANANA}\"")),
        "{events}"
    );
    let models: Vec<String> = fake.requests().iter().map(|r| r.model.clone()).collect();
    assert_eq!(models, [FLASH, BANANA]);
}

#[tokio::test]
async fn a_native_flex_call_that_is_shed_is_relayed_on_standard_when_fallback_is_on() {
    let fake = FakeGemini::start().await;
    let app = gemini_app(&fake, |c| c.registry.fallback = true).await;
    fake.shed_flex(true);
    let response = app
        .post_json(
            &format!("/v1/models/{BANANA}:generateContent"),
            json!({"contents": [{"parts": [{"text": "cheap"}]}], "serviceTier": "flex"}),
        )
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "x-imagegate-service-tier"), "standard");
    let last = fake.requests().pop().unwrap();
    assert_eq!(last.body["serviceTier"], "standard");
    let (_, _, usage) = json_of(app.get("/usage").await).await;
    let cost = usage["totals"]["cost_usd"].as_f64().unwrap();
    assert!(cost > 0.0336 - 1e-9, "priced as standard: {usage}");
}

#[tokio::test]
async fn pro_overloaded_on_every_attempt_falls_back_and_is_priced_as_the_fallback() {
    let fake = FakeGemini::start().await;
    let app = gemini_app(&fake, |_| {}).await;
    fake.overload(PRO);
    let request = json!({"prompt": "a fox", "model": PRO, "fallback": true,
                         "response_modalities": ["IMAGE"]});
    let response = app.post_json("/generate-image", request).await;
    assert_eq!(header(&response, "x-imagegate-model"), BANANA);
    assert_eq!(header(&response, "x-imagegate-requested-model"), PRO);
    assert_eq!(
        header(&response, "x-imagegate-substitution-reason"),
        "overloaded"
    );
    assert!(
        !response.headers().contains_key("deprecation"),
        "an overloaded model is not deprecated"
    );
    let (status, _, body) = json_of(response).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["model"], BANANA);
    let calls = fake.requests();
    assert_eq!(
        calls.iter().filter(|r| r.model == PRO).count(),
        4,
        "retries spent first"
    );
    assert_eq!(calls.iter().filter(|r| r.model == BANANA).count(), 1);
    assert_cost(&body, cost(&body["usage"], (1.50, 7.50, 30.0)));
    let (_, _, usage) = json_of(app.get("/usage").await).await;
    assert!(usage.to_string().contains(BANANA), "{usage}");

    // Without fallback the overload is the answer.
    let refused = app
        .post_json(
            "/generate-image",
            json!({"prompt": "a fox", "model": PRO, "fallback": false}),
        )
        .await;
    expect_error(refused, 503, "upstream_unavailable").await;
}

#[tokio::test]
async fn fallback_follows_the_configuration_when_the_request_does_not_say() {
    let fake = FakeGemini::start().await;
    let app = gemini_app(&fake, |c| c.registry.fallback = true).await;
    fake.overload(PRO);
    let response = app
        .post_json("/generate-image", json!({"prompt": "a fox", "model": PRO}))
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "x-imagegate-model"), BANANA);
    let opted_out = app
        .post_json(
            "/generate-image",
            json!({"prompt": "a fox", "model": PRO, "fallback": false}),
        )
        .await;
    assert_eq!(opted_out.status(), 503);
}

#[tokio::test]
async fn flex_is_sent_as_service_tier_and_priced_at_half_priority_at_double() {
    let fake = FakeGemini::start().await;
    let app = gemini_app(&fake, |_| {}).await;
    let prices = (1.50, 7.50, 30.0);
    for (tier, factor) in [("flex", 0.5), ("standard", 1.0), ("priority", 2.0)] {
        let response = app
            .post_json(
                "/generate-image",
                json!({"prompt": format!("a {tier} fox"), "service_tier": tier}),
            )
            .await;
        assert_eq!(header(&response, "x-imagegate-service-tier"), tier);
        let (status, _, body) = json_of(response).await;
        assert_eq!(status, 200, "{body}");
        assert_cost(&body, cost(&body["usage"], prices) * factor);
        let sent = fake.requests().pop().unwrap();
        assert_eq!(sent.body["serviceTier"], tier);
    }
    let (_, _, plain) = json_of(
        app.post_json("/generate-image", json!({"prompt": "x"}))
            .await,
    )
    .await;
    assert!(
        fake.requests()
            .pop()
            .unwrap()
            .body
            .get("serviceTier")
            .is_none()
    );
    assert_cost(&plain, cost(&plain["usage"], prices));
}

#[tokio::test]
async fn a_shed_flex_call_falls_back_to_standard_only_when_allowed() {
    let fake = FakeGemini::start().await;
    let app = gemini_app(&fake, |_| {}).await;
    fake.shed_flex(true);
    let refused = app
        .post_json(
            "/generate-image",
            json!({"prompt": "cheap", "service_tier": "flex"}),
        )
        .await;
    expect_error(refused, 429, "rate_limit_exceeded").await;

    let response = app
        .post_json(
            "/generate-image",
            json!({"prompt": "cheap please", "service_tier": "flex", "fallback": true}),
        )
        .await;
    assert_eq!(header(&response, "x-imagegate-service-tier"), "standard");
    assert_eq!(header(&response, "x-imagegate-model"), BANANA);
    let (status, _, body) = json_of(response).await;
    assert_eq!(status, 200, "{body}");
    assert_cost(&body, cost(&body["usage"], (1.50, 7.50, 30.0)));
    let last = fake.requests().pop().unwrap();
    assert_eq!(last.body["serviceTier"], "standard");
}

#[tokio::test]
async fn thinking_level_goes_upstream_for_models_that_take_it_and_is_refused_otherwise() {
    let fake = FakeGemini::start().await;
    let app = gemini_app(&fake, |_| {}).await;
    let ok = app
        .post_json(
            "/generate-image",
            json!({"prompt": "think", "thinking_level": "High"}),
        )
        .await;
    assert_eq!(ok.status(), 200);
    let sent = fake.requests().pop().unwrap();
    assert_eq!(
        sent.body["generationConfig"]["thinkingConfig"],
        json!({"thinkingLevel": "HIGH"})
    );

    let body = expect_invalid(
        app.post_json(
            "/generate-image",
            json!({"prompt": "think", "model": PRO, "thinking_level": "high"}),
        )
        .await,
    )
    .await;
    assert_eq!(body["details"]["field"], "thinking_level");
    let body = expect_invalid(
        app.post_json(
            "/generate-image",
            json!({"prompt": "think", "model": FLASH, "thinking_level": "medium"}),
        )
        .await,
    )
    .await;
    assert_eq!(body["details"]["allowed"], json!(["minimal", "high"]));
    assert_eq!(fake.requests().len(), 1, "refusals never went upstream");
}

#[tokio::test]
async fn the_default_model_is_nano_banana_2_1_which_refuses_512() {
    let fake = FakeGemini::start().await;
    let app = gemini_app(&fake, |_| {}).await;
    let body = expect_invalid(
        app.post_json(
            "/generate-image",
            json!({"prompt": "small", "image_size": "512"}),
        )
        .await,
    )
    .await;
    assert_eq!(body["details"]["allowed"], json!(["1K", "2K", "4K"]));
    assert!(fake.requests().is_empty());
    let (status, _, body) = json_of(
        app.post_json(
            "/generate-image",
            json!({"prompt": "a", "aspect_ratio": "8:1"}),
        )
        .await,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["model"], BANANA);
}

#[tokio::test]
async fn the_model_list_is_read_page_by_page_and_new_models_are_shown() {
    let fake = FakeGemini::start_with(FakeOptions {
        max_page_size: Some(2),
        ..Default::default()
    })
    .await;
    fake.release("gemini-nano-banana-2.2-preview", BANANA);
    let app = gemini_app(&fake, |_| {}).await;
    let pages = fake.list_requests();
    assert!(pages.len() >= 3, "5 models, 2 a page: {pages:?}");
    assert!(pages[1].query.contains("pageToken="), "{}", pages[1].query);
    assert!(pages.iter().all(|p| p.path == "/v1beta/models"));
    let (_, _, registry) = json_of(app.get("/models").await).await;
    assert_eq!(
        registry["upstream"]["not_in_table"][0]["id"],
        "gemini-nano-banana-2.2-preview"
    );
    assert!(registry["upstream"]["last_refresh"].is_string());
    // Nothing the table has was unlisted by paging.
    let statuses: Vec<(&str, &str)> = registry["models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["name"].as_str().unwrap(), m["status"].as_str().unwrap()))
        .collect();
    assert!(statuses.contains(&(FLASH, "deprecated")), "{statuses:?}");
    assert!(statuses.contains(&(BANANA, "active")), "{statuses:?}");
}

#[tokio::test]
async fn an_operator_enables_a_model_google_released_after_the_build() {
    let fake = FakeGemini::start().await;
    fake.release("gemini-nano-banana-2.2-preview", BANANA);
    let app = gemini_app(&fake, |c| {
        c.models.push(imagegate::models::ModelOverride {
            name: "gemini-nano-banana-2.2-preview".into(),
            aspect_ratios: Some(vec!["1:1".into(), "16:9".into()]),
            image_sizes: Some(vec!["1K".into(), "2K".into()]),
            thinking_levels: Some(vec!["high".into()]),
            prices: Some(imagegate::models::Prices {
                input: 2.0,
                text_output: 10.0,
                image_output: 40.0,
            }),
            ..Default::default()
        });
    })
    .await;
    let (status, _, body) = json_of(
        app.post_json(
            "/generate-image",
            json!({"prompt": "new", "model": "gemini-nano-banana-2.2-preview",
                   "image_size": "2K", "thinking_level": "high"}),
        )
        .await,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["model"], "gemini-nano-banana-2.2-preview");
    assert_cost(&body, cost(&body["usage"], (2.0, 10.0, 40.0)));
    let (_, _, registry) = json_of(app.get("/models").await).await;
    assert_eq!(registry["upstream"]["not_in_table"], json!([]));
}

#[tokio::test]
async fn get_models_shows_the_merged_registry_and_the_keys_service_tiers() {
    let app = TestApp::spawn(|c| {
        c.provider = imagegate::config::ProviderChoice::Offline;
        c.registry.service_tiers.insert(
            "free".into(),
            toml::from_str("force = \"flex\"").expect("a tier rule"),
        );
        c.registry.service_tiers.insert(
            "paid".into(),
            toml::from_str("allowed = [\"standard\", \"priority\"]").expect("a tier rule"),
        );
    })
    .await;
    let (status, _, registry) = json_of(app.get("/models").await).await;
    assert_eq!(status, 200, "{registry}");
    assert_eq!(registry["default_model"], BANANA);
    assert_eq!(
        registry["service_tiers"],
        json!({"allowed": ["standard", "priority"], "forced": null})
    );
    let models = registry["models"].as_array().unwrap();
    let find = |name: &str| models.iter().find(|m| m["name"] == name).unwrap().clone();
    let banana = find(BANANA);
    assert_eq!(banana["status"], "active");
    assert_eq!(banana["image_sizes"], json!(["1K", "2K", "4K"]));
    assert_eq!(banana["aspect_ratios"].as_array().unwrap().len(), 14);
    assert_eq!(
        banana["prices"],
        json!({"input": 1.5, "text_output": 7.5, "image_output": 30.0})
    );
    assert_eq!(
        banana["prices_by_service_tier"]["priority"]["image_output"],
        60.0
    );
    let flash = find(FLASH);
    assert_eq!(flash["status"], "deprecated");
    assert_eq!(flash["deprecated_since"], "2026-10-06");
    assert_eq!(flash["successor"], BANANA);
    let old = find("gemini-2.5-flash-image");
    assert_eq!(old["status"], "retired");
    assert_eq!(old["shut_down"], "2026-10-02");
    assert_eq!(old["served_by"], BANANA);
    assert_eq!(find(PRO)["fallback"], json!([BANANA]));

    // Paid keys may not use flex; free keys are held to it whatever they ask.
    let body = expect_invalid(
        app.post_json(
            "/generate-image",
            json!({"prompt": "x", "service_tier": "flex"}),
        )
        .await,
    )
    .await;
    assert_eq!(body["details"]["field"], "service_tier");
    let queued = app
        .post_json(
            "/generate-image",
            json!({"prompt": "x", "service_tier": "flex", "async": true}),
        )
        .await;
    expect_invalid(queued).await;
    let free = client_with_key(Some(&app.create_key("free").await));
    let (_, _, mine) = json_of(app.get_as(&free, "/models").await).await;
    assert_eq!(
        mine["service_tiers"],
        json!({"allowed": ["flex"], "forced": "flex"})
    );
    let held = app
        .post_json_as(
            &free,
            "/generate-image",
            json!({"prompt": "x", "service_tier": "priority"}),
        )
        .await;
    assert_eq!(held.status(), 200);
    assert_eq!(header(&held, "x-imagegate-service-tier"), "flex");
}

#[tokio::test]
async fn hostile_routing_options_are_refused_with_details() {
    let app = TestApp::offline().await;
    let cases = [
        (
            json!({"prompt": "x", "service_tier": "turbo"}),
            "service_tier",
        ),
        (
            json!({"prompt": "x", "service_tier": "f".repeat(100_000)}),
            "service_tier",
        ),
        (
            json!({"prompt": "x", "thinking_level": "maximal"}),
            "thinking_level",
        ),
        (
            json!({"prompt": "x", "thinking_level": ""}),
            "thinking_level",
        ),
    ];
    for (request, field) in cases {
        let body = expect_invalid(app.post_json("/generate-image", request).await).await;
        assert_eq!(body["details"]["field"], field, "{body}");
        assert!(
            body["message"].as_str().unwrap().len() < 300,
            "no echo of huge values"
        );
    }
    for bad in [json!("yes"), json!(1), json!({"on": true})] {
        let response = app
            .post_json("/generate-image", json!({"prompt": "x", "fallback": bad}))
            .await;
        assert_eq!(response.status(), 400);
    }
    let form = reqwest::multipart::Form::new()
        .text("prompt", "x")
        .text("fallback", "maybe")
        .part(
            "image",
            crate::support::file_part(crate::support::png(8, 8), "a.png"),
        );
    assert_eq!(app.post_form("/edit-image", form).await.status(), 400);
    // The native surface refuses an unknown tier in Google's envelope.
    let native = app
        .post_json(
            &format!("/v1/models/{BANANA}:generateContent"),
            json!({"contents": [{"parts": [{"text": "x"}]}], "serviceTier": "turbo"}),
        )
        .await;
    let (status, _, body) = json_of(native).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["status"], "INVALID_ARGUMENT");
}

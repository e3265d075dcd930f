//! `GET /usage`: each upstream call's token counts priced by the model table
//! (docs/upstream.md#prices), summed per key by UTC day and model.

use imagegate::clock::{Clock as _, ManualClock};
use imagegate::store::usage::utc_day;
use serde_json::{Value, json};

use super::{gemini_at, offline_at};
use crate::support::fake_gemini::FakeGemini;
use crate::support::{TestApp, client_with_key, expect_invalid, json_of};

/// Four words are four input tokens at the fake; image-only output is the image tokens.
async fn generate(app: &TestApp, model: &str) -> Value {
    let body =
        json!({"prompt": "a small red fox", "model": model, "response_modalities": ["IMAGE"]});
    let (status, _, body) = json_of(app.post_json("/generate-image", body).await).await;
    assert_eq!(status, 200, "{body}");
    body
}

fn close(a: &Value, b: f64) -> bool {
    (a.as_f64().unwrap() - b).abs() < 1e-9
}

#[tokio::test]
async fn usage_is_priced_from_upstream_tokens_and_summed_by_day_and_model() {
    let clock = ManualClock::starting_now();
    let fake = FakeGemini::start().await;
    let app = gemini_at(&clock, &fake).await;
    // 3.1 Flash Image at 1K: 4 input tokens at $0.50/M + 1120 image tokens at $60/M.
    let flash = 0.000_002 + 0.067_2;
    // 3 Pro Image at 1K: 4 input tokens at $2/M + 1120 image tokens at $120/M.
    let pro = 0.000_008 + 0.134_4;
    let first = generate(&app, "gemini-3.1-flash-image").await;
    assert_eq!(first["usage"]["input_tokens"], 4);
    assert_eq!(first["usage"]["image_tokens"], 1120);
    assert!(
        close(&first["usage"]["cost_usd"], flash),
        "{}",
        first["usage"]
    );
    generate(&app, "gemini-3.1-flash-image").await;
    let third = generate(&app, "gemini-3-pro-image").await;
    assert!(
        close(&third["usage"]["cost_usd"], pro),
        "{}",
        third["usage"]
    );

    let (status, _, usage) = json_of(app.get("/usage").await).await;
    assert_eq!(status, 200, "{usage}");
    let today = utc_day(clock.now_ms()).to_string();
    let days = usage["days"].as_array().unwrap();
    assert_eq!(days.len(), 2, "{usage}");
    let row = |model: &str| days.iter().find(|d| d["model"] == model).expect(model);
    let flash_row = row("gemini-3.1-flash-image");
    assert_eq!(flash_row["date"], today.as_str());
    assert_eq!(
        (
            &flash_row["requests"],
            &flash_row["images"],
            &flash_row["input_tokens"],
            &flash_row["image_tokens"]
        ),
        (&json!(2), &json!(2), &json!(8), &json!(2240))
    );
    assert!(close(&flash_row["cost_usd"], 2.0 * flash), "{flash_row}");
    assert!(close(&row("gemini-3-pro-image")["cost_usd"], pro));
    let totals = &usage["totals"];
    assert_eq!(
        (&totals["requests"], &totals["images"]),
        (&json!(3), &json!(3))
    );
    assert_eq!(totals["output_tokens"], 3360);
    assert!(close(&totals["cost_usd"], 2.0 * flash + pro), "{totals}");

    clock.advance_ms(24 * 3_600_000);
    generate(&app, "gemini-3.1-flash-image").await;
    let (_, _, usage) = json_of(app.get("/usage").await).await;
    let dates: Vec<&str> = usage["days"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["date"].as_str().unwrap())
        .collect();
    assert_eq!(dates.len(), 3);
    assert!(dates[0] == today && dates[2] != today, "{dates:?}");
    let (_, _, today_only) = json_of(app.get("/usage?days=1").await).await;
    assert_eq!(today_only["totals"]["requests"], 1, "{today_only}");
}

#[tokio::test]
async fn a_key_sees_only_its_own_usage() {
    let clock = ManualClock::starting_now();
    let app = offline_at(&clock, |_| {}).await;
    let (status, _, _) = json_of(
        app.post_json("/generate-image", json!({"prompt": "a fox"}))
            .await,
    )
    .await;
    assert_eq!(status, 200);
    let (_, _, mine) = json_of(app.get("/usage").await).await;
    assert_eq!(mine["days"][0]["model"], "offline");
    assert_eq!(
        (&mine["totals"]["requests"], &mine["totals"]["images"]),
        (&json!(1), &json!(1))
    );
    assert_eq!(
        mine["totals"]["cost_usd"], 0.0,
        "the offline provider costs nothing"
    );

    let other = client_with_key(Some(&app.create_key("free").await));
    let (_, _, theirs) = json_of(app.get_as(&other, "/usage").await).await;
    assert_ne!(theirs["key_id"], mine["key_id"]);
    assert_eq!(theirs["days"], json!([]));
    assert_eq!(theirs["totals"]["requests"], 0);
}

#[tokio::test]
async fn usage_ranges_are_validated() {
    let app = TestApp::offline().await;
    for (query, field) in [
        ("days=0", "days"),
        ("days=soon", "days"),
        ("from=2026-13-01", "from"),
        ("since=1", "since"),
    ] {
        let body = expect_invalid(app.get(&format!("/usage?{query}")).await).await;
        assert_eq!(body["details"]["field"], field, "{query}");
    }
    let (status, _, body) = json_of(app.get("/usage?from=2026-01-01&to=2026-01-31").await).await;
    assert_eq!(
        (status, &body["from"], &body["to"]),
        (200, &json!("2026-01-01"), &json!("2026-01-31"))
    );
}

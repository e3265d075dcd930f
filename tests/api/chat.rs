//! Chat sessions: stored, owned, expiring, bounded; every turn replays the whole
//! history upstream byte for byte.

use std::sync::Arc;

use base64::Engine as _;
use imagegate::clock::ManualClock;
use serde_json::{Value, json};

use crate::support::fake_gemini::{FakeGemini, FakeOptions};
use crate::support::{
    TestApp, decode_image, expect_error, expect_invalid, file_part, json_of, png,
};

async fn create(app: &TestApp, body: Value) -> String {
    let (status, _, created) = json_of(app.post_json("/chat/create", body).await).await;
    assert_eq!(status, 200, "{created}");
    created["session_id"].as_str().unwrap().to_owned()
}

async fn say(app: &TestApp, session: &str, message: &str) -> (u16, Value) {
    let (status, _, body) = json_of(
        app.post_json(
            &format!("/chat/{session}/message"),
            json!({"message": message}),
        )
        .await,
    )
    .await;
    (status, body)
}

fn b64(value: &Value) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .decode(value.as_str().unwrap())
        .unwrap()
}

#[tokio::test]
async fn a_chat_refines_an_image_turn_by_turn() {
    let app = TestApp::offline().await;
    let (status, _, created) = json_of(
        app.post_json("/chat/create", json!({"model": "gemini-2.5-flash-image-preview", "system_prompt": "You are an expert photographer."}))
            .await,
    )
    .await;
    assert_eq!(status, 200, "{created}");
    assert!(created["session_id"].as_str().unwrap().starts_with("chat_"));
    assert_eq!(created["model"], "gemini-2.5-flash-image-preview");
    assert!(created["expires_at"].as_str().unwrap() > created["created_at"].as_str().unwrap());
    let session = created["session_id"].as_str().unwrap();

    let (status, first) = say(
        &app,
        session,
        "Create a professional headshot of a business executive",
    )
    .await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(
        (first["session_id"].as_str(), first["turn"].as_i64()),
        (Some(session), Some(1))
    );
    let (status, second) = say(
        &app,
        session,
        "Make the lighting softer and add more warmth",
    )
    .await;
    assert_eq!(status, 200, "{second}");
    assert_eq!(second["turn"], 2);
    let a = decode_image(&first["images"][0]);
    let b = decode_image(&second["images"][0]);
    assert_eq!(
        (a.width(), a.height()),
        (b.width(), b.height()),
        "the refinement keeps the image's size"
    );
    assert_ne!(first["images"][0], second["images"][0], "and changes it");

    let (status, _, history) = json_of(app.get(&format!("/chat/{session}")).await).await;
    assert_eq!(status, 200, "{history}");
    let turns = history["turns"].as_array().unwrap();
    let roles: Vec<&str> = turns.iter().map(|t| t["role"].as_str().unwrap()).collect();
    assert_eq!(roles, ["user", "model", "user", "model"]);
    assert_eq!(
        turns[0]["text"],
        "Create a professional headshot of a business executive"
    );
    assert_eq!(turns[1]["images"][0]["image_id"], first["image_ids"][0]);
    assert!(
        history.to_string().len() < 4096,
        "no image bytes in the history: {history}"
    );
    let url = turns[3]["images"][0]["url"].as_str().unwrap();
    assert_eq!(
        app.get(url).await.bytes().await.unwrap().as_ref(),
        b64(&second["images"][0]).as_slice()
    );
}

#[tokio::test]
async fn each_turn_sends_the_whole_history_with_images_and_signatures_byte_for_byte() {
    // Strict mode: the fake refuses a turn whose history image lacks a signature it issued.
    let fake = FakeGemini::start_with(FakeOptions {
        strict_signatures: true,
        ..Default::default()
    })
    .await;
    let app = TestApp::gemini(&fake).await;
    let session = create(
        &app,
        json!({"model": "gemini-3-pro-image", "system_prompt": "You refine images."}),
    )
    .await;
    let (status, first) = say(&app, &session, "draw a cat [[fake:thoughts]]").await;
    assert_eq!(status, 200, "{first}");
    let (status, second) = say(&app, &session, "make it blue").await;
    assert_eq!(status, 200, "{second}");

    let requests = fake.requests();
    let turn2 = &requests[1].body;
    assert_eq!(
        turn2["systemInstruction"]["parts"][0]["text"],
        "You refine images."
    );
    let contents = turn2["contents"].as_array().unwrap();
    let roles: Vec<&str> = contents
        .iter()
        .map(|c| c["role"].as_str().unwrap())
        .collect();
    assert_eq!(roles, ["user", "model", "user"]);
    assert_eq!(
        contents[0]["parts"][0]["text"],
        "draw a cat [[fake:thoughts]]"
    );
    let model_parts = contents[1]["parts"].as_array().unwrap();
    assert!(
        model_parts.iter().any(|p| p["thought"] == true),
        "thought parts are sent back as received"
    );
    let signed: Vec<&Value> = model_parts
        .iter()
        .filter(|p| p.get("thoughtSignature").is_some())
        .collect();
    assert_eq!(
        signed.len(),
        2,
        "final text and final image keep their signatures: {model_parts:?}"
    );
    // The final image goes back exactly as it came.
    let returned = b64(&first["images"][0]);
    assert!(
        requests[1]
            .images
            .iter()
            .any(|(_, bytes)| *bytes == returned)
    );
    assert_eq!(contents[2]["parts"][0]["text"], "make it blue");
}

#[tokio::test]
async fn a_refused_turn_is_not_added_to_the_history() {
    let fake = FakeGemini::start().await;
    let app = TestApp::gemini(&fake).await;
    let session = create(&app, json!({})).await;
    assert_eq!(say(&app, &session, "a red car").await.0, 200);
    let (status, refused) = say(&app, &session, "something forbidden [[fake:image_safety]]").await;
    assert_eq!(
        (status, refused["error"].as_str()),
        (422, Some("content_blocked"))
    );
    assert_eq!(say(&app, &session, "make it green").await.0, 200);
    let last = fake.requests().last().unwrap().body.clone();
    let texts: Vec<String> = last["contents"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["role"] == "user")
        .map(|c| {
            c["parts"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|p| p["text"].as_str())
                .collect::<String>()
        })
        .collect();
    assert_eq!(texts, ["a red car", "make it green"]);
    let (_, _, history) = json_of(app.get(&format!("/chat/{session}")).await).await;
    assert_eq!(history["turns"].as_array().unwrap().len(), 4);
}

#[tokio::test]
async fn a_message_may_carry_an_image_as_multipart() {
    let app = TestApp::offline().await;
    let session = create(&app, json!({})).await;
    let form = reqwest::multipart::Form::new()
        .text("message", "Use this photo as the starting point")
        .part("image", file_part(png(300, 200), "start.png"));
    let (status, _, body) = json_of(
        app.post_form(&format!("/chat/{session}/message"), form)
            .await,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let out = decode_image(&body["images"][0]);
    assert_eq!((out.width(), out.height()), (300, 200));
    let (_, _, history) = json_of(app.get(&format!("/chat/{session}")).await).await;
    assert_eq!(
        history["turns"][0]["images"].as_array().unwrap().len(),
        1,
        "the user's image is in the history"
    );
}

#[tokio::test]
async fn sessions_are_invisible_to_other_callers() {
    let app = TestApp::offline().await;
    let session = create(&app, json!({})).await;
    let someone_else = app.create_key("paid").await;
    let stranger = |req: reqwest::RequestBuilder| req.bearer_auth(&someone_else);
    let get = stranger(app.client.get(app.url(&format!("/chat/{session}"))))
        .send()
        .await
        .unwrap();
    expect_error(get, 404, "not_found").await;
    let post = stranger(
        app.client
            .post(app.url(&format!("/chat/{session}/message"))),
    )
    .json(&json!({"message": "hi"}))
    .send()
    .await
    .unwrap();
    expect_error(post, 404, "not_found").await;
    let delete = stranger(app.client.delete(app.url(&format!("/chat/{session}"))))
        .send()
        .await
        .unwrap();
    expect_error(delete, 404, "not_found").await;
    assert_eq!(
        app.get(&format!("/chat/{session}")).await.status(),
        200,
        "still there for its owner"
    );
}

#[tokio::test]
async fn deleting_a_session_ends_it() {
    let app = TestApp::offline().await;
    let session = create(&app, json!({})).await;
    let deleted = app
        .client
        .delete(app.url(&format!("/chat/{session}")))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 200);
    assert_gone(&app, &session).await;
    expect_error(app.get("/chat/chat_nonsense").await, 404, "not_found").await;
}

/// A session that is gone answers 404 to a read and to a message alike.
async fn assert_gone(app: &TestApp, session: &str) {
    expect_error(app.get(&format!("/chat/{session}")).await, 404, "not_found").await;
    let message = app
        .post_json(
            &format!("/chat/{session}/message"),
            json!({"message": "hi"}),
        )
        .await;
    expect_error(message, 404, "not_found").await;
}

#[tokio::test]
async fn a_session_survives_a_restart() {
    let app = TestApp::offline().await;
    let session = create(&app, json!({"system_prompt": "be kind"})).await;
    assert_eq!(say(&app, &session, "a lighthouse").await.0, 200);
    let app = app
        .restart(|c| c.provider = imagegate::config::ProviderChoice::Offline)
        .await;
    let (status, _, history) = json_of(app.get(&format!("/chat/{session}")).await).await;
    assert_eq!(status, 200, "{history}");
    assert_eq!(history["system_prompt"], "be kind");
    let (status, next) = say(&app, &session, "at night").await;
    assert_eq!((status, next["turn"].as_i64()), (200, Some(2)));
}

#[tokio::test]
async fn idle_sessions_expire_and_activity_renews_them() {
    let clock = ManualClock::starting_now();
    let app = TestApp::spawn_full(tempfile::tempdir().unwrap(), Arc::new(clock.clone()), |c| {
        c.provider = imagegate::config::ProviderChoice::Offline;
        c.sessions.idle_ttl_secs = 60;
    })
    .await;
    let session = create(&app, json!({})).await;
    clock.advance_ms(50_000);
    assert_eq!(
        say(&app, &session, "a boat").await.0,
        200,
        "used within its idle time"
    );
    clock.advance_ms(50_000);
    assert_eq!(
        app.get(&format!("/chat/{session}")).await.status(),
        200,
        "the message renewed it"
    );
    clock.advance_ms(11_000);
    assert_gone(&app, &session).await;
}

#[tokio::test]
async fn a_full_session_says_so_clearly() {
    let app = TestApp::spawn(|c| {
        c.provider = imagegate::config::ProviderChoice::Offline;
        c.sessions.max_turns = 2;
    })
    .await;
    let session = create(&app, json!({})).await;
    assert_eq!(say(&app, &session, "one").await.0, 200);
    assert_eq!(say(&app, &session, "two").await.0, 200);
    let body = expect_error(
        app.post_json(
            &format!("/chat/{session}/message"),
            json!({"message": "three"}),
        )
        .await,
        409,
        "session_full",
    )
    .await;
    assert_eq!(body["details"]["reason"], "max_turns");
    assert_eq!(body["details"]["max_turns"], 2);
}

#[tokio::test]
async fn chat_requests_are_validated() {
    let app = TestApp::offline().await;
    let body = expect_invalid(
        app.post_json("/chat/create", json!({"model": "dall-e-3"}))
            .await,
    )
    .await;
    assert_eq!(body["details"]["field"], "model");
    let session = create(&app, json!({})).await;
    for (request, field) in [
        (json!({}), "message"),
        (json!({"message": "x".repeat(2001)}), "message"),
        (
            json!({"message": "hi", "model": "gemini-3-pro-image"}),
            "model",
        ),
        (json!({"message": "hi", "temperature": 9}), "temperature"),
    ] {
        let body = expect_invalid(
            app.post_json(&format!("/chat/{session}/message"), request)
                .await,
        )
        .await;
        assert_eq!(body["details"]["field"], field, "{body}");
    }
}

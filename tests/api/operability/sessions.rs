//! Chat sessions that used to dead-end: a Pro chat at 4K goes on past its fourth turn,
//! with the newest images in context and older ones named by id.

use serde_json::{Value, json};

use crate::support::fake_gemini::FakeGemini;
use crate::support::{TestApp, json_of};

const PRO: &str = "gemini-3-pro-image";

async fn say(app: &TestApp, session: &str, message: &str) -> Value {
    let (status, _, body) = json_of(
        app.post_json(
            &format!("/chat/{session}/message"),
            json!({"message": message, "image_size": "4K"}),
        )
        .await,
    )
    .await;
    assert_eq!(status, 200, "{message}: {body}");
    body
}

fn gemini(fake: &FakeGemini, budget: Option<u64>) -> impl FnOnce(&mut imagegate::config::Config) {
    let base_url = fake.base_url();
    move |c| {
        c.provider = imagegate::config::ProviderChoice::Gemini;
        c.google_api_key = Some(imagegate::config::Secret::new(
            crate::support::fake_gemini::FAKE_API_KEY,
        ));
        c.gemini.base_url = base_url;
        c.gemini.deadline_secs = 30.0;
        if let Some(budget) = budget {
            c.sessions.max_image_bytes = budget;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pro_4k_chat_goes_on_for_ten_turns_with_recent_images_in_context() {
    let fake = FakeGemini::start().await;
    let app = TestApp::spawn(gemini(&fake, None)).await;
    let (status, _, created) =
        json_of(app.post_json("/chat/create", json!({"model": PRO})).await).await;
    assert_eq!(status, 200, "{created}");
    let session = created["session_id"].as_str().unwrap().to_owned();
    let first = say(&app, &session, "A lighthouse on a cliff").await;
    let image_bytes = base64::Engine::decode(
        &base64::engine::general_purpose::STANDARD,
        first["images"][0].as_str().unwrap(),
    )
    .unwrap()
    .len() as u64;
    // A budget of two and a half of this model's 4K images: before, the session refused
    // its third message ("session_full"); now older images leave the context instead.
    let budget = image_bytes * 5 / 2;
    let app = app.restart(gemini(&fake, Some(budget))).await;

    let mut ids = vec![first["image_ids"][0].as_str().unwrap().to_owned()];
    for turn in 2..=10 {
        let body = say(&app, &session, &format!("Refinement {turn}: warmer light")).await;
        assert_eq!(body["turn"], turn, "{body}");
        ids.push(body["image_ids"][0].as_str().unwrap().to_owned());
    }

    let calls: Vec<_> = fake
        .requests()
        .into_iter()
        .filter(|r| r.method == "POST")
        .collect();
    assert_eq!(calls.len(), 10, "one upstream call per turn");
    for call in &calls {
        let sent: u64 = call.images.iter().map(|(_, b)| b.len() as u64).sum();
        assert!(
            sent <= budget,
            "{sent} bytes of images sent, budget {budget}"
        );
    }
    let last = &calls[9];
    assert_eq!(last.images.len(), 2, "the two newest images fit the budget");
    let text = last.body.to_string();
    assert!(
        text.contains(&format!("An earlier image, {}", ids[0])),
        "older images are named by id: {text:.400}"
    );
    assert!(!text.contains(&format!("An earlier image, {}", ids[8])));
    let (status, _, history) = json_of(app.get(&format!("/chat/{session}")).await).await;
    assert_eq!(status, 200);
    assert_eq!(
        history["turns"].as_array().unwrap().len(),
        20,
        "every turn is kept"
    );
}

//! Chat messages are answered in the order they were accepted, sync or async
//! (docs/async.md, "Chat messages run in order"): a synchronous message waits for the
//! async ones accepted before it, workers never claim a message before the earlier ones
//! of its session have finished, and a client flooding one session neither holds the
//! workers nor waits without bound. The worker is driven directly (`jobs.workers = 0`).

use imagegate::config::Config;
use serde_json::{Value, json};

use crate::support::fake_gemini::FakeGemini;
use crate::support::{TestApp, eventually, expect_error, json_of, on_gemini};

fn configure(fake: &FakeGemini) -> impl FnOnce(&mut Config) {
    // Room for the scripted slow answers (`slow_3000`) below.
    let gemini = on_gemini(fake, 20.0);
    move |c: &mut Config| {
        gemini(c);
        c.jobs.workers = 0;
    }
}

async fn create(app: &TestApp) -> String {
    let (status, _, created) = json_of(app.post_json("/chat/create", json!({})).await).await;
    assert_eq!(status, 200, "{created}");
    created["session_id"].as_str().unwrap().to_owned()
}

async fn queue(app: &TestApp, session: &str, message: &str) -> String {
    let (status, _, body) = json_of(
        app.post_json(
            &format!("/chat/{session}/message"),
            json!({"message": message, "async": true}),
        )
        .await,
    )
    .await;
    assert_eq!(status, 202, "{body}");
    body["request_id"].as_str().unwrap().to_owned()
}

async fn history(app: &TestApp, session: &str) -> Value {
    let (status, _, body) = json_of(app.get(&format!("/chat/{session}")).await).await;
    assert_eq!(status, 200, "{body}");
    body
}

/// The user messages of the session's history, in its order.
async fn said(app: &TestApp, session: &str) -> Vec<String> {
    history(app, session).await["turns"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["role"] == "user")
        .map(|t| t["text"].as_str().unwrap().to_owned())
        .collect()
}

async fn status_of(app: &TestApp, id: &str) -> Value {
    let (status, _, body) = json_of(app.get(&format!("/requests/{id}")).await).await;
    assert_eq!(status, 200, "{body}");
    body["status"].clone()
}

#[tokio::test]
async fn an_async_message_then_a_sync_one_are_answered_in_the_order_they_were_accepted() {
    let fake = FakeGemini::start().await;
    let app = TestApp::spawn(configure(&fake)).await;
    let session = create(&app).await;
    let first = queue(&app, &session, "first: a red boat").await;

    let client = app.client.clone();
    let url = app.url(&format!("/chat/{session}/message"));
    let second = tokio::spawn(async move {
        let body = json!({"message": "second: make it blue"});
        json_of(client.post(url).json(&body).send().await.unwrap()).await
    });
    // The synchronous message is accepted and waiting: two messages pending, none sent.
    eventually("two messages pending", || async {
        history(&app, &session).await["pending_messages"] == 2
    })
    .await;
    assert!(
        fake.requests().is_empty(),
        "the sync message did not jump ahead"
    );

    assert!(app.jobs.run_once().await.unwrap());
    let (status, _, answer) = second.await.unwrap();
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["turn"], 2);
    assert_eq!(status_of(&app, &first).await, "succeeded");
    assert_eq!(
        said(&app, &session).await,
        ["first: a red boat", "second: make it blue"]
    );
    // The second upstream call carried the first turn as history.
    let calls = fake.requests();
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[1].body["contents"].as_array().unwrap().len(), 3);
    assert_eq!(history(&app, &session).await["pending_messages"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_async_messages_of_one_session_run_in_order_with_two_workers() {
    let fake = FakeGemini::start().await;
    let app = TestApp::spawn(configure(&fake)).await;
    let session = create(&app).await;
    let first = queue(&app, &session, "first [[fake:slow_3000]]").await;
    let second = queue(&app, &session, "second").await;

    let jobs = app.jobs.clone();
    let worker_one = tokio::spawn(async move { jobs.run_once().await.unwrap() });
    eventually("the first message upstream", || async {
        fake.in_flight() == 1
    })
    .await;
    // A second worker finds nothing it may run: the second message waits for the first,
    // and the worker is not kept waiting with it.
    assert!(!app.jobs.run_once().await.unwrap(), "nothing claimable");
    assert_eq!(fake.in_flight(), 1, "the first message was still running");
    assert_eq!(status_of(&app, &second).await, "queued");

    assert!(worker_one.await.unwrap());
    assert!(app.jobs.run_once().await.unwrap());
    assert_eq!(status_of(&app, &first).await, "succeeded");
    assert_eq!(status_of(&app, &second).await, "succeeded");
    assert_eq!(
        said(&app, &session).await,
        ["first [[fake:slow_3000]]", "second"]
    );
    assert_eq!(
        fake.max_in_flight(),
        1,
        "never two turns of a session at once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_flooding_one_session_holds_at_most_one_worker_and_is_bounded() {
    let fake = FakeGemini::start().await;
    let app = TestApp::spawn(|c| {
        configure(&fake)(c);
        c.sessions.max_turns = 5;
    })
    .await;
    let session = create(&app).await;
    let mut queued = vec![queue(&app, &session, "turn 1 [[fake:slow_3000]]").await];
    for n in 2..=5 {
        queued.push(queue(&app, &session, &format!("turn {n}")).await);
    }
    // Queued messages count against the session's bound: the sixth is refused now.
    let (status, _, refused) = json_of(
        app.post_json(
            &format!("/chat/{session}/message"),
            json!({"message": "turn 6", "async": true}),
        )
        .await,
    )
    .await;
    assert_eq!(
        (status, refused["error"].as_str()),
        (409, Some("session_full"))
    );
    assert_eq!(refused["details"]["pending_messages"], 5, "{refused}");
    // Other work queued after the flood.
    let (status, _, other) = json_of(
        app.post_json(
            "/generate-image",
            json!({"prompt": "a lighthouse", "async": true}),
        )
        .await,
    )
    .await;
    assert_eq!(status, 202, "{other}");
    let other = other["request_id"].as_str().unwrap().to_owned();

    let jobs = app.jobs.clone();
    let worker_one = tokio::spawn(async move { jobs.run_once().await.unwrap() });
    eventually("the first message upstream", || async {
        fake.in_flight() == 1
    })
    .await;
    // While one worker answers the session's first message, another runs the other
    // work instead of waiting for the session's next turn.
    assert!(app.jobs.run_once().await.unwrap());
    assert_eq!(status_of(&app, &other).await, "succeeded");
    assert_eq!(status_of(&app, &queued[1]).await, "queued");
    assert!(!app.jobs.run_once().await.unwrap());

    assert!(worker_one.await.unwrap());
    while app.jobs.run_once().await.unwrap() {}
    for id in &queued {
        assert_eq!(status_of(&app, id).await, "succeeded");
    }
    let expected: Vec<String> = (1..=5)
        .map(|n| {
            if n == 1 {
                "turn 1 [[fake:slow_3000]]".to_owned()
            } else {
                format!("turn {n}")
            }
        })
        .collect();
    assert_eq!(said(&app, &session).await, expected);
}

#[tokio::test]
async fn a_sync_message_behind_unfinished_ones_is_refused_after_a_bounded_wait() {
    let fake = FakeGemini::start().await;
    let app = TestApp::spawn(|c| {
        configure(&fake)(c);
        c.sessions.order_wait_secs = 0.3;
    })
    .await;
    let session = create(&app).await;
    queue(&app, &session, "first").await;

    // No worker runs the first message: the second gives up waiting and is not sent.
    let response = app
        .post_json(
            &format!("/chat/{session}/message"),
            json!({"message": "second"}),
        )
        .await;
    let body = expect_error(response, 409, "conflict").await;
    assert_eq!(body["details"]["reason"], "earlier_messages_pending");
    assert_eq!(body["details"]["pending_messages"], 1);
    assert!(fake.requests().is_empty(), "{:?}", fake.requests().len());
    // Its place is given up (and was never an async request of its own).
    assert_eq!(history(&app, &session).await["pending_messages"], 1);
    let sync_id = body["request_id"].as_str().unwrap();
    expect_error(
        app.get(&format!("/requests/{sync_id}")).await,
        404,
        "not_found",
    )
    .await;
    let cancel = app
        .post_json(&format!("/requests/{sync_id}/cancel"), json!({}))
        .await;
    expect_error(cancel, 404, "not_found").await;

    // Once the first has run, the session goes on.
    assert!(app.jobs.run_once().await.unwrap());
    let (status, _, answer) = json_of(
        app.post_json(
            &format!("/chat/{session}/message"),
            json!({"message": "second, again"}),
        )
        .await,
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(said(&app, &session).await, ["first", "second, again"]);
}

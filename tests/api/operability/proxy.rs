//! Behind a proxy: signed links use the configured public base URL, forwarded headers
//! are believed from trusted proxies only, and a link that does not open says why.

use std::sync::Arc;

use imagegate::clock::ManualClock;
use imagegate::config::{Config, ProviderChoice};
use serde_json::json;

use crate::support::{TestApp, json_of};

async fn signed_link(app: &TestApp, headers: &[(&str, &str)]) -> String {
    let mut request = app
        .client
        .post(app.url("/v1/images/generations"))
        .json(&json!({"prompt": "a lighthouse", "size": "1024x1024", "response_format": "url"}));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    body["data"][0]["url"].as_str().unwrap().to_owned()
}

fn offline(extra: impl FnOnce(&mut Config)) -> impl FnOnce(&mut Config) {
    move |c: &mut Config| {
        c.provider = ProviderChoice::Offline;
        extra(c);
    }
}

#[tokio::test]
async fn signed_links_use_the_public_base_url_whatever_the_request_claims() {
    let app = TestApp::spawn(offline(|c| {
        c.public_base_url = Some("https://images.example.com/gw/".into());
    }))
    .await;

    let link = signed_link(
        &app,
        &[
            ("host", "attacker.example"),
            ("x-forwarded-host", "attacker.example"),
        ],
    )
    .await;

    assert!(
        link.starts_with("https://images.example.com/gw/v1/files/img_"),
        "{link}"
    );
}

#[tokio::test]
async fn forwarded_headers_count_only_from_trusted_proxies() {
    let forwarded = [
        ("x-forwarded-host", "images.example.com"),
        ("x-forwarded-proto", "https"),
        ("x-imagegate-origin", "https://spoofed.example"),
    ];
    let untrusted = TestApp::spawn(offline(|c| {
        c.trusted_proxies = vec!["10.0.0.0/8".into()];
    }))
    .await;
    let link = signed_link(&untrusted, &forwarded).await;
    assert!(
        link.starts_with(&format!("{}/v1/files/", untrusted.base)),
        "a client's forwarded headers are ignored: {link}"
    );

    let behind_proxy = TestApp::spawn(offline(|c| {
        c.trusted_proxies = vec!["127.0.0.1".into()];
    }))
    .await;
    let link = signed_link(&behind_proxy, &forwarded).await;
    assert!(
        link.starts_with("https://images.example.com/v1/files/"),
        "{link}"
    );
}

#[tokio::test]
async fn an_expired_link_answers_410_and_a_bad_signature_403() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::starting_now());
    let app = TestApp::spawn_full(dir, clock.clone(), offline(|_| {})).await;
    let link = signed_link(&app, &[]).await;
    let anonymous = reqwest::Client::new();
    let opened = anonymous.get(&link).send().await.unwrap();
    assert_eq!(opened.status(), 200);

    let flipped = if link.ends_with('0') { '1' } else { '0' };
    let tampered = format!("{}{flipped}", &link[..link.len() - 1]);
    // `/v1/files/…` is on the OpenAI surface, so errors come in OpenAI's shape.
    let (status, _, body) = json_of(anonymous.get(&tampered).send().await.unwrap()).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["code"], "invalid_signature", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("signature")
    );

    clock.advance_ms(2 * 60 * 60 * 1000);
    let (status, _, body) = json_of(anonymous.get(&link).send().await.unwrap()).await;
    assert_eq!(status, 410, "{body}");
    assert_eq!(body["error"]["code"], "link_expired", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("expired")
    );
}

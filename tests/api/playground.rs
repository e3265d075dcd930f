//! The playground at `GET /`: served from the binary without a key, under a strict
//! Content-Security-Policy, with a catalog read from the server's own tables. The page
//! itself is driven in a real browser by `tests/browser/`.

use crate::support::{TestApp, client_with_key};

#[tokio::test]
async fn the_page_and_its_assets_are_served_without_a_key_under_a_strict_policy() {
    let app = TestApp::offline().await;
    let anonymous = client_with_key(None);
    let page = app.get_as(&anonymous, "/").await;
    assert_eq!(page.status(), 200);
    assert_eq!(page.headers()["content-type"], "text/html; charset=utf-8");
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(csp.contains("default-src 'none'"), "{csp}");
    assert!(csp.contains("script-src 'self'"), "{csp}");
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    assert_eq!(page.headers()["x-content-type-options"], "nosniff");
    let html = page.text().await.unwrap();
    assert!(html.contains("<label for=\"key-input\">API key</label>"));

    for (path, mime) in [
        ("/playground/app.js", "text/javascript; charset=utf-8"),
        ("/playground/app.css", "text/css; charset=utf-8"),
        ("/playground/icon.svg", "image/svg+xml"),
    ] {
        let asset = app.get_as(&anonymous, path).await;
        assert_eq!(asset.status(), 200, "{path}");
        assert_eq!(asset.headers()["content-type"], mime, "{path}");
    }
    let missing = app.get_as(&anonymous, "/playground/..%2FCargo.toml").await;
    assert_eq!(missing.status(), 404);
    let unknown = app.get_as(&anonymous, "/playground/secrets.js").await;
    assert_eq!(unknown.status(), 404);
}

#[tokio::test]
async fn the_catalog_offers_exactly_what_the_server_accepts() {
    let app = TestApp::offline().await;
    let catalog: serde_json::Value = app
        .get_anonymously("/playground/catalog.json")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(catalog["default_model"], "gemini-nano-banana-2.1");
    let models = catalog["models"].as_array().unwrap();
    let flash = models
        .iter()
        .find(|m| m["name"] == "gemini-3.1-flash-image")
        .unwrap();
    assert_eq!(
        flash["image_sizes"],
        serde_json::json!(["512", "1K", "2K", "4K"])
    );
    assert!(flash["retired"].is_null());
    let preview = models
        .iter()
        .find(|m| m["name"] == "gemini-2.5-flash-image-preview")
        .unwrap();
    assert_eq!(preview["retired"]["served_by"], "gemini-nano-banana-2.1");
    let styles = catalog["styles"].as_array().unwrap();
    assert!(
        styles
            .iter()
            .any(|s| s["name"] == "van_gogh" && s["label"] == "Van Gogh")
    );
    assert!(
        catalog["composition_styles"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s == "side_by_side")
    );
    assert!(
        catalog["content_types"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["name"] == "recipe")
    );
    assert_eq!(catalog["story_steps"]["max"], 10);
    assert_eq!(catalog["limits"]["max_prompt_chars"], 2000);
}

#[tokio::test]
async fn writing_to_the_playground_still_needs_a_key() {
    let app = TestApp::offline().await;
    let response = client_with_key(None)
        .post(app.url("/playground/app.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
}

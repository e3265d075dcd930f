//! `GET /openapi.json` and `GET /docs` (docs/api.md#playground-and-documents): the document
//! describes every route the router serves, and only those, and the docs page renders it
//! with nothing from elsewhere.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use serde_json::Value;

use crate::support::TestApp;

/// `(METHOD, path template)` of every route, from the table the router is built from.
fn router_routes() -> BTreeSet<(String, String)> {
    imagegate::api::ROUTES
        .iter()
        .map(|(method, path)| ((*method).to_owned(), (*path).to_owned()))
        .collect()
}

const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

fn documented(document: &Value) -> BTreeSet<(String, String)> {
    let mut operations = BTreeSet::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            if METHODS.contains(&method.as_str()) {
                operations.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    operations
}

async fn served_document(app: &TestApp) -> Value {
    let response = app.get_anonymously("/openapi.json").await;
    assert_eq!(response.status(), 200, "public, like /docs");
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    response.json().await.unwrap()
}

#[tokio::test]
async fn every_route_in_the_router_is_in_the_openapi_document() {
    let app = TestApp::offline().await;
    let document = served_document(&app).await;
    assert!(document["openapi"].as_str().unwrap().starts_with("3.1."));

    let routes = router_routes();
    let operations = documented(&document);

    let missing: Vec<_> = routes.difference(&operations).collect();
    assert!(
        missing.is_empty(),
        "routes missing from docs/openapi.json: {missing:?}"
    );
    let phantom: Vec<_> = operations.difference(&routes).collect();
    assert!(phantom.is_empty(), "documented but not routed: {phantom:?}");
}

#[tokio::test]
async fn every_documented_operation_reaches_its_route_template() {
    let app = TestApp::offline().await;
    let document = served_document(&app).await;
    for (method, template) in documented(&document) {
        let concrete = template.replace('{', "x").replace('}', "");
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let response = app
            .client
            .request(method.clone(), app.url(&concrete))
            .send()
            .await
            .unwrap();
        assert_ne!(response.status(), 405, "{method} {template}");
    }

    // The metrics label requests by the route that served them ("unmatched" otherwise), so
    // each template must be there exactly as documented.
    let metrics = app.get_anonymously("/metrics").await;
    let metrics = metrics.text().await.unwrap();
    for (method, template) in documented(&document) {
        let label = format!(r#"endpoint="{template}",method="{method}""#);
        assert!(
            metrics.contains(&label),
            "{method} {template} did not reach its route"
        );
    }
}

#[tokio::test]
async fn every_operation_documents_success_errors_and_its_references_resolve() {
    let app = TestApp::offline().await;
    let document = served_document(&app).await;

    let mut references = Vec::new();
    collect_references(&document, &mut references);
    for reference in &references {
        let pointer = reference.strip_prefix('#').expect("local references only");
        assert!(
            document.pointer(pointer).is_some(),
            "unresolved {reference}"
        );
    }
    for (path, item) in document["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let responses = operation["responses"].as_object().unwrap();
            let name = format!("{method} {path}");
            assert!(
                responses.keys().any(|s| s.starts_with('2')),
                "{name}: no success response"
            );
            assert!(operation["summary"].is_string(), "{name}: no summary");
            let secured = operation
                .get("security")
                .is_none_or(|s| s.as_array().is_some_and(|a| !a.is_empty()));
            if secured {
                assert!(
                    responses.contains_key("401"),
                    "{name} needs a key: document 401"
                );
            }
            for (status, response) in responses {
                let mut described = Vec::new();
                collect_references(response, &mut described);
                let shaped = !described.is_empty() || response.pointer("/content").is_some();
                assert!(
                    status.starts_with('2') || shaped,
                    "{name} {status}: no error body schema"
                );
            }
        }
    }
}

fn collect_references(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(reference)) = map.get("$ref") {
                out.push(reference.clone());
            }
            map.values().for_each(|v| collect_references(v, out));
        }
        Value::Array(items) => items.iter().for_each(|v| collect_references(v, out)),
        _ => {}
    }
}

#[ignore = "needs python3 with tests/requirements.txt installed"]
#[tokio::test]
async fn the_document_is_valid_openapi_3_1() {
    let document = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/openapi.json");
    let check = "import sys\ntry:\n    from openapi_spec_validator import validate\n    from openapi_spec_validator.readers import read_from_filename\nexcept ImportError as e:\n    print(e, file=sys.stderr); sys.exit(77)\nvalidate(read_from_filename(sys.argv[1])[0])";
    let output = Command::new("python3")
        .args(["-c", check])
        .arg(&document)
        .output();
    match output {
        Ok(out) if out.status.code() == Some(77) || out.status.code().is_none() => {
            let why = String::from_utf8_lossy(&out.stderr).trim().to_owned();
            missing_validator(&why);
        }
        Ok(out) => assert!(
            out.status.success(),
            "docs/openapi.json is not valid OpenAPI: {}",
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(error) => missing_validator(&format!("python3 could not be run: {error}")),
    }
}

/// The validator comes from tests/requirements.txt; without it this test fails.
fn missing_validator(why: &str) {
    panic!("this test needs python3 with openapi-spec-validator (tests/requirements.txt): {why}");
}

#[tokio::test]
async fn the_docs_page_renders_the_document_with_nothing_from_elsewhere() {
    let app = TestApp::offline().await;

    let response = app.get_anonymously("/docs").await;

    assert_eq!(response.status(), 200);
    let headers = response.headers().clone();
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let policy = headers["content-security-policy"].to_str().unwrap();
    assert!(policy.contains("default-src 'none'") && policy.contains("connect-src 'self'"));
    let page = response.text().await.unwrap();
    assert!(page.contains(r#"fetch("/openapi.json")"#));
    for external in ["http://", "https://", "src=", "<link", "@import", "//cdn"] {
        assert!(
            !page.contains(external),
            "the page loads something from elsewhere: {external}"
        );
    }
}

//! Hostile connections: slow headers, idle keep-alive, oversized heads, stalled bodies and
//! more connections than the bound. The limits are set short here; every wait for a
//! cut-off allows a generous 30 s, so a slow machine cannot make these fail.

use std::time::Duration;

use imagegate::config::{Config, ProviderChoice};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use crate::support::TestApp;

const GENEROUS: Duration = Duration::from_secs(30);

fn offline_with(configure: impl FnOnce(&mut Config)) -> impl FnOnce(&mut Config) {
    move |c| {
        c.provider = ProviderChoice::Offline;
        // Long unless a test shortens them, so only the limit under test can apply.
        c.server.header_read_timeout_secs = 60.0;
        c.server.keep_alive_idle_secs = 60.0;
        c.server.body_idle_timeout_secs = 60.0;
        configure(c);
    }
}

async fn connect(app: &TestApp) -> TcpStream {
    let addr = app.base.trim_start_matches("http://");
    TcpStream::connect(addr).await.expect("connected")
}

/// Reads until the server closes the connection; what it sent before that.
async fn read_to_close(tcp: &mut TcpStream) -> Vec<u8> {
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tcp.read(&mut buf).await {
            Ok(0) | Err(_) => return seen,
            Ok(n) => seen.extend_from_slice(&buf[..n]),
        }
    }
}

#[tokio::test]
async fn a_client_sending_its_headers_one_byte_at_a_time_is_cut_off() {
    let app = TestApp::spawn(offline_with(|c| c.server.header_read_timeout_secs = 1.0)).await;
    let mut tcp = connect(&app).await;
    tcp.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .await
        .unwrap();
    // A byte every 200 ms: the connection is never idle, the head is never complete.
    let drip = async {
        loop {
            if tcp.write_all(b"a").await.is_err() {
                return;
            }
            let mut buf = [0u8; 64];
            let read = tokio::time::timeout(Duration::from_millis(200), tcp.read(&mut buf)).await;
            if let Ok(Ok(0) | Err(_)) = read {
                return;
            }
        }
    };
    tokio::time::timeout(GENEROUS, drip)
        .await
        .expect("the server closed the connection");
    // A well-behaved client is still served.
    assert_eq!(app.get("/health").await.status(), 200);
}

#[tokio::test]
async fn an_idle_kept_alive_connection_is_closed() {
    let app = TestApp::spawn(offline_with(|c| c.server.keep_alive_idle_secs = 0.5)).await;
    let mut tcp = connect(&app).await;
    tcp.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let answer = tokio::time::timeout(GENEROUS, read_to_close(&mut tcp))
        .await
        .expect("the idle connection was closed");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

#[tokio::test]
async fn a_connection_that_never_sends_a_request_is_closed() {
    let app = TestApp::spawn(offline_with(|c| c.server.keep_alive_idle_secs = 0.5)).await;
    let mut tcp = connect(&app).await;
    let answer = tokio::time::timeout(GENEROUS, read_to_close(&mut tcp))
        .await
        .expect("the silent connection was closed");
    assert!(answer.is_empty());
}

#[tokio::test]
async fn a_request_head_over_the_limit_is_answered_431() {
    let app = TestApp::spawn(offline_with(|c| c.server.max_header_bytes = 8 * 1024)).await;
    for (header, kib, status) in [("x-big", 20, 431), ("x-small", 4, 200)] {
        let request = app.client.get(app.url("/health"));
        let response = request.header(header, "a".repeat(kib * 1024)).send().await;
        assert_eq!(response.unwrap().status(), status, "{header}");
    }
}

#[tokio::test]
async fn a_body_that_stops_arriving_ends_the_request() {
    let app = TestApp::spawn(offline_with(|c| c.server.body_idle_timeout_secs = 0.5)).await;
    let mut tcp = connect(&app).await;
    let head = format!(
        "POST /generate-image HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{\"prompt\": \"a fox",
        app.key
    );
    tcp.write_all(head.as_bytes()).await.unwrap();
    // Then nothing more: the rest of the declared body never comes.
    let answer = tokio::time::timeout(GENEROUS, read_to_close(&mut tcp))
        .await
        .expect("the stalled request was ended");
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 4"),
        "no success for a body that never arrived: {answer}"
    );
}

#[tokio::test]
async fn connections_beyond_the_bound_wait_until_one_closes() {
    let app = TestApp::spawn(offline_with(|c| c.server.max_connections = 2)).await;
    let first = connect(&app).await;
    let _second = connect(&app).await;
    let client = reqwest::Client::new();
    let url = app.url("/health");
    let third = tokio::spawn(async move { client.get(url).send().await.map(|r| r.status()) });
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        !third.is_finished(),
        "a third connection is not served while two are open"
    );
    drop(first);
    let status = tokio::time::timeout(GENEROUS, third)
        .await
        .expect("served once a connection closed")
        .unwrap()
        .expect("answered");
    assert_eq!(status, 200);
}

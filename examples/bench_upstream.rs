//! A fake Gemini upstream built for speed, for `bench/run.sh`: the point is to measure
//! imagegate, so this server does as little as possible per request. Both answers (a
//! 1024² PNG of about 1.5 MB and a 2048² JPEG, base64 in Google's JSON) are encoded once
//! at start and served from memory as `Bytes`, after a configurable delay.
//!
//! ```sh
//! cargo run --release --example bench_upstream -- --port 18080 --image png --delay-ms 0
//! curl -X POST 'localhost:18080/admin/config?image=jpeg&delay_ms=10000'   # switch live
//! curl localhost:18080/stats      # {"in_flight":..,"max_in_flight":..,"served":..}
//! ```

#[path = "../benches/support/synth.rs"]
mod synth;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::serve::{Listener as _, ListenerExt as _};
use base64::Engine as _;
use bytes::Bytes;
use clap::Parser;
use serde_json::json;

#[derive(Parser)]
struct Args {
    /// 0 picks a free port; the address is printed on the first line of stdout.
    #[arg(long, default_value_t = 18080)]
    port: u16,
    /// Which answer to serve: `png` (1024², ~1.5 MB) or `jpeg` (2048²).
    #[arg(long, default_value = "png")]
    image: String,
    /// Held before answering, as a real generation would be.
    #[arg(long, default_value_t = 0)]
    delay_ms: u64,
    /// Also write the two images (`upstream_1024.png`, `upstream_2048.jpg`) here.
    #[arg(long)]
    save_images: Option<PathBuf>,
}

struct Fake {
    png: Bytes,
    jpeg: Bytes,
    serve_jpeg: AtomicBool,
    delay_ms: AtomicU64,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    served: AtomicU64,
}

/// A successful Gemini 3 answer (docs/upstream.md#response): a short text part and the
/// image, each with a thought signature, usage with image tokens, model version and id.
fn answer(image: &[u8], mime: &str) -> Bytes {
    let signature = base64::engine::general_purpose::STANDARD.encode([7u8; 600]);
    let body = json!({
        "candidates": [{
            "content": {
                "role": "model",
                "parts": [
                    {"text": "Here is the image you asked for.", "thoughtSignature": signature},
                    {
                        "inlineData": {
                            "mimeType": mime,
                            "data": base64::engine::general_purpose::STANDARD.encode(image),
                        },
                        "thoughtSignature": signature,
                    }
                ]
            },
            "finishReason": "STOP",
            "index": 0
        }],
        "usageMetadata": {
            "promptTokenCount": 12,
            "candidatesTokenCount": 1129,
            "totalTokenCount": 1141,
            "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 12}],
            "candidatesTokensDetails": [
                {"modality": "IMAGE", "tokenCount": 1120},
                {"modality": "TEXT", "tokenCount": 9}
            ]
        },
        "modelVersion": "gemini-3.1-flash-image",
        "responseId": "benchbenchbenchbenchbe"
    });
    Bytes::from(serde_json::to_vec(&body).expect("a JSON value always serialises"))
}

async fn generate_content(
    State(fake): State<Arc<Fake>>,
    Path((_version, call)): Path<(String, String)>,
    _request: Bytes,
) -> Response {
    if !call.ends_with(":generateContent") {
        return StatusCode::NOT_FOUND.into_response();
    }
    let now = fake.in_flight.fetch_add(1, Ordering::Relaxed) + 1;
    fake.max_in_flight.fetch_max(now, Ordering::Relaxed);
    let delay = fake.delay_ms.load(Ordering::Relaxed);
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    fake.in_flight.fetch_sub(1, Ordering::Relaxed);
    fake.served.fetch_add(1, Ordering::Relaxed);
    let body = if fake.serve_jpeg.load(Ordering::Relaxed) {
        fake.jpeg.clone()
    } else {
        fake.png.clone()
    };
    (
        [(header::CONTENT_TYPE, "application/json; charset=UTF-8")],
        body,
    )
        .into_response()
}

#[derive(serde::Deserialize)]
struct Reconfigure {
    image: Option<String>,
    delay_ms: Option<u64>,
    /// Zeroes the counters, so `/stats` describes the next phase only.
    reset: Option<bool>,
}

async fn admin(State(fake): State<Arc<Fake>>, Query(change): Query<Reconfigure>) -> Response {
    if let Some(image) = change.image {
        match image.as_str() {
            "png" => fake.serve_jpeg.store(false, Ordering::Relaxed),
            "jpeg" => fake.serve_jpeg.store(true, Ordering::Relaxed),
            _ => return (StatusCode::BAD_REQUEST, "image is png or jpeg").into_response(),
        }
    }
    if let Some(delay) = change.delay_ms {
        fake.delay_ms.store(delay, Ordering::Relaxed);
    }
    if change.reset == Some(true) {
        fake.max_in_flight
            .store(fake.in_flight.load(Ordering::Relaxed), Ordering::Relaxed);
        fake.served.store(0, Ordering::Relaxed);
    }
    stats(State(fake)).await
}

async fn stats(State(fake): State<Arc<Fake>>) -> Response {
    axum::Json(json!({
        "in_flight": fake.in_flight.load(Ordering::Relaxed),
        "max_in_flight": fake.max_in_flight.load(Ordering::Relaxed),
        "served": fake.served.load(Ordering::Relaxed),
        "delay_ms": fake.delay_ms.load(Ordering::Relaxed),
        "image": if fake.serve_jpeg.load(Ordering::Relaxed) { "jpeg" } else { "png" },
        "png_body_bytes": fake.png.len(),
        "jpeg_body_bytes": fake.jpeg.len(),
    }))
    .into_response()
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let args = Args::parse();
    let (png, jpeg) = tokio::task::spawn_blocking(|| {
        let png = synth::png(&synth::picture(1024, 1024, synth::PNG_NOISE_BITS));
        let jpeg = synth::jpeg(&synth::picture(2048, 2048, synth::JPEG_NOISE_BITS), 90);
        (png, jpeg)
    })
    .await?;
    if let Some(dir) = &args.save_images {
        std::fs::create_dir_all(dir)?;
        std::fs::write(dir.join("upstream_1024.png"), &png)?;
        std::fs::write(dir.join("upstream_2048.jpg"), &jpeg)?;
    }
    let fake = Arc::new(Fake {
        png: answer(&png, "image/png"),
        jpeg: answer(&jpeg, "image/jpeg"),
        serve_jpeg: AtomicBool::new(args.image == "jpeg"),
        delay_ms: AtomicU64::new(args.delay_ms),
        in_flight: AtomicUsize::new(0),
        max_in_flight: AtomicUsize::new(0),
        served: AtomicU64::new(0),
    });
    let app = Router::new()
        .route("/{version}/models/{call}", post(generate_content))
        .route("/admin/config", post(admin))
        .route("/stats", get(stats))
        .with_state(fake.clone());
    // As imagegate does: answers must not wait for a delayed ACK (Nagle).
    let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], args.port)))
        .await?
        .tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
    println!(
        "listening on {} (png {} bytes, jpeg {} bytes; answers {} and {} bytes)",
        listener.local_addr()?,
        png.len(),
        jpeg.len(),
        fake.png.len(),
        fake.jpeg.len()
    );
    axum::serve(listener, app).await
}

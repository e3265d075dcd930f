//! Hostile clients: bodies without end, clients that hang up or never read, requests that
//! fan out. One test per class of defect; the fake upstream counts the calls it is
//! answering at once, so "never more than the key's concurrency" is measured, not assumed.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use imagegate::clock::ManualClock;
use serde_json::json;

use crate::keys_limits::{gemini_at, header, offline_at};
use crate::support::fake_gemini::FakeGemini;
use crate::support::{TestApp, client_with_key, expect_error, expect_invalid, json_of};

/// This process's resident set, from `/proc` (Linux, where the suite runs).
fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .expect("VmRSS in /proc/self/status")
}

async fn wait_until_upstream_idle(fake: &FakeGemini) {
    tokio::time::timeout(Duration::from_secs(20), async {
        while fake.in_flight() > 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("the upstream calls ended");
}

#[tokio::test]
async fn a_chunked_multipart_stream_past_the_total_limit_gets_413_without_being_buffered() {
    let app = TestApp::offline().await;
    let limit = app.config.limits.max_multipart_bytes as u64;
    // 16 MiB file parts (each under the per-file limit), 256 MiB in all, sent chunked:
    // no Content-Length announces the size.
    const PART: usize = 16 * 1024 * 1024;
    const TOTAL: u64 = 256 * 1024 * 1024;
    let sent = Arc::new(AtomicU64::new(0));
    let counter = sent.clone();
    let boundary = "hostile-boundary";
    let chunk = Bytes::from(vec![b'x'; 64 * 1024]);
    let body = futures_util::stream::unfold(0u64, move |offset| {
        let (chunk, counter) = (chunk.clone(), counter.clone());
        async move {
            if offset >= TOTAL {
                return None;
            }
            let in_part = offset as usize % PART;
            let piece = if in_part == 0 {
                let mut head = Vec::new();
                if offset > 0 {
                    head.extend_from_slice(b"\r\n");
                }
                head.extend_from_slice(format!("--{boundary}\r\ncontent-disposition: form-data; name=\"image\"; filename=\"a.png\"\r\ncontent-type: image/png\r\n\r\n").as_bytes());
                head.extend_from_slice(&chunk);
                Bytes::from(head)
            } else {
                chunk
            };
            counter.fetch_add(piece.len() as u64, Ordering::SeqCst);
            Some((Ok::<_, std::io::Error>(piece), offset + 64 * 1024))
        }
    });
    let before = rss_bytes();
    let response = app
        .client
        .post(app.url("/edit-image"))
        .header(
            "content-type",
            format!("multipart/form-data; boundary={boundary}"),
        )
        .body(reqwest::Body::wrap_stream(body))
        .send()
        .await;
    let grown = rss_bytes().saturating_sub(before);
    if let Ok(response) = response {
        let body = expect_error(response, 413, "file_too_large").await;
        assert_eq!(body["details"]["max_bytes"], limit);
    }
    // Either way (answer read, or the connection closed under the writer), the server
    // stopped reading near the limit rather than taking the whole stream.
    let read = sent.load(Ordering::SeqCst);
    assert!(read < TOTAL, "the server read all {read} bytes");
    assert!(
        grown < limit,
        "the process grew by {grown} bytes for a body past a {limit}-byte limit"
    );
}

#[tokio::test]
async fn more_parts_than_any_form_has_are_refused_with_400() {
    let app = TestApp::offline().await;
    let mut form = reqwest::multipart::Form::new();
    for _ in 0..40 {
        form = form.text("prompt", "again");
    }
    let body = expect_invalid(app.post_form("/edit-image", form).await).await;
    assert!(body["details"]["max_parts"].as_u64().is_some(), "{body}");
}

#[tokio::test]
async fn streamed_stories_beyond_the_keys_concurrency_get_429() {
    let fake = FakeGemini::start().await;
    let app = gemini_at(&ManualClock::starting_now(), &fake).await;
    let marker = "[[fake:slow_1500]]";
    let story = |i: usize| {
        app.client
            .post(app.url("/story/generate"))
            .header("accept", "text/event-stream")
            .json(&json!({"description": format!("fox {i} {marker}"), "num_images": 1}))
            .send()
    };
    let mut streams = Vec::new();
    for i in 0..5 {
        let response = story(i).await.unwrap();
        assert_eq!(response.status(), 200);
        streams.push(response);
    }
    fake.wait_for_calls(marker, 5).await;
    let refused = story(5).await.unwrap();
    let body = expect_error(refused, 429, "rate_limit_exceeded").await;
    assert_eq!(body["details"]["limit"], "concurrency");
    for stream in streams {
        let text = stream.text().await.unwrap();
        assert!(text.contains("event: done"), "{text}");
    }
    assert_eq!(
        fake.calls_for(marker).len(),
        5,
        "the refused story made no call"
    );
}

#[tokio::test]
async fn a_client_that_hangs_up_holds_its_slot_until_its_upstream_call_ends() {
    let fake = FakeGemini::start().await;
    let app = gemini_at(&ManualClock::starting_now(), &fake).await;
    let marker = "[[fake:slow_2000]]";
    let abandoned: Vec<_> = (0..5)
        .map(|i| {
            let request = client_with_key(Some(&app.key))
                .post(app.url("/generate-image"))
                .json(&json!({"prompt": format!("fox {i} {marker}"), "response_modalities": ["IMAGE"]}));
            tokio::spawn(async move { request.send().await.map(|r| r.status()) })
        })
        .collect();
    fake.wait_for_calls(marker, 5).await;
    for request in &abandoned {
        request.abort();
    }
    // The clients are gone, the paid calls go on, and so do their slots.
    let refused = app.get("/usage").await;
    let body = expect_error(refused, 429, "rate_limit_exceeded").await;
    assert_eq!(body["details"]["limit"], "concurrency");
    wait_until_upstream_idle(&fake).await;
    let freed = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            if app.get("/usage").await.status() == 200 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert!(freed.is_ok(), "the slots came free when the work ended");
}

#[tokio::test]
async fn a_story_longer_than_what_is_left_of_the_minute_gets_429_and_no_upstream_call() {
    let fake = FakeGemini::start().await;
    let app = gemini_at(&ManualClock::starting_now(), &fake).await;
    let free = client_with_key(Some(&app.create_key("free").await));
    for _ in 0..10 {
        assert_eq!(app.get_as(&free, "/usage").await.status(), 200);
    }
    let marker = "[[fake:thoughts]]";
    let refused = app
        .post_json_as(
            &free,
            "/story/generate",
            json!({"description": format!("a fox {marker}"), "num_images": 6}),
        )
        .await;
    assert_eq!(header(&refused, "x-ratelimit-remaining"), "5");
    let body = expect_error(refused, 429, "rate_limit_exceeded").await;
    assert_eq!(body["details"]["limit"], "requests_per_minute");
    assert_eq!(body["details"]["cost"], 6);
    assert!(
        fake.calls_for(marker).is_empty(),
        "no upstream call was made"
    );
    let fits = app
        .post_json_as(
            &free,
            "/story/generate",
            json!({"description": format!("a fox {marker}"), "num_images": 5}),
        )
        .await;
    assert_eq!(fits.status(), 200);
    assert_eq!(
        header(&fits, "x-ratelimit-remaining"),
        "0",
        "five steps cost five"
    );
    assert_eq!(fake.requests().len(), 5);
}

#[tokio::test]
async fn openai_n_counts_n_and_never_runs_more_than_the_keys_concurrency() {
    let fake = FakeGemini::start().await;
    let base_url = fake.base_url();
    let app = TestApp::spawn_full(
        tempfile::tempdir().unwrap(),
        Arc::new(ManualClock::starting_now()),
        move |c| {
            c.provider = imagegate::config::ProviderChoice::Gemini;
            c.google_api_key = Some(imagegate::config::Secret::new(
                crate::support::fake_gemini::FAKE_API_KEY,
            ));
            c.gemini.base_url = base_url;
            c.gemini.deadline_secs = 20.0;
            c.tiers =
                toml::from_str("[duo]\nrequests_per_minute = 100\nmax_concurrent = 2\n").unwrap();
        },
    )
    .await;
    let duo = client_with_key(Some(&app.create_key("duo").await));
    let marker = "[[fake:slow_300]]";
    let send = || {
        duo.post(app.url("/v1/images/generations"))
            .json(&json!({"prompt": format!("a fox {marker}"), "n": 4, "size": "512x512"}))
            .send()
    };
    let (a, b) = tokio::join!(send(), send());
    let (a, b) = (a.unwrap(), b.unwrap());
    let statuses = [a.status().as_u16(), b.status().as_u16()];
    assert!(statuses.contains(&200), "{statuses:?}");
    let ok = if a.status() == 200 { a } else { b };
    let remaining: u32 = header(&ok, "x-ratelimit-remaining").parse().unwrap();
    assert!(
        remaining <= 96,
        "n=4 counts 4 of the minute, {remaining} left"
    );
    let (_, _, body) = json_of(ok).await;
    assert_eq!(body["data"].as_array().unwrap().len(), 4);
    assert!(
        fake.max_in_flight() <= 2,
        "{} upstream calls at once for a key of 2",
        fake.max_in_flight()
    );
}

#[tokio::test]
async fn a_free_key_with_five_left_cannot_start_openai_n_6() {
    let clock = ManualClock::starting_now();
    let app = offline_at(&clock, |_| {}).await;
    let free = client_with_key(Some(&app.create_key("free").await));
    for _ in 0..10 {
        assert_eq!(app.get_as(&free, "/usage").await.status(), 200);
    }
    let refused = app
        .post_json_as(
            &free,
            "/v1/images/generations",
            json!({"prompt": "a fox", "n": 6}),
        )
        .await;
    assert_eq!(refused.status(), 429);
    assert_eq!(header(&refused, "x-ratelimit-remaining"), "5");
}

#[tokio::test]
async fn async_work_past_the_keys_concurrency_waits_in_the_queue() {
    let fake = FakeGemini::start().await;
    let app = TestApp::gemini_with(&fake, |c| {
        c.jobs.workers = 4;
        c.tiers = toml::from_str("[duo]\nrequests_per_minute = 100\nmax_concurrent = 2\n").unwrap();
    })
    .await;
    let duo = client_with_key(Some(&app.create_key("duo").await));
    let marker = "[[fake:slow_300]]";
    let mut ids = Vec::new();
    for i in 0..4 {
        let (status, id, body) = json_of(
            app.post_json_as(&duo, "/generate-image", json!({"prompt": format!("fox {i} {marker}"), "async": true, "model": "gemini-3.1-flash-image", "image_size": "512"})).await,
        )
        .await;
        assert_eq!(status, 202, "accepted, not refused: {body}");
        ids.push(id);
    }
    for id in &ids {
        let done = tokio::time::timeout(Duration::from_secs(20), async {
            loop {
                let (_, _, body) =
                    json_of(app.get_as(&duo, &format!("/requests/{id}")).await).await;
                if body["status"] == "succeeded" || body["status"] == "failed" {
                    break body;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await
        .expect("the queued work ran");
        assert_eq!(done["status"], "succeeded", "{done}");
    }
    assert!(
        fake.max_in_flight() <= 2,
        "{} at once",
        fake.max_in_flight()
    );
}

#[tokio::test]
async fn a_part_header_past_its_bound_is_refused_with_400() {
    let app = TestApp::offline().await;
    let boundary = "hostile-boundary";
    let mut body =
        format!("--{boundary}\r\ncontent-disposition: form-data; name=\"prompt\"\r\nx-padding: ")
            .into_bytes();
    body.extend(std::iter::repeat_n(b'a', 64 * 1024));
    body.extend_from_slice(format!("\r\n\r\nblue\r\n--{boundary}--\r\n").as_bytes());
    let chunks: Vec<Result<Bytes, std::io::Error>> = body
        .chunks(1000)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    let response = app
        .client
        .post(app.url("/edit-image"))
        .header(
            "content-type",
            format!("multipart/form-data; boundary={boundary}"),
        )
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            chunks,
        )))
        .send()
        .await
        .unwrap();
    let body = expect_invalid(response).await;
    assert!(
        body["details"]["max_part_header_bytes"].as_u64().is_some(),
        "{body}"
    );
}

#[tokio::test]
async fn an_outpaint_canvas_past_the_output_cap_is_refused_before_it_is_built() {
    let app = TestApp::offline().await;
    // 2000² grown by 2.0 on every side is 10000²: 100 M pixels, past the 4K cap.
    let form = reqwest::multipart::Form::new()
        .part(
            "image",
            crate::support::file_part(crate::support::png(2000, 2000), "a.png"),
        )
        .text("prompt", "more sky")
        .text("extension_ratio", "2.0");
    let body = expect_invalid(app.post_form("/advanced/outpaint", form).await).await;
    assert_eq!(body["details"]["field"], "extension_ratio");
    assert_eq!(body["details"]["max_pixels"], 4096 * 4096);
}

#[tokio::test]
async fn heavy_requests_wait_for_decoded_pixel_memory_then_get_503_with_retry_after() {
    let fake = FakeGemini::start().await;
    let app = TestApp::gemini_with(&fake, |c| {
        // Room for one outpaint of this size at a time.
        c.limits.max_decoded_bytes = 4 * 1024 * 1024;
        c.limits.decode_wait_secs = 1;
    })
    .await;
    let marker = "[[fake:slow_2500]]";
    let outpaint = || {
        let form = reqwest::multipart::Form::new()
            .part(
                "image",
                crate::support::file_part(crate::support::png(300, 300), "a.png"),
            )
            .text("prompt", format!("more sky {marker}"))
            .text("extension_ratio", "0.5");
        app.post_form("/advanced/outpaint", form)
    };
    let first = outpaint();
    let second = async {
        fake.wait_for_calls(marker, 1).await;
        outpaint().await
    };
    let (first, second) = tokio::join!(first, second);
    assert_eq!(first.status(), 200, "the first ran");
    assert_eq!(header(&second, "retry-after"), "1");
    expect_error(second, 503, "server_busy").await;
    assert_eq!(
        fake.calls_for(marker).len(),
        1,
        "the refused one made no call"
    );
}

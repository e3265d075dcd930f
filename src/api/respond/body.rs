//! The JSON body of every generation answer that carries images (a generation, a chat
//! message, a story, OpenAI's `b64_json` list), written without copying them.
//!
//! An answer is mostly base64: 2 MB of it for a 1.5 MB PNG. `axum::Json` would run serde
//! over all of it, looking at every byte for characters to escape (base64 has none) and
//! copying it into a buffer that grows by doubling: a tenth of the gateway's CPU time in
//! the benchmark (docs/benchmarks.md). Here the other fields are serialised as usual and
//! each image's base64 becomes a chunk of the body by itself, moved rather than copied.

use std::convert::Infallible;

use axum::body::Body;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;

use serde::Serialize;

use crate::error::ApiError;
use crate::generation::GenerationResponse;
use crate::generation::execute::MessageResponse;
use crate::generation::story::StoryResponse;

/// A body whose `images` field is a list of base64 strings.
pub trait WithImages: Serialize {
    fn images(&mut self) -> &mut Vec<String>;
}

impl WithImages for GenerationResponse {
    fn images(&mut self) -> &mut Vec<String> {
        &mut self.images
    }
}

impl WithImages for MessageResponse {
    fn images(&mut self) -> &mut Vec<String> {
        &mut self.generation.images
    }
}

impl WithImages for StoryResponse {
    fn images(&mut self) -> &mut Vec<String> {
        &mut self.generation.images
    }
}

/// Where the images go in the serialised rest. Only the key can look like this: inside a
/// serialised string every `"` is escaped.
const NO_IMAGES: &[u8] = br#""images":[]"#;

pub fn json(mut response: impl WithImages) -> Response {
    let images = std::mem::take(response.images());
    match spliced(&response, NO_IMAGES, images, b"", b"") {
        Ok(written) => written,
        Err(images) => {
            // A response shaped otherwise than this module knows: the plain way, still right.
            *response.images() = images;
            axum::Json(response).into_response()
        }
    }
}

/// `rest` serialised, with `items` written into the empty list `empty` (`"key":[]`) that
/// it holds: each item as a JSON string between `before` and `after`, its bytes moved
/// rather than copied. `Err` gives the items back when `rest` has no such list.
pub fn spliced(
    rest: &impl Serialize,
    empty: &'static [u8],
    items: Vec<String>,
    before: &'static [u8],
    after: &'static [u8],
) -> Result<Response, Vec<String>> {
    let rest = match serde_json::to_vec(rest) {
        Ok(rest) => rest,
        Err(e) => return Ok(ApiError::internal(e).into_response()),
    };
    let Some(at) = rest.windows(empty.len()).position(|w| w == empty) else {
        return Err(items);
    };
    let rest = Bytes::from(rest);
    let open = at + empty.len() - 1; // just past the list's `[`
    let mut chunks = Vec::with_capacity(5 * items.len() + 2);
    chunks.push(rest.slice(..open));
    for (i, item) in items.into_iter().enumerate() {
        if i > 0 {
            chunks.push(Bytes::from_static(b","));
        }
        chunks.push(Bytes::from_static(before));
        if needs_no_escaping(&item) {
            chunks.push(Bytes::from_static(b"\""));
            chunks.push(Bytes::from(item));
            chunks.push(Bytes::from_static(b"\""));
        } else {
            // Not base64 after all: serde escapes it (a String always serialises).
            chunks.push(Bytes::from(serde_json::to_vec(&item).unwrap_or_default()));
        }
        chunks.push(Bytes::from_static(after));
    }
    chunks.push(rest.slice(open..));
    let length: usize = chunks.iter().map(Bytes::len).sum();
    let body = Body::from_stream(futures_util::stream::iter(
        chunks.into_iter().map(Ok::<_, Infallible>),
    ));
    Ok((
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            ),
            (header::CONTENT_LENGTH, HeaderValue::from(length)),
        ],
        body,
    )
        .into_response())
}

/// True when `s` can go between quotes as it is: no `"`, `\` or control character, as
/// base64 never has. Folds whole blocks without stopping early, so it vectorises.
fn needs_no_escaping(s: &str) -> bool {
    s.as_bytes().chunks(64).all(|block| {
        block
            .iter()
            .fold(true, |ok, &b| ok & (b >= 0x20) & (b != b'"') & (b != b'\\'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generation::Usage;
    use crate::generation::story::StoryStep;
    use http_body_util::BodyExt as _;

    fn response(images: &[&str]) -> GenerationResponse {
        GenerationResponse {
            request_id: "req_1".into(),
            model: "gemini-3.1-flash-image".into(),
            images: images.iter().map(|s| s.to_string()).collect(),
            image_ids: images.iter().map(|_| "img_1".to_owned()).collect(),
            mime_types: images.iter().map(|_| "image/png").collect(),
            text: Some("a \"quoted\" images\":[] text".into()),
            finish_reason: "STOP".into(),
            usage: Usage {
                input_tokens: 1,
                output_tokens: 2,
                image_tokens: 3,
                thought_tokens: 0,
                cost_usd: 0.5,
            },
            cached: false,
            quality: None,
        }
    }

    async fn body_of(response: Response) -> (Option<String>, Bytes) {
        let length = response
            .headers()
            .get(header::CONTENT_LENGTH)
            .map(|v| v.to_str().unwrap().to_owned());
        (
            length,
            response.into_body().collect().await.unwrap().to_bytes(),
        )
    }

    const IMAGE_LISTS: [&[&str]; 4] = [
        &[],
        &["iVBORw0KGgo="],
        &["iVBORw0KGgo=", "/9j/4AAQ+Rg=="],
        &["not \"base64\"\n", "AAAA"],
    ];

    async fn assert_byte_for_byte<T: WithImages>(body: impl Fn(&[&str]) -> T) {
        for images in IMAGE_LISTS {
            let expected = serde_json::to_vec(&body(images)).unwrap();

            let (length, written) = body_of(json(body(images))).await;

            assert_eq!(
                std::str::from_utf8(&written).unwrap(),
                std::str::from_utf8(&expected).unwrap()
            );
            assert_eq!(length, Some(expected.len().to_string()));
        }
    }

    #[tokio::test]
    async fn the_body_is_byte_for_byte_what_serde_writes() {
        assert_byte_for_byte(response).await;
    }

    #[tokio::test]
    async fn a_chat_message_body_is_byte_for_byte_what_serde_writes() {
        assert_byte_for_byte(|images: &[&str]| MessageResponse {
            generation: response(images),
            session_id: "ses_1".into(),
            turn: 2,
        })
        .await;
    }

    #[tokio::test]
    async fn an_openai_data_list_is_byte_for_byte_what_serde_writes() {
        for images in IMAGE_LISTS {
            let usage = serde_json::json!({"input_tokens": 1, "note": "\"data\":[] in a string"});
            let expected = serde_json::to_vec(&serde_json::json!({
                "created": 1,
                "data": images.iter().map(|i| serde_json::json!({"b64_json": i, "revised_prompt": null})).collect::<Vec<_>>(),
                "usage": usage,
            }))
            .unwrap();
            let rest = serde_json::json!({"created": 1, "data": [], "usage": usage});
            let items = images.iter().map(|s| s.to_string()).collect();
            let written = spliced(
                &rest,
                br#""data":[]"#,
                items,
                br#"{"b64_json":"#,
                br#","revised_prompt":null}"#,
            );

            let (length, written) = body_of(written.unwrap()).await;

            assert_eq!(
                std::str::from_utf8(&written).unwrap(),
                std::str::from_utf8(&expected).unwrap()
            );
            assert_eq!(length, Some(expected.len().to_string()));
        }
    }

    #[tokio::test]
    async fn a_story_body_is_byte_for_byte_what_serde_writes() {
        assert_byte_for_byte(|images: &[&str]| StoryResponse {
            generation: response(images),
            steps: (0..images.len())
                .map(|index| StoryStep {
                    index: index + 1,
                    caption: r#"a caption naming "images":[]"#.into(),
                    image: None,
                    image_id: "img_1".into(),
                    mime_type: "image/png",
                })
                .collect(),
        })
        .await;
    }
}

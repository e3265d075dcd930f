//! The JSON body of every generation answer that carries images (a generation, a chat
//! message, a story), written without copying them.
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
    let rest = match serde_json::to_vec(&response) {
        Ok(rest) => rest,
        Err(e) => return ApiError::internal(e).into_response(),
    };
    let Some(at) = rest.windows(NO_IMAGES.len()).position(|w| w == NO_IMAGES) else {
        // A response shaped otherwise than this module knows: the plain way, still right.
        *response.images() = images;
        return axum::Json(response).into_response();
    };
    let rest = Bytes::from(rest);
    let mut chunks = Vec::with_capacity(3 * images.len() + 3);
    chunks.push(rest.slice(..at));
    chunks.push(Bytes::from_static(br#""images":["#));
    for (i, image) in images.into_iter().enumerate() {
        if i > 0 {
            chunks.push(Bytes::from_static(b","));
        }
        if needs_no_escaping(&image) {
            chunks.push(Bytes::from_static(b"\""));
            chunks.push(Bytes::from(image));
            chunks.push(Bytes::from_static(b"\""));
        } else {
            // Not base64 after all: serde escapes it (a String always serialises).
            chunks.push(Bytes::from(serde_json::to_vec(&image).unwrap_or_default()));
        }
    }
    chunks.push(Bytes::from_static(b"]"));
    chunks.push(rest.slice(at + NO_IMAGES.len()..));
    let length: usize = chunks.iter().map(Bytes::len).sum();
    let body = Body::from_stream(futures_util::stream::iter(
        chunks.into_iter().map(Ok::<_, Infallible>),
    ));
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            ),
            (header::CONTENT_LENGTH, HeaderValue::from(length)),
        ],
        body,
    )
        .into_response()
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

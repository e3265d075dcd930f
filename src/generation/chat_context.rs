//! Which of a chat's earlier images go upstream with the next turn.
//!
//! Every turn re-sends the history, and an upstream request must stay under 20 MB; a Pro
//! image at 4K is several MB, so sending every image ended sessions after a few turns.
//! The policy instead: the newest images, at most `sessions.context_images` of them and
//! within `sessions.max_image_bytes` (the new message's own image counted first), go
//! upstream as images; every older image goes as a short text naming its id. Text turns
//! always go. A session so ends only at `sessions.max_turns` or after
//! `sessions.idle_ttl_secs` without a message.

use std::collections::HashMap;

use bytes::Bytes;

use crate::config::SessionsConfig;
use crate::generation::GenerationError;
use crate::store::ImageStore;
use crate::store::sessions::StoredTurn;

/// The bytes of the earlier images that go upstream as images, by image id.
pub async fn images_in_context(
    images: &ImageStore,
    config: &SessionsConfig,
    history: &[StoredTurn],
    new_image_bytes: u64,
) -> Result<HashMap<String, Bytes>, GenerationError> {
    let mut kept = HashMap::new();
    let mut used = new_image_bytes;
    let newest_first = history
        .iter()
        .rev()
        .flat_map(|turn| turn.parts.iter().rev())
        .filter_map(|part| part.image_id.as_deref());
    for image_id in newest_first {
        if kept.len() >= config.context_images as usize {
            break;
        }
        let bytes = images.get_any_owner(image_id).await?.ok_or_else(|| {
            GenerationError::internal(format!("history image {image_id} is missing"))
        })?;
        used += bytes.len() as u64;
        if used > config.max_image_bytes {
            // Older images would not fit either way: context stays a contiguous recent run.
            break;
        }
        kept.insert(image_id.to_owned(), bytes);
    }
    Ok(kept)
}

/// What the model reads in place of an image that is no longer sent.
pub fn placeholder(image_id: &str) -> String {
    format!("[An earlier image, {image_id}, is no longer included in this conversation.]")
}

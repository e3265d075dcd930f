//! Google's own wire format relayed as it is (the native Gemini surface,
//! `generation::native`), seen by the domain through this trait rather than through the
//! Gemini client itself.

use bytes::Bytes;

use crate::provider::{Generated, ProviderError, ServedAs};

#[async_trait::async_trait]
pub trait NativeUpstream: Send + Sync + 'static {
    /// Sends `body` to `model:action` and returns the status and body as they came.
    async fn forward(
        &self,
        model: &str,
        action: &str,
        body: Bytes,
    ) -> Result<(u16, Bytes), ProviderError>;

    /// Reads a relayed answer as a generation (images, usage), to keep it for the caller.
    fn interpret(&self, answer: &[u8], served: ServedAs) -> Result<Generated, ProviderError>;
}

#[async_trait::async_trait]
impl NativeUpstream for crate::provider::gemini::GeminiProvider {
    async fn forward(
        &self,
        model: &str,
        action: &str,
        body: Bytes,
    ) -> Result<(u16, Bytes), ProviderError> {
        crate::provider::gemini::GeminiProvider::forward(self, model, action, body).await
    }

    fn interpret(&self, answer: &[u8], served: ServedAs) -> Result<Generated, ProviderError> {
        crate::provider::gemini::interpret(answer, served)
    }
}

/// Google's JSON carries bytes in either base64 alphabet: the bytes, and whether the
/// standard one was used.
pub fn decode_base64(data: &str) -> Option<(Vec<u8>, bool)> {
    crate::provider::gemini::decode_base64(data)
}

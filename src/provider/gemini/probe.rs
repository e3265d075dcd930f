//! The readiness probe: can this gateway reach Google with its key? A model listing
//! (`GET /{version}/models`) generates nothing and spends no generation quota, yet fails
//! exactly when generation would: closed port, DNS, TLS, or a key Google rejects.

use std::time::Duration;

use super::GeminiProvider;

/// A probe slower than this says the upstream is not usable for interactive work.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

impl GeminiProvider {
    /// `Ok` when the upstream answered the listing with 2xx; otherwise why not, without
    /// the key or the URL's query.
    pub async fn probe(&self) -> Result<(), String> {
        let url = format!("{}/{}/models?pageSize=1", self.base_url, self.api_version);
        let response = self
            .http
            .get(url)
            .header("x-goog-api-key", self.api_key.expose())
            .timeout(PROBE_TIMEOUT)
            .send()
            .await
            .map_err(|e| format!("unreachable: {}", e.without_url()))?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let body = response.text().await.unwrap_or_default();
        let reason = if body.contains("API_KEY_INVALID") {
            "the upstream rejected the gateway's API key"
        } else {
            match status.as_u16() {
                401 | 403 => "the upstream denied the gateway's API key",
                429 => "the upstream is rate limiting this key",
                _ => "the upstream answered with an error",
            }
        };
        Err(format!("{reason} (HTTP {})", status.as_u16()))
    }
}

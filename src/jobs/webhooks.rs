//! Webhook delivery per the Standard Webhooks spec: `webhook-id`, `webhook-timestamp`
//! and `webhook-signature: v1,<base64 HMAC-SHA256 of "id.timestamp.body">` under the
//! key's `whsec_` secret. Retried with exponential backoff and jitter until a 2xx or the
//! budget is spent; 410 Gone stops at once. Where a webhook may go is decided in
//! [`super::webhook_targets`], at submission and again before every attempt.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use rand::Rng as _;
use sha2::Sha256;

pub use super::webhook_targets::{Target, Unusable, check, resolve};
use crate::config::{ServiceUrl, WebhooksConfig};

/// A fresh `whsec_` secret: 32 random bytes, base64.
pub fn new_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill(&mut bytes);
    format!("whsec_{}", STANDARD.encode(bytes))
}

/// `v1,<signature>` for one message.
pub fn sign(secret: &str, id: &str, timestamp: i64, body: &str) -> Option<String> {
    let key = STANDARD
        .decode(secret.strip_prefix("whsec_").unwrap_or(secret))
        .ok()?;
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&key).ok()?;
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body.as_bytes());
    Some(format!(
        "v1,{}",
        STANDARD.encode(mac.finalize().into_bytes())
    ))
}

/// What one delivery attempt came to.
#[derive(Debug, PartialEq, Eq)]
pub enum Attempt {
    Delivered(u16),
    /// 410 Gone: the receiver asked us to stop.
    Gone,
    /// The target is refused now (its name resolves to a refused address).
    Refused,
    Retry(Option<u16>),
}

/// The client for one attempt: pinned to the address that passed the check, so DNS
/// cannot swap it afterwards. `HTTP(S)_PROXY` and the like are ignored, as a proxy would
/// resolve the name itself and undo the pin; only a proxy the operator configured
/// (`jobs.webhooks.proxy`) is used, and its own egress rules apply then.
fn client(
    target: &Target,
    timeout: Duration,
    proxy: Option<&str>,
) -> reqwest::Result<reqwest::Client> {
    let builder = reqwest::Client::builder()
        .resolve(&target.host, target.addr)
        .timeout(timeout)
        .redirect(reqwest::redirect::Policy::none());
    match proxy {
        Some(url) => builder.proxy(reqwest::Proxy::all(url)?),
        None => builder.no_proxy(),
    }
    .build()
}

pub async fn send(
    target: &Target,
    id: &str,
    timestamp: i64,
    body: &str,
    secret: &str,
    timeout: Duration,
    proxy: Option<&str>,
) -> Attempt {
    let Some(signature) = sign(secret, id, timestamp, body) else {
        return Attempt::Retry(None);
    };
    let Ok(client) = client(target, timeout, proxy) else {
        return Attempt::Retry(None);
    };
    let sent = client
        .post(target.url.clone())
        .header("content-type", "application/json")
        .header("webhook-id", id)
        .header("webhook-timestamp", timestamp.to_string())
        .header("webhook-signature", signature)
        .body(body.to_owned())
        .send()
        .await;
    match sent {
        Ok(r) if r.status().is_success() => Attempt::Delivered(r.status().as_u16()),
        Ok(r) if r.status().as_u16() == 410 => Attempt::Gone,
        Ok(r) => Attempt::Retry(Some(r.status().as_u16())),
        Err(_) => Attempt::Retry(None),
    }
}

/// One delivery attempt to `url`, checked and resolved again first. A name that does
/// not resolve is retried like any network failure; a refused address is final.
pub async fn attempt(
    url: &str,
    policy: &WebhooksConfig,
    id: &str,
    timestamp: i64,
    body: &str,
    secret: &str,
) -> Attempt {
    match resolve(url, policy.allow_private).await {
        Ok(target) => {
            let proxy = policy.proxy.as_ref().map(ServiceUrl::expose);
            send(
                &target,
                id,
                timestamp,
                body,
                secret,
                policy.timeout(),
                proxy,
            )
            .await
        }
        Err(Unusable::Refused(_)) => Attempt::Refused,
        Err(Unusable::Unresolved(_)) => Attempt::Retry(None),
    }
}

/// Exponential backoff with full jitter between half and the whole step.
pub fn backoff(attempt: i64, initial: Duration, max: Duration) -> Duration {
    let step = initial
        .saturating_mul(1u32 << attempt.clamp(0, 16) as u32)
        .min(max);
    let half = step / 2;
    half + half.mul_f64(rand::rng().random::<f64>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_name_that_does_not_resolve_is_retried_and_a_refused_address_is_not() {
        let policy = WebhooksConfig::default();
        let secret = new_secret();
        // `.invalid` never resolves (RFC 2606): a DNS failure at delivery time.
        let unresolved = attempt(
            "http://hooks.example.invalid/x",
            &policy,
            "msg_1",
            0,
            "{}",
            &secret,
        );
        assert_eq!(unresolved.await, Attempt::Retry(None));
        let refused = attempt("http://localhost:9/x", &policy, "msg_1", 0, "{}", &secret);
        assert_eq!(refused.await, Attempt::Refused);
    }

    #[test]
    fn signatures_follow_the_standard_webhooks_example() {
        // The example from the Standard Webhooks specification.
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let body = r#"{"test": 2432232314}"#;
        let signed = sign(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body).unwrap();
        assert_eq!(signed, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }
}

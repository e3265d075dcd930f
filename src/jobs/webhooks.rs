//! Webhook delivery per the Standard Webhooks spec: `webhook-id`, `webhook-timestamp`
//! and `webhook-signature: v1,<base64 HMAC-SHA256 of "id.timestamp.body">` under the
//! key's `whsec_` secret. Retried with exponential backoff and jitter until a 2xx or the
//! budget is spent; 410 Gone stops at once. Targets on loopback, private, link-local or
//! metadata addresses are refused at submit and again at send time (DNS can change in
//! between), and the request is sent to the address that was checked.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use rand::Rng as _;
use sha2::Sha256;

use crate::error::ApiError;

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

fn forbidden(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                // Carrier-grade NAT (100.64.0.0/10) and "this network" (0.0.0.0/8).
                || (v4.octets()[0] == 100 && (v4.octets()[1] & 0xC0) == 64)
                || v4.octets()[0] == 0
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return forbidden(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00 // unique local (incl. fd00:ec2::254, a metadata address)
                || (first & 0xffc0) == 0xfe80 // link-local
        }
    }
}

/// Where a webhook may be sent: the URL's host resolved, with every address allowed.
#[derive(Debug, Clone)]
pub struct Target {
    pub url: reqwest::Url,
    pub host: String,
    pub addr: SocketAddr,
}

/// Checks a webhook URL and resolves it. `allow_private` is the operator's opt-in for
/// internal receivers (and for tests on loopback).
pub async fn check(url: &str, allow_private: bool) -> Result<Target, ApiError> {
    let invalid = |message: &str| ApiError::invalid("webhook_url", message.to_owned());
    let parsed =
        reqwest::Url::parse(url).map_err(|_| invalid("The webhook URL is not a valid URL."))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(invalid("The webhook URL must be http or https."));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(invalid("The webhook URL must not carry credentials."));
    }
    let host = parsed
        .host_str()
        .ok_or_else(|| invalid("The webhook URL has no host."))?
        .to_owned();
    let port = parsed.port_or_known_default().unwrap_or(443);
    let bare = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let addrs: Vec<SocketAddr> = match bare.parse::<IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, port)],
        Err(_) => tokio::time::timeout(
            Duration::from_secs(5),
            tokio::net::lookup_host((bare.as_str(), port)),
        )
        .await
        .map_err(|_| invalid("The webhook host did not resolve in time."))?
        .map_err(|_| invalid("The webhook host does not resolve."))?
        .collect(),
    };
    let first = *addrs
        .first()
        .ok_or_else(|| invalid("The webhook host does not resolve."))?;
    if !allow_private && addrs.iter().any(|a| forbidden(a.ip())) {
        return Err(ApiError::invalid(
            "webhook_url",
            "Webhook targets on loopback, private, link-local or metadata addresses are not allowed.",
        )
        .detail("reason", "forbidden_address"));
    }
    Ok(Target {
        url: parsed,
        host: bare,
        addr: first,
    })
}

/// What one delivery attempt came to.
pub enum Attempt {
    Delivered(u16),
    /// 410 Gone: the receiver asked us to stop.
    Gone,
    Retry(Option<u16>),
}

pub async fn send(
    target: &Target,
    id: &str,
    timestamp: i64,
    body: &str,
    secret: &str,
    timeout: Duration,
) -> Attempt {
    let Some(signature) = sign(secret, id, timestamp, body) else {
        return Attempt::Retry(None);
    };
    // Pinned to the address that passed the check, so DNS cannot swap it afterwards.
    let client = match reqwest::Client::builder()
        .resolve(&target.host, target.addr)
        .timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .build()
    {
        Ok(c) => c,
        Err(_) => return Attempt::Retry(None),
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

    #[test]
    fn internal_addresses_are_forbidden() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "::1",
            "fe80::1",
            "fd00:ec2::254",
            "::ffff:127.0.0.1",
        ] {
            assert!(forbidden(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946"] {
            assert!(!forbidden(ip.parse().unwrap()), "{ip}");
        }
    }

    #[tokio::test]
    async fn loopback_urls_are_refused_unless_allowed() {
        assert!(check("http://127.0.0.1:9/hook", false).await.is_err());
        assert!(check("http://localhost:9/hook", false).await.is_err());
        assert!(check("http://[::1]:9/hook", false).await.is_err());
        assert!(check("http://127.0.0.1:9/hook", true).await.is_ok());
        assert!(check("ftp://example.com/", true).await.is_err());
        assert!(check("http://user:pw@127.0.0.1/", true).await.is_err());
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

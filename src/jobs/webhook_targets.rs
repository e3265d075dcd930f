//! Where a webhook may be sent (docs/operations.md, "Webhook address policy"). The URL's
//! host is resolved and every address it resolves to is checked, at submission and
//! again before each attempt (DNS can change in between); the request then goes to the
//! address that was checked.
//!
//! - Internal addresses (loopback, private, link-local, shared and reserved ranges) are
//!   refused unless the operator allows private targets.
//! - Cloud metadata endpoints are refused always: they hand out credentials.
//! - IPv6 forms that carry an IPv4 address (mapped, compatible, NAT64, 6to4, Teredo)
//!   are judged by the IPv4 address inside, which is where the packets end up.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use crate::generation::GenerationError;

/// Instance metadata and credential endpoints of the common clouds.
const METADATA_V4: [Ipv4Addr; 5] = [
    // AWS, GCP, Azure, OCI, DigitalOcean and most others.
    Ipv4Addr::new(169, 254, 169, 254),
    // AWS ECS task credentials, and EKS Pod Identity.
    Ipv4Addr::new(169, 254, 170, 2),
    Ipv4Addr::new(169, 254, 170, 23),
    // Alibaba Cloud.
    Ipv4Addr::new(100, 100, 100, 200),
    // Oracle Cloud (classic).
    Ipv4Addr::new(192, 0, 0, 192),
];

/// AWS's IPv6 instance metadata service and EKS Pod Identity.
const METADATA_V6: [Ipv6Addr; 2] = [
    Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254),
    Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x23),
];

/// Why an address is not a webhook target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Refused {
    /// Loopback, private and the like: allowed only by the operator's opt-in.
    Internal,
    /// Cloud metadata: never.
    Metadata,
}

fn v4_refusal(ip: Ipv4Addr) -> Option<Refused> {
    if METADATA_V4.contains(&ip) {
        return Some(Refused::Metadata);
    }
    let [a, b, _, _] = ip.octets();
    let internal = ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        // "This network" (0.0.0.0/8).
        || a == 0
        // Carrier-grade NAT, shared address space (100.64.0.0/10).
        || (a == 100 && (b & 0xc0) == 64)
        // IETF protocol assignments (192.0.0.0/24).
        || (a == 192 && b == 0 && ip.octets()[2] == 0)
        // Benchmarking (198.18.0.0/15).
        || (a == 198 && (b & 0xfe) == 18)
        // Reserved (240.0.0.0/4).
        || a >= 240;
    internal.then_some(Refused::Internal)
}

fn v4_at(v6: Ipv6Addr, segment: usize) -> Ipv4Addr {
    let s = v6.segments();
    let [a, b] = s[segment].to_be_bytes();
    let [c, d] = s[segment + 1].to_be_bytes();
    Ipv4Addr::new(a, b, c, d)
}

/// The IPv4 addresses an IPv6 address carries to, where its form says so.
fn embedded_v4(v6: Ipv6Addr) -> Vec<Ipv4Addr> {
    let s = v6.segments();
    if let Some(v4) = v6.to_ipv4_mapped() {
        // ::ffff:a.b.c.d
        return vec![v4];
    }
    if s[..6] == [0; 6] {
        // IPv4-compatible ::a.b.c.d (deprecated, still routed by some stacks).
        return vec![v4_at(v6, 6)];
    }
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        // NAT64 well-known prefix 64:ff9b::/96.
        return vec![v4_at(v6, 6)];
    }
    if s[0] == 0x2002 {
        // 6to4 2002:AABB:CCDD::/48.
        return vec![v4_at(v6, 1)];
    }
    if s[0] == 0x2001 && s[1] == 0 {
        // Teredo 2001:0::/32: the server's address, then the client's, obfuscated.
        let client = v4_at(v6, 6);
        return vec![v4_at(v6, 2), Ipv4Addr::from(!u32::from(client))];
    }
    Vec::new()
}

fn v6_refusal(v6: Ipv6Addr) -> Option<Refused> {
    if METADATA_V6.contains(&v6) {
        return Some(Refused::Metadata);
    }
    let s = v6.segments();
    if v6.is_loopback() || v6.is_unspecified() {
        return Some(Refused::Internal);
    }
    let embedded = embedded_v4(v6).into_iter().filter_map(v4_refusal).max();
    if embedded.is_some() {
        return embedded;
    }
    let internal = v6.is_multicast()
        // Unique local fc00::/7 (fd00:ec2::/32 among them).
        || (s[0] & 0xfe00) == 0xfc00
        // Link-local fe80::/10 and the deprecated site-local fec0::/10.
        || (s[0] & 0xffc0) == 0xfe80
        || (s[0] & 0xffc0) == 0xfec0
        // Local-use NAT64 64:ff9b:1::/48 (RFC 8215) translates into the operator's own
        // network, whatever IPv4 address it carries.
        || s[..3] == [0x64, 0xff9b, 1]
        // Documentation 2001:db8::/32, discard-only 100::/64.
        || (s[0] == 0x2001 && s[1] == 0x0db8)
        || s[..4] == [0x100, 0, 0, 0];
    internal.then_some(Refused::Internal)
}

/// Why `ip` may not receive webhooks, if it may not.
pub fn refusal(ip: IpAddr) -> Option<Refused> {
    match ip {
        IpAddr::V4(v4) => v4_refusal(v4),
        IpAddr::V6(v6) => v6_refusal(v6),
    }
}

/// Where a webhook may be sent: the URL's host resolved, with every address allowed.
#[derive(Debug, Clone)]
pub struct Target {
    pub url: reqwest::Url,
    pub host: String,
    pub addr: SocketAddr,
}

/// A URL that cannot be used now.
#[derive(Debug)]
pub enum Unusable {
    /// The URL or what it resolves to is refused: no retry changes that.
    Refused(GenerationError),
    /// The name did not resolve (in time): DNS failures pass, so it is retried.
    Unresolved(GenerationError),
}

impl Unusable {
    pub fn into_error(self) -> GenerationError {
        match self {
            Self::Refused(e) | Self::Unresolved(e) => e,
        }
    }
}

/// How long a webhook host may take to resolve.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);

/// Checks a webhook URL and resolves it. `allow_private` is the operator's opt-in for
/// internal receivers (and for tests on loopback); metadata addresses stay refused.
pub async fn check(url: &str, allow_private: bool) -> Result<Target, GenerationError> {
    resolve(url, allow_private)
        .await
        .map_err(Unusable::into_error)
}

/// As [`check`], telling a refusal from a name that did not resolve.
pub async fn resolve(url: &str, allow_private: bool) -> Result<Target, Unusable> {
    let invalid = |message: &str| {
        Unusable::Refused(GenerationError::invalid("webhook_url", message.to_owned()))
    };
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
    let unresolved = |message: &str| {
        Unusable::Unresolved(GenerationError::invalid("webhook_url", message.to_owned()))
    };
    let addrs: Vec<SocketAddr> = match bare.parse::<IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, port)],
        Err(_) => tokio::time::timeout(
            RESOLVE_TIMEOUT,
            tokio::net::lookup_host((bare.as_str(), port)),
        )
        .await
        .map_err(|_| unresolved("The webhook host did not resolve in time."))?
        .map_err(|_| unresolved("The webhook host does not resolve."))?
        .collect(),
    };
    let first = *addrs
        .first()
        .ok_or_else(|| unresolved("The webhook host does not resolve."))?;
    let worst = addrs.iter().filter_map(|a| refusal(a.ip())).max();
    match worst {
        Some(Refused::Metadata) => {
            return Err(Unusable::Refused(
                GenerationError::invalid(
                    "webhook_url",
                    "Webhook targets on cloud metadata addresses are never allowed.",
                )
                .detail("reason", "forbidden_address"),
            ));
        }
        Some(Refused::Internal) if !allow_private => {
            return Err(Unusable::Refused(
                GenerationError::invalid(
                    "webhook_url",
                    "Webhook targets on loopback, private, link-local or reserved addresses are not allowed.",
                )
                .detail("reason", "forbidden_address"),
            ));
        }
        _ => {}
    }
    Ok(Target {
        url: parsed,
        host: bare,
        addr: first,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every form, with what it must come to.
    const TABLE: &[(&str, Option<Refused>)] = &[
        // IPv4 internal ranges.
        ("127.0.0.1", Some(Refused::Internal)),
        ("10.1.2.3", Some(Refused::Internal)),
        ("172.16.0.1", Some(Refused::Internal)),
        ("192.168.1.1", Some(Refused::Internal)),
        ("169.254.1.1", Some(Refused::Internal)),
        ("0.0.0.0", Some(Refused::Internal)),
        ("0.1.2.3", Some(Refused::Internal)),
        ("100.64.0.1", Some(Refused::Internal)),
        ("100.127.255.254", Some(Refused::Internal)),
        ("192.0.0.8", Some(Refused::Internal)),
        ("198.18.0.1", Some(Refused::Internal)),
        ("198.19.255.254", Some(Refused::Internal)),
        ("240.0.0.1", Some(Refused::Internal)),
        ("255.255.255.255", Some(Refused::Internal)),
        ("224.0.0.1", Some(Refused::Internal)),
        ("192.0.2.1", Some(Refused::Internal)),
        // Just outside those ranges.
        ("100.63.255.255", None),
        ("100.128.0.0", None),
        ("198.17.255.255", None),
        ("198.20.0.0", None),
        ("239.255.255.255", Some(Refused::Internal)),
        ("93.184.216.34", None),
        ("8.8.8.8", None),
        // Cloud metadata.
        ("169.254.169.254", Some(Refused::Metadata)),
        ("169.254.170.2", Some(Refused::Metadata)),
        ("169.254.170.23", Some(Refused::Metadata)),
        ("100.100.100.200", Some(Refused::Metadata)),
        ("192.0.0.192", Some(Refused::Metadata)),
        ("fd00:ec2::254", Some(Refused::Metadata)),
        ("fd00:ec2::23", Some(Refused::Metadata)),
        // IPv6 internal ranges.
        ("::1", Some(Refused::Internal)),
        ("::", Some(Refused::Internal)),
        ("fe80::1", Some(Refused::Internal)),
        ("fec0::1", Some(Refused::Internal)),
        ("fd12:3456::1", Some(Refused::Internal)),
        ("ff02::1", Some(Refused::Internal)),
        ("2001:db8::1", Some(Refused::Internal)),
        ("100::1", Some(Refused::Internal)),
        ("2606:2800:220:1:248:1893:25c8:1946", None),
        // IPv4-mapped.
        ("::ffff:127.0.0.1", Some(Refused::Internal)),
        ("::ffff:169.254.169.254", Some(Refused::Metadata)),
        ("::ffff:8.8.8.8", None),
        // IPv4-compatible.
        ("::127.0.0.1", Some(Refused::Internal)),
        ("::10.0.0.1", Some(Refused::Internal)),
        ("::169.254.169.254", Some(Refused::Metadata)),
        ("::8.8.8.8", None),
        // NAT64, well-known prefix.
        ("64:ff9b::127.0.0.1", Some(Refused::Internal)),
        ("64:ff9b::192.168.0.1", Some(Refused::Internal)),
        ("64:ff9b::a9fe:a9fe", Some(Refused::Metadata)),
        ("64:ff9b::8.8.8.8", None),
        // NAT64, local-use prefix: refused whatever it carries.
        ("64:ff9b:1::10.0.0.1", Some(Refused::Internal)),
        ("64:ff9b:1::8.8.8.8", Some(Refused::Internal)),
        // 6to4.
        ("2002:7f00:1::", Some(Refused::Internal)),
        ("2002:c0a8:101::1", Some(Refused::Internal)),
        ("2002:a9fe:a9fe::", Some(Refused::Metadata)),
        ("2002:808:808::1", None),
        // Teredo: server 65.54.227.120, client obfuscated (bits inverted).
        (
            "2001:0:4136:e378:8000:63bf:80ff:fffe",
            Some(Refused::Internal),
        ), // client 127.0.0.1
        (
            "2001:0:4136:e378:8000:63bf:f5ff:fffe",
            Some(Refused::Internal),
        ), // client 10.0.0.1
        (
            "2001:0:4136:e378:8000:63bf:5601:5601",
            Some(Refused::Metadata),
        ), // client 169.254.169.254... inverted
        ("2001:0:4136:e378:8000:63bf:f7f7:f7f7", None), // client 8.8.8.8
        ("2001:0:7f00:1:8000:63bf:f7f7:f7f7", Some(Refused::Internal)), // server 127.0.0.1
    ];

    #[test]
    fn every_address_form_is_judged_by_where_it_leads() {
        for (ip, expected) in TABLE {
            let parsed: IpAddr = ip.parse().unwrap();
            assert_eq!(refusal(parsed), *expected, "{ip}");
        }
    }

    #[tokio::test]
    async fn internal_targets_need_the_opt_in_and_metadata_is_refused_even_then() {
        for (ip, expected) in TABLE {
            let host = match ip.parse::<IpAddr>().unwrap() {
                IpAddr::V4(_) => ip.to_string(),
                IpAddr::V6(_) => format!("[{ip}]"),
            };
            let url = format!("http://{host}:8080/hook");
            for allow_private in [false, true] {
                let allowed = match expected {
                    None => true,
                    Some(Refused::Internal) => allow_private,
                    Some(Refused::Metadata) => false,
                };
                let checked = check(&url, allow_private).await;
                assert_eq!(
                    checked.is_ok(),
                    allowed,
                    "{url} allow_private={allow_private}"
                );
                if let Err(e) = checked {
                    let body = crate::error::stored_body(e, "req_x");
                    assert_eq!(body["details"]["reason"], "forbidden_address", "{url}");
                    let metadata = body["message"].as_str().unwrap().contains("metadata");
                    assert_eq!(metadata, *expected == Some(Refused::Metadata), "{url}");
                }
            }
        }
    }

    #[tokio::test]
    async fn names_are_resolved_and_checked_too() {
        assert!(check("http://localhost:9/hook", false).await.is_err());
        assert!(check("http://localhost:9/hook", true).await.is_ok());
        assert!(check("ftp://example.com/", true).await.is_err());
        assert!(check("http://user:pw@127.0.0.1/", true).await.is_err());
    }

    #[tokio::test]
    async fn a_name_that_does_not_resolve_is_not_a_refusal() {
        // `.invalid` never resolves (RFC 2606): a DNS failure, retried like any other.
        let resolved = resolve("http://webhooks.example.invalid/hook", false).await;
        assert!(
            matches!(resolved, Err(Unusable::Unresolved(_))),
            "{resolved:?}"
        );
        let refused = resolve("http://127.0.0.1/hook", false).await;
        assert!(matches!(refused, Err(Unusable::Refused(_))), "{refused:?}");
    }
}

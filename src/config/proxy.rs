//! Running behind a reverse proxy: the public address links are built from, and which
//! peers may tell us the original scheme, host and client (`X-Forwarded-*`).

use std::net::IpAddr;

use ipnet::IpNet;

use super::{Config, ConfigError};

impl Config {
    pub(super) fn validate_proxy(&self) -> Result<(), ConfigError> {
        if let Some(base) = &self.public_base_url {
            public_base(base)?;
        }
        self.trusted_proxy_nets()?;
        Ok(())
    }

    /// `public_base_url` without a trailing slash, checked by `validate`.
    pub fn public_base(&self) -> Option<String> {
        self.public_base_url
            .as_deref()
            .and_then(|b| public_base(b).ok())
    }

    /// The trusted proxies as networks (a bare address is a network of one).
    pub fn trusted_proxy_nets(&self) -> Result<Vec<IpNet>, ConfigError> {
        self.trusted_proxies
            .iter()
            .map(|entry| {
                entry
                    .parse::<IpNet>()
                    .or_else(|_| entry.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| {
                        ConfigError::Invalid(format!(
                            "trusted_proxies: {entry:?} is not an IP address or CIDR range \
                             (such as 10.0.0.0/8 or 127.0.0.1)"
                        ))
                    })
            })
            .collect()
    }
}

fn public_base(base: &str) -> Result<String, ConfigError> {
    let invalid = |why: &str| {
        ConfigError::Invalid(format!(
            "public_base_url must be an http(s) URL such as https://images.example.com \
             ({why}), got {base:?}"
        ))
    };
    let url = reqwest::Url::parse(base).map_err(|e| invalid(&e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(invalid("the scheme is not http or https"));
    }
    if url.host_str().is_none() {
        return Err(invalid("it has no host"));
    }
    if url.query().is_some() || url.fragment().is_some() || !url.username().is_empty() {
        return Err(invalid("it may not carry a query, fragment or credentials"));
    }
    Ok(base.trim_end_matches('/').to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxy_settings_are_checked_at_start() {
        let mut config = Config {
            public_base_url: Some("https://images.example.com/gw/".into()),
            trusted_proxies: vec!["10.0.0.0/8".into(), "127.0.0.1".into()],
            ..Config::default()
        };
        config.validate().unwrap();
        assert_eq!(
            config.public_base().as_deref(),
            Some("https://images.example.com/gw")
        );
        assert_eq!(config.trusted_proxy_nets().unwrap().len(), 2);

        config.trusted_proxies = vec!["10.0.0.0/33".into()];
        let err = config.validate().unwrap_err().to_string();
        assert!(err.contains("trusted_proxies"), "{err}");

        config.trusted_proxies.clear();
        config.public_base_url = Some("images.example.com".into());
        let err = config.validate().unwrap_err().to_string();
        assert!(err.contains("public_base_url"), "{err}");
    }
}

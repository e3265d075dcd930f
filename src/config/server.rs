//! How the listener treats connections (`[server]`): timeouts, limits and the drain
//! deadline of a graceful stop. docs/operations.md explains each default.

use std::time::Duration;

use serde::Deserialize;

use super::{Config, ConfigError, EnvLookup};

#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// A request head (request line and headers) must be complete this long after the
    /// connection starts waiting for it: a client sending one byte every few seconds is
    /// cut off here. The timer also runs while a kept-alive connection waits for its
    /// next request.
    pub header_read_timeout_secs: f64,
    /// A request body that delivers nothing for this long fails, and its connection closes.
    pub body_idle_timeout_secs: f64,
    /// A connection with no request in progress that receives nothing for this long is closed.
    pub keep_alive_idle_secs: f64,
    /// Request line plus headers; a larger head is answered 431.
    pub max_header_bytes: usize,
    /// Connections served at once; further ones wait in the listen backlog until one closes.
    pub max_connections: usize,
    /// On SIGTERM/SIGINT: how long requests, background work and async requests in
    /// progress may take to finish before what is left is handed back (async requests
    /// return to the queue) and the process exits.
    pub drain_secs: f64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            header_read_timeout_secs: 10.0,
            body_idle_timeout_secs: 30.0,
            keep_alive_idle_secs: 5.0,
            max_header_bytes: 32 * 1024,
            // Under the common 1,024 file-descriptor soft limit, with room for the
            // database pool, Redis, upstream and webhook connections.
            max_connections: 512,
            // Below Kubernetes' default 30 s termination grace period, so the hand-back
            // of unfinished async work happens before SIGKILL.
            drain_secs: 25.0,
        }
    }
}

fn secs(value: f64) -> Duration {
    Duration::from_secs_f64(value)
}

impl ServerConfig {
    pub fn header_read_timeout(&self) -> Duration {
        secs(self.header_read_timeout_secs)
    }
    pub fn body_idle_timeout(&self) -> Duration {
        secs(self.body_idle_timeout_secs)
    }
    pub fn keep_alive_idle(&self) -> Duration {
        secs(self.keep_alive_idle_secs)
    }
    pub fn drain(&self) -> Duration {
        secs(self.drain_secs)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        for (name, value) in [
            ("header_read_timeout_secs", self.header_read_timeout_secs),
            ("body_idle_timeout_secs", self.body_idle_timeout_secs),
            ("keep_alive_idle_secs", self.keep_alive_idle_secs),
            ("drain_secs", self.drain_secs),
        ] {
            // Also bounds the value: Duration::from_secs_f64 panics on huge numbers.
            if !(value.is_finite() && value > 0.0 && value <= 86_400.0) {
                return Err(ConfigError::Invalid(format!(
                    "server.{name} must be between 0 and 86400 seconds, got {value}"
                )));
            }
        }
        if self.max_header_bytes < 1024 {
            return Err(ConfigError::Invalid(format!(
                "server.max_header_bytes must be at least 1024, got {}",
                self.max_header_bytes
            )));
        }
        if self.max_connections == 0 {
            return Err(ConfigError::Invalid(
                "server.max_connections must be at least 1".into(),
            ));
        }
        Ok(())
    }
}

impl Config {
    pub(super) fn apply_server_env(&mut self, env: EnvLookup<'_>) -> Result<(), ConfigError> {
        let parsed = |name: &str| -> Result<Option<f64>, ConfigError> {
            env(name)
                .filter(|v| !v.trim().is_empty())
                .map(|v| {
                    v.trim()
                        .parse()
                        .map_err(|e: std::num::ParseFloatError| ConfigError::Env {
                            name: name.into(),
                            message: e.to_string(),
                        })
                })
                .transpose()
        };
        if let Some(v) = parsed("IMAGEGATE_DRAIN_SECS")? {
            self.server.drain_secs = v;
        }
        if let Some(v) = parsed("IMAGEGATE_MAX_CONNECTIONS")? {
            if v.fract() != 0.0 || v < 0.0 {
                return Err(ConfigError::Env {
                    name: "IMAGEGATE_MAX_CONNECTIONS".into(),
                    message: format!("expected a whole number, got {v}"),
                });
            }
            self.server.max_connections = v as usize;
        }
        Ok(())
    }

    pub(super) fn validate_server(&self) -> Result<(), ConfigError> {
        self.server.validate()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ConfigFlags;

    #[test]
    fn the_defaults_are_valid_and_bounded() {
        let config = Config::load(&ConfigFlags::default(), &|_| None).unwrap();
        assert_eq!(config.server.max_connections, 512);
        assert_eq!(config.server.header_read_timeout(), Duration::from_secs(10));
        assert!(config.server.drain() < Duration::from_secs(30));
    }

    #[test]
    fn zero_or_absurd_timeouts_are_refused_with_the_setting_named() {
        for (field, value) in [("drain_secs", "0"), ("header_read_timeout_secs", "1e300")] {
            let mut config = Config::default();
            let parsed: f64 = value.parse().unwrap();
            match field {
                "drain_secs" => config.server.drain_secs = parsed,
                _ => config.server.header_read_timeout_secs = parsed,
            }
            let err = config.validate().unwrap_err().to_string();
            assert!(err.contains(field), "{err}");
        }
        let mut config = Config::default();
        config.server.max_connections = 0;
        assert!(config.validate().is_err());
    }

    #[test]
    fn the_drain_deadline_comes_from_the_environment() {
        let config = Config::load(&ConfigFlags::default(), &|k| {
            (k == "IMAGEGATE_DRAIN_SECS").then(|| "3".to_owned())
        })
        .unwrap();
        assert_eq!(config.server.drain(), Duration::from_secs(3));
    }
}

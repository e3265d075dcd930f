//! Where state, limits and bytes live (docs/scale-out.md): the embedded default (SQLite and
//! files under the data directory) or shared services for several instances, chosen by
//! URL: `database_url` (`sqlite://…` or `postgres://…`), `redis_url` and
//! `object_store_url` (`s3://bucket[/prefix]`).

use serde::{Deserialize, Serialize};

use super::{Config, ConfigError, EnvLookup, Secret};

/// A connection URL that may carry a password; `Debug` shows it with the password masked.
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct ServiceUrl(String);

impl ServiceUrl {
    pub fn new(url: impl Into<String>) -> Self {
        Self(url.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
    /// The URL as it may be logged: scheme, host, port and path, never credentials.
    pub fn redacted(&self) -> String {
        match reqwest::Url::parse(&self.0) {
            Ok(mut url) => {
                if url.password().is_some() {
                    let _ = url.set_password(Some("***"));
                }
                // Query parameters may carry secrets too (`?password=`, `?sslkey=`).
                url.set_query(None);
                url.to_string()
            }
            Err(_) => "[unparseable URL]".to_owned(),
        }
    }
    pub fn scheme(&self) -> &str {
        self.0.split_once(':').map_or("", |(scheme, _)| scheme)
    }
}

/// Printed configurations show the URL as logs do: no password, no query.
impl Serialize for ServiceUrl {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.redacted())
    }
}

impl std::fmt::Debug for ServiceUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.redacted())
    }
}

/// Settings of an S3-compatible `object_store_url`. Unset values fall back to the
/// standard `AWS_*` variables, then to the AWS SDK's usual sources (instance roles).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ObjectStoreConfig {
    /// For S3-compatible services (MinIO, R2, moto); unset for AWS itself.
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<Secret>,
    pub session_token: Option<Secret>,
    /// Plain-http endpoints are refused unless allowed: signed requests would still
    /// cross the network in clear.
    pub allow_http: bool,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RedisConfig {
    /// Prepended to every key, so several deployments (or test runs) can share a server.
    pub key_prefix: String,
    /// How long a request-in-flight slot outlives an instance that stopped renewing it
    /// (it crashed): the slot is free again after this.
    pub lease_secs: f64,
}

impl Default for RedisConfig {
    fn default() -> Self {
        Self {
            key_prefix: "imagegate:".into(),
            lease_secs: 30.0,
        }
    }
}

impl RedisConfig {
    pub fn lease(&self) -> std::time::Duration {
        std::time::Duration::from_secs_f64(self.lease_secs.max(0.1))
    }
}

impl Config {
    pub(super) fn apply_storage_env(&mut self, env: EnvLookup<'_>) -> Result<(), ConfigError> {
        let set = |name: &str| env(name).filter(|v| !v.trim().is_empty());
        if let Some(v) = set("IMAGEGATE_DATABASE_URL") {
            self.database_url = Some(ServiceUrl::new(v.trim()));
        }
        if let Some(v) = set("IMAGEGATE_REDIS_URL") {
            self.redis_url = Some(ServiceUrl::new(v.trim()));
        }
        if let Some(v) = set("IMAGEGATE_REDIS_KEY_PREFIX") {
            self.redis.key_prefix = v;
        }
        if let Some(v) = set("IMAGEGATE_OBJECT_STORE_URL") {
            self.object_store_url = Some(v.trim().to_owned());
        }
        let s3 = &mut self.object_store;
        if let Some(v) = set("IMAGEGATE_OBJECT_STORE_ENDPOINT") {
            s3.endpoint = Some(v);
        }
        if let Some(v) = set("IMAGEGATE_OBJECT_STORE_REGION") {
            s3.region = Some(v);
        }
        if let Some(v) = super::flag(env, "IMAGEGATE_OBJECT_STORE_ALLOW_HTTP")? {
            s3.allow_http = v;
        }
        // The AWS variables are ambient (meant for every AWS client on the host), so they
        // only fill in what imagegate's own configuration left unset.
        let endpoint = set("AWS_ENDPOINT_URL_S3").or_else(|| set("AWS_ENDPOINT_URL"));
        s3.endpoint = s3.endpoint.take().or(endpoint);
        let region = set("AWS_REGION").or_else(|| set("AWS_DEFAULT_REGION"));
        s3.region = s3.region.take().or(region);
        s3.access_key_id = s3.access_key_id.take().or(set("AWS_ACCESS_KEY_ID"));
        s3.secret_access_key = s3
            .secret_access_key
            .take()
            .or(set("AWS_SECRET_ACCESS_KEY").map(Secret::new));
        s3.session_token = s3
            .session_token
            .take()
            .or(set("AWS_SESSION_TOKEN").map(Secret::new));
        Ok(())
    }

    pub(super) fn validate_storage(&self) -> Result<(), ConfigError> {
        if let Some(url) = &self.database_url
            && !matches!(url.scheme(), "sqlite" | "postgres" | "postgresql")
        {
            return Err(ConfigError::Invalid(format!(
                "database_url must start with sqlite:// or postgres://, got {url:?}"
            )));
        }
        if let Some(url) = &self.redis_url
            && url.scheme() != "redis"
        {
            return Err(ConfigError::Invalid(format!(
                "redis_url must be a redis:// URL (TLS is not built in), got {url:?}"
            )));
        }
        if let Some(url) = &self.object_store_url
            && !url
                .strip_prefix("s3://")
                .is_some_and(|rest| !rest.is_empty() && !rest.starts_with('/'))
        {
            return Err(ConfigError::Invalid(format!(
                "object_store_url must be s3://BUCKET[/PREFIX], got {url:?}"
            )));
        }
        if !(self.database.acquire_timeout_secs.is_finite()
            && self.database.acquire_timeout_secs > 0.0)
        {
            return Err(ConfigError::Invalid(
                "database.acquire_timeout_secs must be positive".into(),
            ));
        }
        if !(self.redis.lease_secs.is_finite() && self.redis.lease_secs > 0.0) {
            return Err(ConfigError::Invalid(
                "redis.lease_secs must be positive".into(),
            ));
        }
        Ok(())
    }
}

impl Config {
    /// Refuses what would fail later, request by request: PostgreSQL is there for several
    /// instances, and image bytes under one instance's data directory are invisible to
    /// the others (an image listed everywhere, served by one). Checked by `serve` only:
    /// management commands never touch image bytes.
    pub fn check_shared_storage(&self) -> Result<(), ConfigError> {
        let shared_database = self
            .database_url
            .as_ref()
            .is_some_and(|u| matches!(u.scheme(), "postgres" | "postgresql"));
        if shared_database && self.object_store_url.is_none() && !self.single_instance {
            return Err(ConfigError::Invalid(format!(
                "database_url names PostgreSQL, a database for several instances, but image \
                 bytes would stay in this instance's data directory ({}), where other \
                 instances cannot read them. Set object_store_url (IMAGEGATE_OBJECT_STORE_URL, \
                 s3://BUCKET) for every instance, or, if only this one instance will ever use \
                 the database, set single_instance = true (IMAGEGATE_SINGLE_INSTANCE=1). \
                 See docs/operations.md, \"Deployment\".",
                self.data_dir.display()
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ConfigFlags;

    #[test]
    fn service_urls_never_print_their_password() {
        let url =
            ServiceUrl::new("postgres://app:hunter2@db.internal:5432/imagegate?sslmode=require");
        let printed = format!("{url:?}");
        assert!(!printed.contains("hunter2"), "{printed}");
        assert!(printed.contains("db.internal:5432/imagegate"), "{printed}");
        assert_eq!(url.scheme(), "postgres");
    }

    #[test]
    fn backends_come_from_the_environment_and_aws_variables_only_fill_gaps() {
        let env = |name: &str| {
            match name {
                "IMAGEGATE_DATABASE_URL" => Some("postgres://127.0.0.1/test"),
                "IMAGEGATE_REDIS_URL" => Some("redis://127.0.0.1:6379"),
                "IMAGEGATE_OBJECT_STORE_URL" => Some("s3://images/prod"),
                "IMAGEGATE_OBJECT_STORE_REGION" => Some("eu-west-1"),
                "AWS_REGION" => Some("us-east-1"),
                "AWS_ACCESS_KEY_ID" => Some("AKIDEXAMPLE"),
                "AWS_SECRET_ACCESS_KEY" => Some("aws-secret"),
                _ => None,
            }
            .map(str::to_owned)
        };
        let config = Config::load(&ConfigFlags::default(), &env).unwrap();
        assert_eq!(config.database_url.as_ref().unwrap().scheme(), "postgres");
        assert_eq!(config.object_store_url.as_deref(), Some("s3://images/prod"));
        assert_eq!(config.object_store.region.as_deref(), Some("eu-west-1"));
        assert_eq!(
            config.object_store.access_key_id.as_deref(),
            Some("AKIDEXAMPLE")
        );
        assert!(!format!("{config:?}").contains("aws-secret"));
    }

    #[test]
    fn unknown_backend_schemes_are_configuration_errors() {
        for (name, value, setting) in [
            (
                "IMAGEGATE_DATABASE_URL",
                "mysql://localhost/db",
                "database_url",
            ),
            ("IMAGEGATE_REDIS_URL", "rediss://cache:6380", "redis_url"),
            (
                "IMAGEGATE_OBJECT_STORE_URL",
                "gs://bucket",
                "object_store_url",
            ),
        ] {
            let env = |n: &str| (n == name).then(|| value.to_owned());
            let err = Config::load(&ConfigFlags::default(), &env).unwrap_err();
            assert!(err.to_string().contains(setting), "{err}");
        }
    }
}

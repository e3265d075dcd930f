//! One typed configuration, assembled in this order (README, "Configuration"):
//! embedded defaults → TOML file → environment (`IMAGEGATE_*`, `GOOGLE_API_KEY`, `.env`)
//! → command-line flags. Secrets are redacted wherever the config is printed.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::limits::Tiers;
use crate::models::{ModelOverride, RegistryConfig};

mod explain;
mod proxy;
pub mod server;
pub mod storage;
pub use server::ServerConfig;
pub use storage::{ObjectStoreConfig, RedisConfig, ServiceUrl};

/// A secret string whose `Debug` never shows the value.
#[derive(Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

/// Printed configurations (`imagegate config`) never carry the value.
impl Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str("[redacted]")
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum ProviderChoice {
    /// `gemini` when a Google key is configured, otherwise `offline`.
    Auto,
    Gemini,
    Offline,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Pretty,
    Json,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub host: String,
    pub port: u16,
    pub provider: ProviderChoice,
    pub data_dir: PathBuf,
    pub google_api_key: Option<Secret>,
    /// The model used when a request names none.
    pub default_model: String,
    pub log_format: LogFormat,
    pub gemini: GeminiConfig,
    pub limits: LimitsConfig,
    pub sessions: SessionsConfig,
    /// Async requests and webhooks.
    pub jobs: JobsConfig,
    /// Bulk generation through the upstream's Batch API (docs/batches.md).
    pub batches: crate::batches::BatchesConfig,
    /// Per-key limits by tier (`[tiers.free]`, `[tiers.paid]`, or new tiers).
    pub tiers: Tiers,
    pub auth: AuthConfig,
    /// Additions to and replacements of the embedded model table (docs/models.md).
    pub models: Vec<ModelOverride>,
    /// Upstream model-list refresh, fallback and service-tier rules (docs/models.md).
    pub registry: RegistryConfig,
    /// `sqlite://FILE` or `postgres://…`; unset: `imagegate.db` in the data directory.
    pub database_url: Option<ServiceUrl>,
    /// Per-key limits shared by every instance using this Redis; unset: in this process.
    pub redis_url: Option<ServiceUrl>,
    pub redis: RedisConfig,
    /// `s3://BUCKET[/PREFIX]` for image and request bytes; unset: under the data directory.
    pub object_store_url: Option<String>,
    pub object_store: ObjectStoreConfig,
    /// Connection timeouts and limits, and the drain deadline of a graceful stop.
    pub server: ServerConfig,
    pub database: DatabaseConfig,
    /// The operator's statement that only one instance uses this PostgreSQL database, so
    /// image bytes under the data directory are safe (otherwise `object_store_url` is
    /// required: other instances could not read them).
    pub single_instance: bool,
    /// The scheme, host and optional path prefix clients reach this service at
    /// (`https://images.example.com`), used for the links the service hands out. Unset:
    /// built from the request (`Host`, or `X-Forwarded-*` from a trusted proxy).
    pub public_base_url: Option<String>,
    /// Addresses or CIDR ranges of reverse proxies whose `X-Forwarded-Proto`,
    /// `X-Forwarded-Host` and `X-Forwarded-For` are believed; from anyone else they are
    /// ignored.
    pub trusted_proxies: Vec<String>,
    pub readiness: ReadinessConfig,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// Issue a first paid key, shown on the terminal, when no key was ever issued.
    pub create_first_key: bool,
    /// Accept the server's own `GOOGLE_API_KEY` as a paid caller's bearer (the guide's samples).
    pub accept_google_key: bool,
    /// Bearer token of `/admin/…` (docs/keys.md); unset, the admin API answers 404.
    pub admin_token: Option<Secret>,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            create_first_key: true,
            accept_google_key: true,
            admin_token: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct GeminiConfig {
    /// Scheme, host, port and optional path prefix; tests point this at a local fake.
    pub base_url: String,
    pub api_version: String,
    /// Whole-request deadline, retries included.
    pub deadline_secs: f64,
    /// Attempts per request, the first included.
    pub max_attempts: u32,
    pub initial_backoff_ms: u64,
    pub max_backoff_ms: u64,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    pub max_prompt_chars: usize,
    /// Per uploaded file (the guide's 20 MB).
    pub max_file_bytes: usize,
    /// Long side above which inputs are downscaled before going upstream.
    pub max_input_edge: u32,
    /// Pixel count above which an input is refused undecoded (decompression bombs).
    pub max_input_pixels: u64,
    /// JSON bodies carry no images; anything this large is a mistake or an attack.
    pub max_json_bytes: usize,
    /// A whole multipart body: three files at the limit plus the text fields fit.
    pub max_multipart_bytes: usize,
    /// Decoded pixels (at their in-memory size) this process holds for requests at once;
    /// heavier requests wait for each other. Sized for a 24 GB, 2-core machine.
    pub max_decoded_bytes: u64,
    /// How long a request waits for decoded-pixel memory before a 503 with Retry-After.
    pub decode_wait_secs: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            host: "0.0.0.0".into(),
            port: 8000,
            provider: ProviderChoice::Auto,
            data_dir: PathBuf::from("data"),
            google_api_key: None,
            default_model: crate::models::DEFAULT_MODEL.into(),
            log_format: LogFormat::Pretty,
            gemini: GeminiConfig::default(),
            limits: LimitsConfig::default(),
            sessions: SessionsConfig::default(),
            jobs: JobsConfig::default(),
            batches: crate::batches::BatchesConfig::default(),
            tiers: Tiers::default(),
            auth: AuthConfig::default(),
            models: Vec::new(),
            registry: RegistryConfig::default(),
            database_url: None,
            redis_url: None,
            redis: RedisConfig::default(),
            object_store_url: None,
            object_store: ObjectStoreConfig::default(),
            server: ServerConfig::default(),
            database: DatabaseConfig::default(),
            single_instance: false,
            public_base_url: None,
            trusted_proxies: Vec::new(),
            readiness: ReadinessConfig::default(),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseConfig {
    /// How long a request waits for a database connection before it is answered 503
    /// `storage_unavailable`. Short: when the database is down, a quick, honest answer
    /// beats every client waiting out its own timeout.
    pub acquire_timeout_secs: f64,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self {
            acquire_timeout_secs: 3.0,
        }
    }
}

impl DatabaseConfig {
    pub fn acquire_timeout(&self) -> Duration {
        Duration::from_secs_f64(self.acquire_timeout_secs.max(0.05))
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReadinessConfig {
    /// `/ready` answers from a result at most this old: load balancers probe every few
    /// seconds, and each probe would otherwise query the database and write an object.
    pub cache_secs: f64,
    /// The upstream is asked (a model listing, which generates nothing and costs no
    /// quota) at most this often.
    pub upstream_probe_secs: f64,
}

impl Default for ReadinessConfig {
    fn default() -> Self {
        Self {
            cache_secs: 5.0,
            upstream_probe_secs: 30.0,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct SessionsConfig {
    /// A chat session unused this long is gone (each message renews it).
    pub idle_ttl_secs: u64,
    /// User messages per session.
    pub max_turns: u32,
    /// Bytes of images one turn sends upstream (the message's own image and the most
    /// recent earlier ones). Every turn re-sends history, base64-encoded (4/3 larger), and
    /// the upstream request must stay under 20 MB; 12 MiB of images leaves room for that.
    /// Older images are named by id instead (docs: "Chat sessions").
    pub max_image_bytes: u64,
    /// Earlier images sent upstream as images with each turn, newest first.
    pub context_images: u32,
    pub max_system_prompt_chars: usize,
    /// The longest a chat message waits for the earlier messages of its session to finish
    /// before it is refused (409 `conflict`, `reason: earlier_messages_pending`).
    pub order_wait_secs: f64,
}

impl SessionsConfig {
    pub fn order_wait(&self) -> std::time::Duration {
        // NaN (a config typo) waits not at all rather than panicking.
        let secs = if self.order_wait_secs.is_nan() {
            0.0
        } else {
            self.order_wait_secs.clamp(0.0, 3600.0)
        };
        std::time::Duration::from_secs_f64(secs)
    }
}

impl Default for SessionsConfig {
    fn default() -> Self {
        Self {
            idle_ttl_secs: 24 * 60 * 60,
            max_turns: 30,
            max_image_bytes: 12 * 1024 * 1024,
            context_images: 3,
            max_system_prompt_chars: 8_000,
            order_wait_secs: 60.0,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct JobsConfig {
    /// Requests run at once by this instance's workers (0: accept but do not run).
    pub workers: usize,
    /// A worker holds a request this long between heartbeats; a dead worker's request
    /// is taken up again after it.
    pub lease_secs: f64,
    /// Attempts per request (a dead worker counts as one).
    pub max_attempts: u32,
    pub poll_ms: u64,
    pub webhooks: WebhooksConfig,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebhooksConfig {
    /// The operator's opt-in for receivers on loopback or private networks.
    pub allow_private: bool,
    pub max_attempts: u32,
    pub initial_backoff_ms: u64,
    pub max_backoff_ms: u64,
    pub timeout_secs: f64,
    /// A proxy for deliveries (`http://host:port`). Unset: direct, and `HTTP(S)_PROXY`
    /// are ignored, since a proxy resolves the name itself and undoes the address check.
    pub proxy: Option<ServiceUrl>,
    /// Whether this instance sends due webhooks (any instance sharing the database may);
    /// tests turn it off and drive `Jobs::deliver_once` themselves.
    pub deliver: bool,
}

impl Default for JobsConfig {
    fn default() -> Self {
        Self {
            workers: 4,
            lease_secs: 60.0,
            max_attempts: 3,
            poll_ms: 500,
            webhooks: WebhooksConfig::default(),
        }
    }
}

impl Default for WebhooksConfig {
    fn default() -> Self {
        // About a day of retries: 5 s doubling to an hour between attempts.
        Self {
            allow_private: false,
            max_attempts: 12,
            initial_backoff_ms: 5_000,
            max_backoff_ms: 3_600_000,
            timeout_secs: 10.0,
            proxy: None,
            deliver: true,
        }
    }
}

impl JobsConfig {
    pub fn lease(&self) -> Duration {
        Duration::from_secs_f64(self.lease_secs.max(0.05))
    }
    pub fn poll(&self) -> Duration {
        Duration::from_millis(self.poll_ms.max(10))
    }
}

impl WebhooksConfig {
    pub fn timeout(&self) -> Duration {
        Duration::from_secs_f64(self.timeout_secs.max(0.1))
    }
    pub fn initial_backoff(&self) -> Duration {
        Duration::from_millis(self.initial_backoff_ms)
    }
    pub fn max_backoff(&self) -> Duration {
        Duration::from_millis(self.max_backoff_ms)
    }
}

impl Default for GeminiConfig {
    fn default() -> Self {
        Self {
            base_url: "https://generativelanguage.googleapis.com".into(),
            api_version: "v1beta".into(),
            // Image calls take 5–60 s upstream (docs/upstream.md#latencies); 4K on Pro
            // longer.
            deadline_secs: 180.0,
            max_attempts: 4,
            initial_backoff_ms: 1_000,
            max_backoff_ms: 30_000,
        }
    }
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            max_prompt_chars: 2_000,
            max_file_bytes: 20 * 1024 * 1024,
            max_input_edge: 1024,
            max_input_pixels: 50_000_000,
            max_json_bytes: 1024 * 1024,
            max_multipart_bytes: 64 * 1024 * 1024,
            max_decoded_bytes: 1024 * 1024 * 1024,
            decode_wait_secs: 30,
        }
    }
}

/// Values given on the command line; `None` leaves the lower layers in force.
#[derive(Debug, Default, Clone, clap::Args)]
pub struct ConfigFlags {
    /// TOML configuration file (also IMAGEGATE_CONFIG).
    #[arg(long)]
    pub config: Option<PathBuf>,
    #[arg(long)]
    pub host: Option<String>,
    #[arg(long)]
    pub port: Option<u16>,
    #[arg(long, value_enum)]
    pub provider: Option<ProviderChoice>,
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    #[arg(long)]
    pub gemini_base_url: Option<String>,
    #[arg(long, value_enum)]
    pub log_format: Option<LogFormat>,
    /// `sqlite://FILE` or `postgres://USER@HOST/DB` (also IMAGEGATE_DATABASE_URL).
    #[arg(long)]
    pub database_url: Option<String>,
    /// `redis://HOST:PORT` for limits shared by several instances (also IMAGEGATE_REDIS_URL).
    #[arg(long)]
    pub redis_url: Option<String>,
    /// `s3://BUCKET[/PREFIX]` for image bytes (also IMAGEGATE_OBJECT_STORE_URL).
    #[arg(long)]
    pub object_store_url: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("invalid value for {name}: {message}")]
    Env { name: String, message: String },
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

/// The environment as a lookup function, so tests need not mutate the process env.
pub type EnvLookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// A boolean as people write it in environment files: `1`/`0`, `true`/`false`,
/// `yes`/`no`, `on`/`off`, in any case (the form fields accept the same).
pub fn parse_bool(value: &str) -> Option<bool> {
    match value.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Some(true),
        "0" | "false" | "no" | "off" => Some(false),
        _ => None,
    }
}

/// A boolean environment variable; unset or empty leaves the lower layers in force.
fn flag(env: EnvLookup<'_>, name: &str) -> Result<Option<bool>, ConfigError> {
    env(name)
        .filter(|v| !v.trim().is_empty())
        .map(|v| {
            parse_bool(&v).ok_or_else(|| ConfigError::Env {
                name: name.into(),
                message: format!("expected a boolean (1/0, true/false, yes/no, on/off), got {v:?}"),
            })
        })
        .transpose()
}

impl Config {
    /// Loads every layer. `.env` is read into the process environment first by the caller
    /// (`dotenvy`), without overriding variables that are already set.
    pub fn load(flags: &ConfigFlags, env: EnvLookup<'_>) -> Result<Self, ConfigError> {
        let file = flags
            .config
            .clone()
            .or_else(|| env("IMAGEGATE_CONFIG").map(PathBuf::from));
        let mut config = match file {
            Some(path) => Self::from_toml_file(&path)?,
            None => Self::default(),
        };
        config.apply_env(env)?;
        config.apply_flags(flags);
        config.validate()?;
        Ok(config)
    }

    pub fn from_toml_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: e.to_string(),
        })
    }

    fn apply_env(&mut self, env: EnvLookup<'_>) -> Result<(), ConfigError> {
        fn parsed<T: std::str::FromStr>(
            env: EnvLookup<'_>,
            name: &str,
        ) -> Result<Option<T>, ConfigError>
        where
            T::Err: std::fmt::Display,
        {
            env(name)
                .filter(|v| !v.trim().is_empty())
                .map(|v| {
                    v.trim().parse().map_err(|e: T::Err| ConfigError::Env {
                        name: name.into(),
                        message: e.to_string(),
                    })
                })
                .transpose()
        }
        let key = env("GOOGLE_API_KEY")
            .or_else(|| env("GEMINI_API_KEY"))
            .filter(|k| !k.trim().is_empty());
        if let Some(key) = key {
            self.google_api_key = Some(Secret::new(key.trim()));
        }
        if let Some(v) = env("IMAGEGATE_ADMIN_TOKEN").filter(|v| !v.trim().is_empty()) {
            self.auth.admin_token = Some(Secret::new(v.trim()));
        }
        if let Some(v) = env("IMAGEGATE_HOST") {
            self.host = v;
        }
        if let Some(v) = parsed(env, "IMAGEGATE_PORT")? {
            self.port = v;
        }
        if let Some(v) = env("IMAGEGATE_PROVIDER") {
            self.provider = match v.trim().to_ascii_lowercase().as_str() {
                "auto" => ProviderChoice::Auto,
                "gemini" => ProviderChoice::Gemini,
                "offline" => ProviderChoice::Offline,
                other => {
                    return Err(ConfigError::Env {
                        name: "IMAGEGATE_PROVIDER".into(),
                        message: format!("expected auto, gemini or offline, got {other:?}"),
                    });
                }
            };
        }
        if let Some(v) = env("IMAGEGATE_DATA_DIR") {
            self.data_dir = PathBuf::from(v);
        }
        if let Some(v) = env("IMAGEGATE_DEFAULT_MODEL") {
            self.default_model = v;
        }
        if let Some(v) = env("IMAGEGATE_LOG_FORMAT") {
            self.log_format = match v.trim() {
                "json" => LogFormat::Json,
                "pretty" => LogFormat::Pretty,
                other => {
                    return Err(ConfigError::Env {
                        name: "IMAGEGATE_LOG_FORMAT".into(),
                        message: format!("expected json or pretty, got {other:?}"),
                    });
                }
            };
        }
        if let Some(v) = env("IMAGEGATE_GEMINI_BASE_URL") {
            self.gemini.base_url = v;
        }
        if let Some(v) = env("IMAGEGATE_GEMINI_API_VERSION") {
            self.gemini.api_version = v;
        }
        if let Some(v) = parsed(env, "IMAGEGATE_UPSTREAM_DEADLINE_SECS")? {
            self.gemini.deadline_secs = v;
        }
        if let Some(v) = parsed(env, "IMAGEGATE_UPSTREAM_MAX_ATTEMPTS")? {
            self.gemini.max_attempts = v;
        }
        if let Some(v) = parsed(env, "IMAGEGATE_SESSION_IDLE_TTL_SECS")? {
            self.sessions.idle_ttl_secs = v;
        }
        if let Some(v) = flag(env, "IMAGEGATE_WEBHOOKS_ALLOW_PRIVATE")? {
            self.jobs.webhooks.allow_private = v;
        }
        if let Some(v) = flag(env, "IMAGEGATE_SINGLE_INSTANCE")? {
            self.single_instance = v;
        }
        if let Some(v) = flag(env, "IMAGEGATE_CREATE_FIRST_KEY")? {
            self.auth.create_first_key = v;
        }
        if let Some(v) = flag(env, "IMAGEGATE_ACCEPT_GOOGLE_KEY")? {
            self.auth.accept_google_key = v;
        }
        if let Some(v) = parsed(env, "IMAGEGATE_DATABASE_ACQUIRE_TIMEOUT_SECS")? {
            self.database.acquire_timeout_secs = v;
        }
        if let Some(v) = env("IMAGEGATE_PUBLIC_BASE_URL").filter(|v| !v.trim().is_empty()) {
            self.public_base_url = Some(v.trim().to_owned());
        }
        if let Some(v) = env("IMAGEGATE_TRUSTED_PROXIES") {
            self.trusted_proxies = v
                .split(',')
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .map(str::to_owned)
                .collect();
        }
        if let Some(v) = parsed(env, "IMAGEGATE_JOBS_LEASE_SECS")? {
            self.jobs.lease_secs = v;
        }
        if let Some(v) = parsed(env, "IMAGEGATE_MAX_INPUT_EDGE")? {
            self.limits.max_input_edge = v;
        }
        self.apply_storage_env(env)?;
        self.apply_server_env(env)?;
        Ok(())
    }

    fn apply_flags(&mut self, flags: &ConfigFlags) {
        if let Some(v) = &flags.host {
            self.host = v.clone();
        }
        if let Some(v) = flags.port {
            self.port = v;
        }
        if let Some(v) = flags.provider {
            self.provider = v;
        }
        if let Some(v) = &flags.data_dir {
            self.data_dir = v.clone();
        }
        if let Some(v) = &flags.gemini_base_url {
            self.gemini.base_url = v.clone();
        }
        if let Some(v) = flags.log_format {
            self.log_format = v;
        }
        if let Some(v) = &flags.database_url {
            self.database_url = Some(ServiceUrl::new(v.clone()));
        }
        if let Some(v) = &flags.redis_url {
            self.redis_url = Some(ServiceUrl::new(v.clone()));
        }
        if let Some(v) = &flags.object_store_url {
            self.object_store_url = Some(v.clone());
        }
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        self.validate_storage()?;
        self.validate_server()?;
        self.validate_proxy()?;
        // A guessable admin token would hand out keys to whoever guesses it.
        if let Some(token) = &self.auth.admin_token
            && (token.expose().len() < 24 || token.expose().starts_with("igk_"))
        {
            return Err(ConfigError::Invalid(
                "auth.admin_token must be at least 24 characters and not an API key; generate one with `openssl rand -hex 32`".into(),
            ));
        }
        let g = &self.gemini;
        if !(g.deadline_secs.is_finite() && g.deadline_secs > 0.0) {
            return Err(ConfigError::Invalid(
                "gemini.deadline_secs must be positive".into(),
            ));
        }
        if g.max_attempts == 0 {
            return Err(ConfigError::Invalid(
                "gemini.max_attempts must be at least 1".into(),
            ));
        }
        if !(g.base_url.starts_with("http://") || g.base_url.starts_with("https://")) {
            return Err(ConfigError::Invalid(format!(
                "gemini.base_url must be an http(s) URL, got {:?}",
                g.base_url
            )));
        }
        if let Some(proxy) = &self.jobs.webhooks.proxy
            && reqwest::Proxy::all(proxy.expose()).is_err()
        {
            return Err(ConfigError::Invalid(format!(
                "jobs.webhooks.proxy must be a proxy URL such as http://proxy:3128, got {proxy:?}"
            )));
        }
        if self.limits.max_input_edge < 64 {
            return Err(ConfigError::Invalid(
                "limits.max_input_edge must be at least 64".into(),
            ));
        }
        if self.provider == ProviderChoice::Gemini && self.google_api_key.is_none() {
            return Err(ConfigError::Invalid(
                "provider = gemini needs GOOGLE_API_KEY (or google_api_key in the config file)"
                    .into(),
            ));
        }
        Ok(())
    }

    /// Which provider actually serves requests.
    pub fn effective_provider(&self) -> ProviderChoice {
        match (self.provider, &self.google_api_key) {
            (ProviderChoice::Auto, Some(_)) => ProviderChoice::Gemini,
            (ProviderChoice::Auto, None) => ProviderChoice::Offline,
            (other, _) => other,
        }
    }

    pub fn deadline(&self) -> Duration {
        Duration::from_secs_f64(self.gemini.deadline_secs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env_of(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn layers_apply_in_order_defaults_file_env_flags() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("imagegate.toml");
        std::fs::write(
            &file,
            "port = 9001\nhost = \"127.0.0.1\"\n[gemini]\ndeadline_secs = 5.0\n",
        )
        .unwrap();
        let env = env_of(&[
            ("IMAGEGATE_PORT", "9002"),
            ("GOOGLE_API_KEY", "AIza-secret"),
        ]);
        let flags = ConfigFlags {
            config: Some(file),
            port: Some(9003),
            ..Default::default()
        };
        let config = Config::load(&flags, &|k| env.get(k).cloned()).unwrap();
        assert_eq!(config.port, 9003, "flag beats env and file");
        assert_eq!(config.host, "127.0.0.1", "file beats default");
        assert_eq!(config.gemini.deadline_secs, 5.0);
        assert_eq!(config.effective_provider(), ProviderChoice::Gemini);
        let printed = format!("{config:?}");
        assert!(
            !printed.contains("AIza-secret"),
            "secrets are redacted: {printed}"
        );
    }

    #[test]
    fn without_a_google_key_the_offline_provider_serves() {
        let config = Config::load(&ConfigFlags::default(), &|_| None).unwrap();
        assert_eq!(config.effective_provider(), ProviderChoice::Offline);
        assert_eq!(config.port, 8000);
    }

    #[test]
    fn unknown_keys_in_the_file_are_an_error_not_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(&file, "prot = 1\n").unwrap();
        let err = Config::from_toml_file(&file).unwrap_err();
        assert!(err.to_string().contains("prot"), "{err}");
    }

    #[test]
    fn env_booleans_accept_the_usual_spellings_in_any_case() {
        for (value, expected) in [
            ("1", true),
            ("0", false),
            ("True", true),
            ("FALSE", false),
            ("yes", true),
            ("No", false),
            ("on", true),
            (" OFF ", false),
        ] {
            let env = env_of(&[("IMAGEGATE_WEBHOOKS_ALLOW_PRIVATE", value)]);
            let config = Config::load(&ConfigFlags::default(), &|k| env.get(k).cloned()).unwrap();
            assert_eq!(config.jobs.webhooks.allow_private, expected, "{value:?}");
        }
        let env = env_of(&[("IMAGEGATE_SINGLE_INSTANCE", "maybe")]);
        let err = Config::load(&ConfigFlags::default(), &|k| env.get(k).cloned()).unwrap_err();
        assert!(
            err.to_string().contains("IMAGEGATE_SINGLE_INSTANCE"),
            "{err}"
        );
        assert!(err.to_string().contains("yes/no"), "{err}");
    }

    #[test]
    fn a_bad_env_value_names_the_variable() {
        let env = env_of(&[("IMAGEGATE_PORT", "eighty")]);
        let err = Config::load(&ConfigFlags::default(), &|k| env.get(k).cloned()).unwrap_err();
        assert!(err.to_string().contains("IMAGEGATE_PORT"), "{err}");
    }
}

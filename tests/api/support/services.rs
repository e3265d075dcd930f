//! The shared services of a scale-out deployment, each isolated per test and removed
//! afterwards: a fresh PostgreSQL schema, a Redis key prefix, and a bucket on a local
//! S3-compatible server (moto, from PyPI) started once per test binary.
//!
//! A test that needs one of them is marked `#[ignore = "needs …"]`, so a plain `cargo test`
//! lists it as ignored with the reason; run with `--include-ignored` (as `.ci/run` and the
//! README's test command do), a missing service fails it with what is missing: never a
//! silent pass.

use std::fmt::Display;
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use imagegate::config::{Config, Secret, ServiceUrl};

const DEFAULT_POSTGRES: &str = "postgres://postgres@127.0.0.1:5432/test";
const DEFAULT_REDIS: &str = "redis://127.0.0.1:6379";

fn unavailable(service: &str, why: impl Display) -> ! {
    panic!(
        "this test needs {service}, which is unavailable: {why} (see README.md, \"Two commands\")"
    );
}

fn unique(prefix: &str) -> String {
    format!("{prefix}{}", ulid::Ulid::new()).to_lowercase()
}

/// Runs `work` to completion on a runtime of its own: `Drop` cannot await, and may run
/// inside (or outside) a test's runtime.
fn block_on_own_runtime(work: impl Future<Output = ()> + Send + 'static) {
    let _ = std::thread::spawn(move || {
        if let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            runtime.block_on(work);
        }
    })
    .join();
}

/// A schema of its own in the test database; `url` selects it through `search_path`.
pub struct PgSchema {
    admin: String,
    pub name: String,
    pub url: String,
}

impl PgSchema {
    pub async fn create() -> Self {
        let admin = std::env::var("IMAGEGATE_TEST_POSTGRES_URL")
            .unwrap_or_else(|_| DEFAULT_POSTGRES.into());
        let name = unique("t_");
        let connected = sqlx::postgres::PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(3))
            .connect(&admin)
            .await;
        let pool = match connected {
            Ok(pool) => pool,
            Err(e) => unavailable("PostgreSQL", format!("{admin}: {e}")),
        };
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {name}")))
            .execute(&pool)
            .await
            .expect("the schema is created");
        pool.close().await;
        let separator = if admin.contains('?') { '&' } else { '?' };
        let url = format!("{admin}{separator}options=-c%20search_path%3D{name}");
        Self { admin, name, url }
    }

    pub fn database_url(&self) -> ServiceUrl {
        ServiceUrl::new(self.url.clone())
    }
}

impl Drop for PgSchema {
    fn drop(&mut self) {
        let (admin, name) = (self.admin.clone(), self.name.clone());
        block_on_own_runtime(async move {
            if let Ok(pool) = sqlx::PgPool::connect(&admin).await {
                let drop = format!("DROP SCHEMA IF EXISTS {name} CASCADE");
                let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(drop))
                    .execute(&pool)
                    .await;
                pool.close().await;
            }
        });
    }
}

/// A key prefix of its own on the test Redis; its keys are deleted afterwards.
pub struct RedisPrefix {
    pub url: String,
    pub prefix: String,
}

impl RedisPrefix {
    pub async fn create() -> Self {
        let url =
            std::env::var("IMAGEGATE_TEST_REDIS_URL").unwrap_or_else(|_| DEFAULT_REDIS.into());
        let ping = async {
            let client = redis::Client::open(url.as_str())?;
            let mut conn = client.get_multiplexed_async_connection().await?;
            redis::cmd("PING").query_async::<String>(&mut conn).await
        };
        match tokio::time::timeout(Duration::from_secs(3), ping).await {
            Ok(Ok(_)) => Self {
                url,
                prefix: unique("imagegate-test:") + ":",
            },
            Ok(Err(e)) => unavailable("Redis", format!("{url}: {e}")),
            Err(_) => unavailable("Redis", format!("{url}: no answer")),
        }
    }

    pub fn configure(&self, config: &mut Config) {
        config.redis_url = Some(ServiceUrl::new(self.url.clone()));
        config.redis.key_prefix = self.prefix.clone();
    }
}

impl Drop for RedisPrefix {
    fn drop(&mut self) {
        let (url, pattern) = (self.url.clone(), format!("{}*", self.prefix));
        block_on_own_runtime(async move {
            let Ok(client) = redis::Client::open(url.as_str()) else {
                return;
            };
            let Ok(mut conn) = client.get_multiplexed_async_connection().await else {
                return;
            };
            let keys: Vec<String> = redis::cmd("KEYS")
                .arg(&pattern)
                .query_async(&mut conn)
                .await
                .unwrap_or_default();
            if !keys.is_empty() {
                let _: Result<i64, _> = redis::cmd("DEL").arg(keys).query_async(&mut conn).await;
            }
        });
    }
}

/// The local S3-compatible server. Its shell wrapper reads stdin, which stays open while
/// this test binary runs: when the binary exits, the pipe closes and the wrapper stops
/// moto, so no server outlives the tests.
struct Moto {
    endpoint: String,
    _wrapper: Mutex<Child>,
}

fn moto() -> Result<&'static Moto, String> {
    static MOTO: OnceLock<Result<Moto, String>> = OnceLock::new();
    MOTO.get_or_init(start_moto).as_ref().map_err(Clone::clone)
}

fn start_moto() -> Result<Moto, String> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| e.to_string())?
        .port();
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    let script = "\"$0\" -m moto.server -H 127.0.0.1 -p \"$1\" >/dev/null 2>&1 & moto=$!; \
                  trap 'kill $moto 2>/dev/null' EXIT; read -r _; kill $moto 2>/dev/null";
    let wrapper = Command::new("sh")
        .args(["-c", script, &python, &port.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("starting {python} -m moto.server: {e}"))?;
    // moto takes a few seconds to import; it is up when its port accepts connections.
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            return Err(
                "moto.server did not listen within 60 s (pip install 'moto[server]')".into(),
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(Moto {
        endpoint: format!("http://127.0.0.1:{port}"),
        _wrapper: Mutex::new(wrapper),
    })
}

/// A bucket of its own on the local S3-compatible server.
pub struct S3Bucket {
    pub endpoint: String,
    pub url: String,
}

impl S3Bucket {
    pub async fn create() -> Self {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let started = tokio::task::spawn_blocking(moto).await.expect("moto start");
        let moto = match started {
            Ok(moto) => moto,
            Err(e) => unavailable("S3 (moto)", e),
        };
        let bucket = unique("t-");
        let created = reqwest::Client::new()
            .put(format!("{}/{bucket}", moto.endpoint))
            .send()
            .await
            .expect("moto answers");
        assert!(
            created.status().is_success(),
            "bucket created: {}",
            created.status()
        );
        Self {
            endpoint: moto.endpoint.clone(),
            url: format!("s3://{bucket}"),
        }
    }

    pub fn configure(&self, config: &mut Config) {
        config.object_store_url = Some(self.url.clone());
        let s3 = &mut config.object_store;
        s3.endpoint = Some(self.endpoint.clone());
        s3.allow_http = true;
        s3.region = Some("us-east-1".into());
        // moto accepts any credentials; they must be present for requests to be signed.
        s3.access_key_id = Some("testing".into());
        s3.secret_access_key = Some(Secret::new("testing"));
    }
}

//! `GET /ready`: can this process serve generations now? Storage must answer (a trivial
//! query on the database, an object written and removed where images go) and an
//! upstream must be configured. Google itself is not called: a probe every few seconds
//! would spend quota, and an upstream outage is reported per request (502/503/504), not by
//! taking every instance out of the load balancer at once.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use crate::store::{BlobStore, DatabaseHealth};

/// A probe that has not answered by then counts as failed; load balancers time out too.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

pub struct Readiness {
    database: Arc<dyn DatabaseHealth>,
    blobs: Arc<dyn BlobStore>,
    provider: &'static str,
    /// Only the gemini provider needs a key; whether one is set, never the key.
    upstream_key: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Check {
    Ok,
    Failed,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub database: Check,
    pub image_storage: Check,
    pub upstream: Check,
    pub provider: &'static str,
    /// Why a check failed, for the log only (paths and driver messages are internal).
    #[serde(skip)]
    pub causes: Vec<String>,
}

impl Report {
    pub fn ready(&self) -> bool {
        [self.database, self.image_storage, self.upstream]
            .iter()
            .all(|c| *c == Check::Ok)
    }
}

impl Readiness {
    pub fn new(
        database: Arc<dyn DatabaseHealth>,
        blobs: Arc<dyn BlobStore>,
        provider: &'static str,
        upstream_key: bool,
    ) -> Self {
        Self {
            database,
            blobs,
            provider,
            upstream_key,
        }
    }

    pub async fn check(&self) -> Report {
        let mut causes = Vec::new();
        let mut verdict = |name: &str, outcome: Result<(), String>| match outcome {
            Ok(()) => Check::Ok,
            Err(cause) => {
                causes.push(format!("{name}: {cause}"));
                Check::Failed
            }
        };
        let database = verdict("database", within_timeout(self.ping_database()).await);
        let image_storage = verdict("image storage", within_timeout(self.write_probe()).await);
        let upstream = verdict(
            "upstream",
            match (self.provider, self.upstream_key) {
                ("gemini", false) => Err("the gemini provider has no API key".into()),
                _ => Ok(()),
            },
        );
        Report {
            database,
            image_storage,
            upstream,
            provider: self.provider,
            causes,
        }
    }

    async fn ping_database(&self) -> Result<(), String> {
        self.database.ping().await.map_err(|e| e.to_string())
    }

    async fn write_probe(&self) -> Result<(), String> {
        self.blobs.probe().await.map_err(|e| e.to_string())
    }
}

async fn within_timeout(check: impl Future<Output = Result<(), String>>) -> Result<(), String> {
    tokio::time::timeout(CHECK_TIMEOUT, check)
        .await
        .unwrap_or_else(|_| Err(format!("no answer within {CHECK_TIMEOUT:?}")))
}

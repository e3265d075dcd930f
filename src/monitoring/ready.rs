//! `GET /ready`: can this process serve generations now? Each component is checked and
//! reported by name: the database answers a trivial query, image storage takes an object
//! written and removed, the upstream answers a model listing with this gateway's key, and
//! the shared limiter (Redis) is reachable.
//!
//! Probes are cheap for whoever sends them: the whole report is cached for
//! `readiness.cache_secs` (concurrent probes wait for one check), and the upstream is asked
//! at most every `readiness.upstream_probe_secs`, so a load balancer probing every second
//! costs neither an object write per probe nor a call to Google per probe.
//!
//! A degraded limiter (Redis down, limits counted per instance) is reported but does not
//! make the instance unready: every instance would be taken out at once for something
//! they can all still serve through.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::Mutex;

use crate::config::ReadinessConfig;
use crate::limits::redis::RedisLimits;
use crate::monitoring::Metrics;
use crate::provider::gemini::GeminiProvider;
use crate::store::{Db, ObjectBlobs};

/// A probe that has not answered by then counts as failed; load balancers time out too.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

pub struct Readiness {
    database: Db,
    blobs: Arc<ObjectBlobs>,
    provider: &'static str,
    /// The Gemini client when that is the provider (the offline one has no upstream).
    upstream: Option<Arc<GeminiProvider>>,
    limits: Option<Arc<RedisLimits>>,
    metrics: Arc<Metrics>,
    cache_for: Duration,
    probe_upstream_every: Duration,
    report: Mutex<Option<(Instant, Report)>>,
    upstream_result: Mutex<Option<(Instant, Result<(), String>)>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Check {
    Ok,
    /// Working with less than it should (limits counted per instance).
    Degraded,
    Failed,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub database: Check,
    pub image_storage: Check,
    pub upstream: Check,
    /// `ok` when shared through Redis or kept in this process by configuration;
    /// `degraded` while Redis is unreachable.
    pub limits: Check,
    pub provider: &'static str,
    /// How old this report is, in seconds (it is cached).
    pub age_seconds: f64,
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
        database: Db,
        blobs: Arc<ObjectBlobs>,
        provider: &'static str,
        upstream: Option<Arc<GeminiProvider>>,
        limits: Option<Arc<RedisLimits>>,
        metrics: Arc<Metrics>,
        config: &ReadinessConfig,
    ) -> Self {
        Self {
            database,
            blobs,
            provider,
            upstream,
            limits,
            metrics,
            cache_for: Duration::from_secs_f64(config.cache_secs.max(0.0)),
            probe_upstream_every: Duration::from_secs_f64(config.upstream_probe_secs.max(0.0)),
            report: Mutex::new(None),
            upstream_result: Mutex::new(None),
        }
    }

    /// Whether limits are counted per instance because Redis is unreachable.
    pub fn limits_degraded(&self) -> bool {
        self.limits.as_ref().is_some_and(|l| l.is_degraded())
    }

    /// The cached report, or a fresh one when it is older than `cache_secs`.
    pub async fn check(&self) -> Report {
        let mut cached = self.report.lock().await;
        if let Some((at, report)) = cached.as_ref()
            && at.elapsed() < self.cache_for
        {
            let mut report = report.clone();
            report.age_seconds = at.elapsed().as_secs_f64();
            // The limiter's mode is known in memory: always current.
            report.limits = self.limits_check();
            return report;
        }
        let report = self.check_now().await;
        *cached = Some((Instant::now(), report.clone()));
        report
    }

    async fn check_now(&self) -> Report {
        let mut causes = Vec::new();
        let mut verdict = |name: &str, outcome: Result<(), String>| match outcome {
            Ok(()) => Check::Ok,
            Err(cause) => {
                causes.push(format!("{name}: {cause}"));
                Check::Failed
            }
        };
        let (database, image_storage, upstream) = tokio::join!(
            within_timeout(self.ping_database()),
            within_timeout(self.write_probe()),
            self.upstream_check(),
        );
        let database = verdict("database", database);
        let image_storage = verdict("image storage", image_storage);
        let upstream = verdict("upstream", upstream);
        for (dependency, check) in [
            ("database", database),
            ("image_storage", image_storage),
            ("upstream", upstream),
        ] {
            self.metrics
                .set_dependency_up(dependency, check == Check::Ok);
        }
        Report {
            database,
            image_storage,
            upstream,
            limits: self.limits_check(),
            provider: self.provider,
            age_seconds: 0.0,
            causes,
        }
    }

    fn limits_check(&self) -> Check {
        if self.limits_degraded() {
            Check::Degraded
        } else {
            Check::Ok
        }
    }

    /// The upstream's last probe result, probing again when it is older than
    /// `upstream_probe_secs`.
    async fn upstream_check(&self) -> Result<(), String> {
        let Some(upstream) = &self.upstream else {
            return Ok(());
        };
        let mut last = self.upstream_result.lock().await;
        if let Some((at, result)) = last.as_ref()
            && at.elapsed() < self.probe_upstream_every
        {
            return result.clone();
        }
        let result = upstream.probe().await;
        *last = Some((Instant::now(), result.clone()));
        result
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

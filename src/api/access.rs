//! What the three access layers share (auth → limits → idempotent replay), chosen
//! once at start-up: the key, usage and replay stores and the limit counters.

use std::sync::Arc;

use crate::auth::Authenticator;
use crate::clock::Clock;
use crate::config::Config;
use crate::generation::UsageSink;
use crate::limits::memory::{InFlight, SlidingWindow};
use crate::limits::{ConcurrencyLimiter, RateLimiter, Tiers};
use crate::store::Db;
use crate::store::idempotency::{IdempotencyStore, SqlIdempotencyStore};
use crate::store::keys::SqlKeyStore;
use crate::store::usage::{SqlUsageStore, UsageRecorder, UsageStore};

use super::idempotency::SingleFlight;

#[derive(Clone)]
pub struct Access {
    pub authenticator: Arc<Authenticator>,
    pub tiers: Arc<Tiers>,
    pub rate: Arc<dyn RateLimiter>,
    pub concurrency: Arc<dyn ConcurrencyLimiter>,
    pub idempotency: Arc<dyn IdempotencyStore>,
    pub single_flight: Arc<SingleFlight>,
    pub usage: Arc<dyn UsageStore>,
    pub clock: Arc<dyn Clock>,
}

impl Access {
    /// Keys, usage and replays in the embedded database; limits counted in this process.
    pub fn embedded(config: &Config, db: &Db, clock: Arc<dyn Clock>) -> Self {
        let google_key = config
            .google_api_key
            .as_ref()
            .filter(|_| config.auth.accept_google_key);
        Self {
            authenticator: Arc::new(Authenticator::new(
                Arc::new(SqlKeyStore::new(db.clone())),
                google_key,
            )),
            tiers: Arc::new(config.tiers.clone()),
            rate: Arc::new(SlidingWindow::default()),
            concurrency: Arc::new(InFlight::default()),
            idempotency: Arc::new(SqlIdempotencyStore::new(db.clone())),
            single_flight: Arc::new(SingleFlight::default()),
            usage: Arc::new(SqlUsageStore::new(db.clone())),
            clock,
        }
    }

    /// Where the generation pipeline records each upstream call's priced usage.
    pub fn usage_sink(&self) -> Arc<dyn UsageSink> {
        Arc::new(UsageRecorder::new(
            Arc::clone(&self.usage),
            Arc::clone(&self.clock),
        ))
    }
}

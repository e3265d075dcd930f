//! What the three access layers share (auth → limits → idempotent replay), chosen
//! once at start-up: the key, usage and replay stores and the limit counters.

use std::sync::Arc;

use crate::auth::Authenticator;
use crate::clock::Clock;
use crate::config::Config;
use crate::generation::UsageSink;
use crate::limits::{ConcurrencyLimiter, Limiters, RateLimiter, Tiers};
use crate::store::Storage;
use crate::store::idempotency::IdempotencyStore;
use crate::store::usage::{UsageRecorder, UsageStore};

use super::idempotency::SingleFlight;

#[derive(Clone)]
pub struct Access {
    pub authenticator: Arc<Authenticator>,
    pub keys: Arc<crate::store::keys::KeyStore>,
    /// The digest of `auth.admin_token`; `None`: the admin API is off.
    pub admin_token: Option<crate::auth::keys::KeyDigest>,
    pub tiers: Arc<Tiers>,
    pub rate: Arc<dyn RateLimiter>,
    pub concurrency: Arc<dyn ConcurrencyLimiter>,
    pub idempotency: Arc<IdempotencyStore>,
    pub single_flight: Arc<SingleFlight>,
    pub usage: Arc<UsageStore>,
    pub clock: Arc<dyn Clock>,
}

impl Access {
    /// Keys, usage and replays in the configured database; limits from `limiters`.
    /// (Concurrent identical idempotent requests are joined per process by
    /// `SingleFlight`; across instances the stored result still answers every repeat
    /// that arrives after the first finished.)
    pub fn new(
        config: &Config,
        storage: &Storage,
        limiters: Limiters,
        clock: Arc<dyn Clock>,
    ) -> Self {
        let google_key = config
            .google_api_key
            .as_ref()
            .filter(|_| config.auth.accept_google_key);
        Self {
            authenticator: Arc::new(Authenticator::new(storage.keys.clone(), google_key)),
            keys: storage.keys.clone(),
            admin_token: config
                .auth
                .admin_token
                .as_ref()
                .map(|t| crate::auth::keys::KeyDigest::of(t.expose())),
            tiers: Arc::new(config.tiers.clone()),
            rate: limiters.rate,
            concurrency: limiters.concurrency,
            idempotency: storage.idempotency.clone(),
            single_flight: Arc::new(SingleFlight::default()),
            usage: storage.usage.clone(),
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

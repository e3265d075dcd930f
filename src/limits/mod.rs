//! Per-key limits (docs/api.md#keys-and-limits): requests per minute and requests in
//! flight, set by the key's tier. The traits are what the HTTP layer sees; `memory` holds
//! the counters of a single instance, and a shared store (Redis) can implement the same
//! traits when several instances serve the same keys.

pub mod memory;
pub mod redis;

use std::collections::BTreeMap;
use std::sync::Arc;

/// The counters every request goes through, chosen once from the configuration:
/// shared through Redis when `redis_url` is set, otherwise this process's own.
pub struct Limiters {
    pub rate: Arc<dyn RateLimiter>,
    pub concurrency: Arc<dyn ConcurrencyLimiter>,
    /// For the start-up log (no credentials).
    pub description: String,
    /// The Redis limiter when limits are shared, for readiness and metrics.
    pub shared: Option<Arc<redis::RedisLimits>>,
}

impl Limiters {
    pub async fn open(config: &crate::config::Config) -> Result<Self, ::redis::RedisError> {
        Ok(match &config.redis_url {
            Some(url) => {
                let shared = Arc::new(redis::RedisLimits::connect(url, &config.redis).await?);
                Self {
                    rate: shared.clone(),
                    concurrency: shared.clone(),
                    description: format!("shared in Redis at {}", url.redacted()),
                    shared: Some(shared),
                }
            }
            None => Self::in_memory(),
        })
    }

    pub fn in_memory() -> Self {
        Self {
            rate: Arc::new(memory::SlidingWindow::default()),
            concurrency: Arc::new(memory::InFlight::default()),
            description: "in this process".into(),
            shared: None,
        }
    }
}

use serde::{Deserialize, Serialize};

/// What one tier of keys may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct TierLimits {
    pub requests_per_minute: u32,
    pub max_concurrent: u32,
}

/// The configured tiers by name. The guide's `free` and `paid` always exist; the
/// configuration changes their numbers or adds tiers (`[tiers.NAME]`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(try_from = "BTreeMap<String, TierOverride>")]
pub struct Tiers(BTreeMap<String, TierLimits>);

/// A `[tiers.NAME]` table; omitted values keep the built-in ones of `free` and `paid`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TierOverride {
    requests_per_minute: Option<u32>,
    max_concurrent: Option<u32>,
}

impl Default for Tiers {
    fn default() -> Self {
        // The guide's "Rate Limits": free 15/min, paid 600/min, 5 simultaneous requests.
        Self(BTreeMap::from([
            (
                "free".to_owned(),
                TierLimits {
                    requests_per_minute: 15,
                    max_concurrent: 5,
                },
            ),
            (
                "paid".to_owned(),
                TierLimits {
                    requests_per_minute: 600,
                    max_concurrent: 5,
                },
            ),
        ]))
    }
}

impl TryFrom<BTreeMap<String, TierOverride>> for Tiers {
    type Error = String;

    fn try_from(overrides: BTreeMap<String, TierOverride>) -> Result<Self, String> {
        let mut tiers = Self::default();
        for (name, o) in overrides {
            let valid_name = !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
            if !valid_name {
                return Err(format!(
                    "tier name {name:?}: use lowercase letters, digits, '-' or '_'"
                ));
            }
            let base = tiers.0.get(&name).copied();
            let missing = |field: &str| format!("tiers.{name}.{field} is required for a new tier");
            let limits = TierLimits {
                requests_per_minute: o
                    .requests_per_minute
                    .or(base.map(|b| b.requests_per_minute))
                    .ok_or_else(|| missing("requests_per_minute"))?,
                max_concurrent: o
                    .max_concurrent
                    .or(base.map(|b| b.max_concurrent))
                    .ok_or_else(|| missing("max_concurrent"))?,
            };
            if limits.requests_per_minute == 0 || limits.max_concurrent == 0 {
                return Err(format!("tiers.{name}: limits must be at least 1"));
            }
            tiers.0.insert(name, limits);
        }
        Ok(tiers)
    }
}

impl Tiers {
    pub fn get(&self, tier: &str) -> Option<TierLimits> {
        self.0.get(tier).copied()
    }

    pub fn names(&self) -> Vec<&str> {
        self.0.keys().map(String::as_str).collect()
    }

    /// The limits a caller of `tier` gets. A key whose tier has since been removed from
    /// the configuration gets the strictest configured tier rather than no limit at all.
    pub fn for_tier(&self, tier: &str) -> TierLimits {
        self.get(tier).unwrap_or_else(|| {
            self.0
                .values()
                .copied()
                .min_by_key(|t| (t.requests_per_minute, t.max_concurrent))
                .unwrap_or(TierLimits {
                    requests_per_minute: 1,
                    max_concurrent: 1,
                })
        })
    }
}

/// The state of a key's one-minute window after (or without) counting a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateDecision {
    pub allowed: bool,
    pub limit: u32,
    pub remaining: u32,
    /// Milliseconds until the oldest counted request leaves the window, i.e. until
    /// `remaining` next grows; 0 when nothing is counted.
    pub reset_after_ms: i64,
}

impl RateDecision {
    /// Whole seconds, rounded up, as `Retry-After` and `X-RateLimit-Reset` carry them.
    pub fn reset_after_secs(&self) -> u64 {
        u64::try_from(self.reset_after_ms.max(0))
            .unwrap_or(0)
            .div_ceil(1000)
    }
}

#[async_trait::async_trait]
pub trait RateLimiter: Send + Sync + 'static {
    /// Counts `cost` units (upstream generations) of `key_id` at `now_ms` if the last
    /// minute has room for all of them; none are counted otherwise, so a client that
    /// keeps retrying is not locked out for longer than the window.
    async fn acquire_n(
        &self,
        key_id: &str,
        per_minute: u32,
        now_ms: i64,
        cost: u32,
    ) -> RateDecision;
    /// Counts one unit, as [`RateLimiter::acquire_n`] does.
    async fn acquire(&self, key_id: &str, per_minute: u32, now_ms: i64) -> RateDecision {
        self.acquire_n(key_id, per_minute, now_ms, 1).await
    }
    /// The window as it stands, counting nothing (for responses refused for another reason).
    async fn peek(&self, key_id: &str, per_minute: u32, now_ms: i64) -> RateDecision;
}

#[async_trait::async_trait]
pub trait ConcurrencyLimiter: Send + Sync + 'static {
    /// A permit for one request in flight, or `None` when `key_id` already has `max`.
    async fn try_acquire(&self, key_id: &str, max: u32) -> Option<ConcurrencyPermit>;
}

/// One request in flight, held by its work: the request's context and every task that
/// runs its work hold a clone, and the slot frees when the last of them ends — not when
/// the response headers leave, and not when the client hangs up.
#[derive(Clone)]
pub struct Slot {
    /// Only held: the last clone dropped frees the slot.
    _held: Arc<ConcurrencyPermit>,
}

impl Slot {
    pub fn new(permit: ConcurrencyPermit) -> Self {
        Self {
            _held: Arc::new(permit),
        }
    }
}

impl std::fmt::Debug for Slot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Slot")
    }
}

/// A request's share of its key's per-minute budget, charged once by what the request
/// turns out to cost: the upstream generations of its work (a 6-step story costs 6,
/// OpenAI `n=4` costs 4), or one for anything else.
#[derive(Clone)]
pub struct Budget(Arc<BudgetInner>);

struct BudgetInner {
    rate: Arc<dyn RateLimiter>,
    key_id: String,
    per_minute: u32,
    now_ms: Box<dyn Fn() -> i64 + Send + Sync>,
    decision: std::sync::Mutex<Option<RateDecision>>,
}

impl std::fmt::Debug for Budget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Budget")
    }
}

impl Budget {
    pub fn new(
        rate: Arc<dyn RateLimiter>,
        key_id: &str,
        per_minute: u32,
        now_ms: impl Fn() -> i64 + Send + Sync + 'static,
    ) -> Self {
        Self(Arc::new(BudgetInner {
            rate,
            key_id: key_id.to_owned(),
            per_minute,
            now_ms: Box::new(now_ms),
            decision: std::sync::Mutex::new(None),
        }))
    }

    /// Counts `cost` against the window; `Err` (nothing counted) when it does not fit.
    pub async fn charge(&self, cost: u32) -> Result<RateDecision, RateDecision> {
        let inner = &self.0;
        let decision = inner
            .rate
            .acquire_n(&inner.key_id, inner.per_minute, (inner.now_ms)(), cost)
            .await;
        *inner
            .decision
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(decision);
        if decision.allowed {
            Ok(decision)
        } else {
            Err(decision)
        }
    }

    /// The decision of the charge, once one was made.
    pub fn decision(&self) -> Option<RateDecision> {
        *self
            .0
            .decision
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn per_minute(&self) -> u32 {
        self.0.per_minute
    }
}

/// One request in flight. Dropping it frees the slot.
pub struct ConcurrencyPermit {
    release: Option<Box<dyn FnOnce() + Send + Sync>>,
}

impl ConcurrencyPermit {
    pub fn new(release: impl FnOnce() + Send + Sync + 'static) -> Self {
        Self {
            release: Some(Box::new(release)),
        }
    }
}

impl Drop for ConcurrencyPermit {
    fn drop(&mut self) {
        if let Some(release) = self.release.take() {
            release();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configured_tiers_change_the_guides_numbers_and_may_add_tiers() {
        let tiers: Tiers = toml::from_str(
            "[free]\nrequests_per_minute = 30\n[team]\nrequests_per_minute = 100\nmax_concurrent = 10\n",
        )
        .unwrap();
        assert_eq!(
            tiers.get("free"),
            Some(TierLimits {
                requests_per_minute: 30,
                max_concurrent: 5
            })
        );
        assert_eq!(
            tiers.get("paid"),
            Some(TierLimits {
                requests_per_minute: 600,
                max_concurrent: 5
            })
        );
        assert_eq!(tiers.get("team").map(|t| t.max_concurrent), Some(10));
    }

    #[test]
    fn a_new_tier_without_numbers_or_with_zero_is_a_configuration_error() {
        assert!(toml::from_str::<Tiers>("[team]\nmax_concurrent = 2\n").is_err());
        assert!(toml::from_str::<Tiers>("[free]\nrequests_per_minute = 0\n").is_err());
        assert!(toml::from_str::<Tiers>("[Free]\nrequests_per_minute = 1\n").is_err());
    }

    #[test]
    fn a_key_of_a_removed_tier_gets_the_strictest_limits() {
        assert_eq!(Tiers::default().for_tier("gold").requests_per_minute, 15);
    }

    #[test]
    fn the_configuration_file_sets_tiers_under_their_names() {
        let config: crate::config::Config =
            toml::from_str("[tiers.paid]\nmax_concurrent = 8\n").unwrap();
        let paid = config.tiers.get("paid").unwrap();
        assert_eq!((paid.requests_per_minute, paid.max_concurrent), (600, 8));
        let defaults: crate::config::Config = toml::from_str("").unwrap();
        assert_eq!(defaults.tiers, Tiers::default());
    }
}

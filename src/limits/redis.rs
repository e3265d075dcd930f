//! Per-key limits shared by every instance that uses one Redis (docs/api.md#keys-and-limits:
//! the free tier's 15 a minute holds however many instances serve the key). Each decision is one
//! Lua script, so it is atomic without locks.
//!
//! - Requests per minute: the same sliding log as [`SlidingWindow`], as a sorted set of
//!   timestamps from the injected clock (tests move a manual clock; instances are
//!   expected to keep their clocks in sync, as TLS and webhooks already need).
//! - Requests in flight: a sorted set of leases scored by their expiry in Redis's own
//!   time. A permit renews its lease while it lives and removes it when dropped; an
//!   instance that crashed stops renewing, and its slots come free after one lease.
//!
//! When Redis cannot be reached the decision falls back to this instance's own counters
//! (logged): limits then hold per instance instead of failing every request. The first
//! failure switches the instance to that degraded mode at once: later requests do not
//! try Redis (each try would cost them the reconnect timeouts, 0.5–1 s), while one
//! background probe pings it every second and switches back when it answers. The mode
//! shows in `/ready` (`"limits": "degraded"`) and `/metrics` (`imagegate_limits_degraded`).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use redis::Script;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use super::memory::{InFlight, SlidingWindow};
use super::{ConcurrencyLimiter, ConcurrencyPermit, RateDecision, RateLimiter};
use crate::config::{RedisConfig, ServiceUrl};

const WINDOW_MS: i64 = 60_000;

/// KEYS[1] = the key's log; ARGV = now_ms, limit, window_ms, cost (0 only looks), unique
/// member prefix. All of `cost` is counted or none. Returns {allowed, remaining, reset_after_ms}.
const RATE_SCRIPT: &str = r"
local now, limit, window = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local cost = tonumber(ARGV[4])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local n = redis.call('ZCARD', KEYS[1])
local allowed = 0
if n + math.max(cost, 1) <= limit then
  allowed = 1
  if cost > 0 then
    for i = 1, cost do
      redis.call('ZADD', KEYS[1], now, ARGV[5] .. '-' .. i)
    end
    redis.call('PEXPIRE', KEYS[1], window)
    n = n + cost
  end
end
local reset = 0
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
if oldest[2] then reset = tonumber(oldest[2]) + window - now end
local remaining = limit - n
if remaining < 0 then remaining = 0 end
return {allowed, remaining, reset}
";

/// KEYS[1] = the key's leases; ARGV = max, member, lease_ms. Returns 1 when granted.
const ACQUIRE_SCRIPT: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then return 0 end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
";

/// KEYS[1] = the key's leases; ARGV = member, lease_ms. Returns 0 if the lease is gone.
const RENEW_SCRIPT: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) then return 0 end
redis.call('ZADD', KEYS[1], 'XX', now + tonumber(ARGV[2]), ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
";

pub struct RedisLimits {
    conn: ConnectionManager,
    prefix: String,
    lease: Duration,
    rate: Script,
    acquire: Script,
    renew: Arc<Script>,
    local_rate: SlidingWindow,
    local_in_flight: InFlight,
    /// Set while Redis is unreachable; requests then count in this process only.
    degraded: Arc<AtomicBool>,
}

/// How often a degraded instance checks whether Redis is back.
const PROBE_INTERVAL: Duration = Duration::from_secs(1);
const PROBE_TIMEOUT: Duration = Duration::from_millis(500);

impl RedisLimits {
    /// Connects now, so a wrong URL stops the start instead of every later request.
    pub async fn connect(
        url: &ServiceUrl,
        config: &RedisConfig,
    ) -> Result<Self, redis::RedisError> {
        let client = redis::Client::open(url.expose())?;
        // Limits sit in front of every request: a slow Redis must fail fast (and fall
        // back), not add seconds to each call.
        let manager = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(Duration::from_millis(500)))
            .set_number_of_retries(2);
        let conn = client.get_connection_manager_with_config(manager).await?;
        Ok(Self {
            conn,
            prefix: config.key_prefix.clone(),
            lease: config.lease(),
            rate: Script::new(RATE_SCRIPT),
            acquire: Script::new(ACQUIRE_SCRIPT),
            renew: Arc::new(Script::new(RENEW_SCRIPT)),
            local_rate: SlidingWindow::default(),
            local_in_flight: InFlight::default(),
            degraded: Arc::default(),
        })
    }

    /// Whether limits are counted per instance because Redis is unreachable.
    pub fn is_degraded(&self) -> bool {
        self.degraded.load(Ordering::Relaxed)
    }

    /// Switches to local counting and starts the one probe that switches back.
    fn degrade(&self, error: &redis::RedisError) {
        if self.degraded.swap(true, Ordering::AcqRel) {
            return;
        }
        tracing::warn!(error = %error, "redis unreachable; counting limits per instance until it answers again");
        let (degraded, mut conn) = (self.degraded.clone(), self.conn.clone());
        // Ends by itself when Redis answers; it holds no request and no permit.
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(PROBE_INTERVAL).await;
                let cmd = redis::cmd("PING");
                let ping = cmd.query_async::<String>(&mut conn);
                if let Ok(Ok(_)) = tokio::time::timeout(PROBE_TIMEOUT, ping).await {
                    degraded.store(false, Ordering::Release);
                    tracing::info!("redis answers again; limits are shared across instances");
                    break;
                }
            }
        });
    }

    async fn decide(
        &self,
        key_id: &str,
        limit: u32,
        now_ms: i64,
        cost: u32,
    ) -> Result<RateDecision, redis::RedisError> {
        let member = format!("{now_ms}-{}", ulid::Ulid::new());
        let (allowed, remaining, reset): (i64, i64, i64) = self
            .rate
            .key(format!("{}rate:{key_id}", self.prefix))
            .arg(now_ms)
            .arg(limit)
            .arg(WINDOW_MS)
            .arg(cost)
            .arg(member)
            .invoke_async(&mut self.conn.clone())
            .await?;
        Ok(RateDecision {
            allowed: allowed == 1,
            limit,
            remaining: u32::try_from(remaining).unwrap_or(0),
            reset_after_ms: reset.max(0),
        })
    }

    async fn rate_or_local(
        &self,
        key_id: &str,
        limit: u32,
        now_ms: i64,
        cost: u32,
    ) -> RateDecision {
        if !self.is_degraded() {
            match self.decide(key_id, limit, now_ms, cost).await {
                Ok(decision) => return decision,
                Err(e) => self.degrade(&e),
            }
        }
        if cost > 0 {
            self.local_rate.acquire_n(key_id, limit, now_ms, cost).await
        } else {
            self.local_rate.peek(key_id, limit, now_ms).await
        }
    }
}

#[async_trait::async_trait]
impl RateLimiter for RedisLimits {
    async fn acquire_n(
        &self,
        key_id: &str,
        per_minute: u32,
        now_ms: i64,
        cost: u32,
    ) -> RateDecision {
        self.rate_or_local(key_id, per_minute, now_ms, cost).await
    }

    async fn peek(&self, key_id: &str, per_minute: u32, now_ms: i64) -> RateDecision {
        self.rate_or_local(key_id, per_minute, now_ms, 0).await
    }
}

#[async_trait::async_trait]
impl ConcurrencyLimiter for RedisLimits {
    async fn try_acquire(&self, key_id: &str, max: u32) -> Option<ConcurrencyPermit> {
        if self.is_degraded() {
            return self.local_in_flight.try_acquire(key_id, max).await;
        }
        let key = format!("{}inflight:{key_id}", self.prefix);
        let member = ulid::Ulid::new().to_string();
        let lease_ms = i64::try_from(self.lease.as_millis()).unwrap_or(i64::MAX);
        let granted: Result<i64, _> = self
            .acquire
            .key(&key)
            .arg(max)
            .arg(&member)
            .arg(lease_ms)
            .invoke_async(&mut self.conn.clone())
            .await;
        match granted {
            Ok(1) => Some(self.lease_permit(key, member, lease_ms)),
            Ok(_) => None,
            Err(e) => {
                self.degrade(&e);
                self.local_in_flight.try_acquire(key_id, max).await
            }
        }
    }
}

impl RedisLimits {
    /// A permit whose lease is renewed (every third of a lease) until it is dropped.
    fn lease_permit(&self, key: String, member: String, lease_ms: i64) -> ConcurrencyPermit {
        let (conn, script, every) = (self.conn.clone(), self.renew.clone(), self.lease / 3);
        let (k, m) = (key.clone(), member.clone());
        let renewer = crate::tasks::spawn(async move {
            let mut conn = conn;
            loop {
                tokio::time::sleep(every).await;
                let renewed: Result<i64, _> = script
                    .key(&k)
                    .arg(&m)
                    .arg(lease_ms)
                    .invoke_async(&mut conn)
                    .await;
                if let Ok(0) = renewed {
                    // Expired during an outage longer than the lease; the slot is
                    // already counted as free.
                    break;
                }
            }
        });
        let conn = self.conn.clone();
        ConcurrencyPermit::new(move || {
            renewer.abort();
            // Drop cannot wait: the release is sent on its own task. Without a runtime
            // (process exit) the lease simply expires.
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                let mut conn = conn;
                runtime.spawn(async move {
                    let released: Result<i64, _> =
                        redis::cmd("ZREM").arg(&key).arg(&member).query_async(&mut conn).await;
                    if let Err(e) = released {
                        tracing::warn!(error = %e, "in-flight slot not released; it expires with its lease");
                    }
                });
            }
        })
    }
}

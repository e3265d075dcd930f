//! The per-key limits in Redis, as two instances see them: one window of requests per
//! minute between them, and in-flight slots that a crashed instance cannot keep.

use std::time::{Duration, Instant};

use imagegate::config::{RedisConfig, ServiceUrl};
use imagegate::limits::redis::RedisLimits;
use imagegate::limits::{ConcurrencyLimiter, RateLimiter};

use crate::support::services::RedisPrefix;

async fn limiter(redis: &RedisPrefix, lease_secs: f64) -> RedisLimits {
    let config = RedisConfig {
        key_prefix: redis.prefix.clone(),
        lease_secs,
    };
    RedisLimits::connect(&ServiceUrl::new(redis.url.clone()), &config)
        .await
        .expect("redis connects")
}

#[ignore = "needs Redis"]
#[tokio::test]
async fn two_instances_count_one_sliding_minute_per_key() {
    let redis = RedisPrefix::create().await;
    let (a, b) = (limiter(&redis, 30.0).await, limiter(&redis, 30.0).await);
    let t0 = 1_772_409_000_000;
    for i in 0..15 {
        let instance = if i % 2 == 0 { &a } else { &b };
        let decision = instance.acquire("key_free", 15, t0 + i * 1_000).await;
        assert!(decision.allowed, "request {i}");
        assert_eq!(decision.remaining, 14 - u32::try_from(i).unwrap());
    }
    let refused = b.acquire("key_free", 15, t0 + 20_000).await;
    assert!(!refused.allowed);
    assert_eq!((refused.remaining, refused.reset_after_ms), (0, 40_000));
    assert!(
        !a.acquire("key_free", 15, t0 + 20_001).await.allowed,
        "the other instance agrees"
    );
    assert_eq!(a.peek("key_free", 15, t0 + 20_002).await.remaining, 0);
    assert!(
        a.acquire("key_other", 15, t0).await.allowed,
        "keys do not share a window"
    );

    let slid = a.acquire("key_free", 15, t0 + 60_000).await;
    assert!(slid.allowed, "the first request left the window");
    assert!(
        !b.acquire("key_free", 15, t0 + 60_001).await.allowed,
        "only one slot came back"
    );
}

#[ignore = "needs Redis"]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_flight_slots_of_a_crashed_instance_come_free_after_one_lease() {
    let redis = RedisPrefix::create().await;
    let lease = 1.0;
    // The "crashed" instance: its runtime (and with it the lease renewals) stops while
    // it holds both slots, and the permits are never dropped.
    let (url, prefix) = (redis.url.clone(), redis.prefix.clone());
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime.block_on(async {
            let config = RedisConfig {
                key_prefix: prefix,
                lease_secs: lease,
            };
            let crashed = RedisLimits::connect(&ServiceUrl::new(url), &config)
                .await
                .unwrap();
            for _ in 0..2 {
                std::mem::forget(crashed.try_acquire("key_a", 2).await.expect("a slot"));
            }
        });
    })
    .join()
    .unwrap();

    let survivor = limiter(&redis, lease).await;
    let started = Instant::now();
    assert!(
        survivor.try_acquire("key_a", 2).await.is_none(),
        "both slots are held"
    );
    // Both crashed leases expire (the second was taken a moment after the first).
    let take = || async {
        loop {
            if let Some(permit) = survivor.try_acquire("key_a", 2).await {
                break permit;
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "the leases never expired"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    let permit = take().await;
    // A live permit is renewed: it still holds its slot several leases later.
    let second = take().await;
    tokio::time::sleep(Duration::from_secs_f64(lease * 3.0)).await;
    assert!(
        survivor.try_acquire("key_a", 2).await.is_none(),
        "renewed leases keep their slots"
    );
    drop(second);
    let released = Instant::now();
    let third = loop {
        if let Some(permit) = survivor.try_acquire("key_a", 2).await {
            break permit;
        }
        assert!(
            released.elapsed() < Duration::from_secs_f64(lease / 2.0),
            "a dropped permit is released at once, not by expiry"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    drop((permit, third));
}

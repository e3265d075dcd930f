//! `GET /stats`: the guide's `APIMonitor` ("Performance Monitoring"), kept by the server.
//!
//! The guide's monitor is a client's record of its own generation requests, so each key
//! sees only its own: success is status 200, the success rate counts every request in the
//! window, and the average response time counts successful requests only. The guide keeps
//! no percentiles; p50 and p95 are taken over the same successful durations as its average,
//! with NumPy's default `np.percentile` (method `linear`: the value at the fractional rank
//! `(n − 1)·p` of the sorted durations, interpolated between its neighbours), because a
//! Python user checking our numbers would reach for that. All are 0.0 without traffic.
//!
//! The record lives in this process's memory: it is bounded by count and by age, and it
//! starts empty after a restart (durable history is what `/usage` and `/metrics` are for).

use std::collections::VecDeque;
use std::sync::Mutex;

use serde::Serialize;

/// The longest window `/stats` accepts, in minutes (a day).
pub const MAX_WINDOW_MINUTES: u32 = 1440;

/// At ~40 bytes a record, 100 000 records hold a busy day in about 4 MB.
const CAPACITY: usize = 100_000;

struct Record {
    at_ms: i64,
    key_id: String,
    seconds: f64,
    status: u16,
}

/// Recent generation requests (timestamps from the injected clock).
pub struct RecentRequests {
    records: Mutex<VecDeque<Record>>,
    capacity: usize,
}

impl Default for RecentRequests {
    fn default() -> Self {
        Self::with_capacity(CAPACITY)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Stats {
    pub window_minutes: u32,
    pub total_requests: usize,
    pub successful_requests: usize,
    /// Successful / all requests in the window, 0.0–1.0.
    pub success_rate: f64,
    /// Seconds, over successful requests.
    pub avg_response_time: f64,
    pub p50_response_time: f64,
    pub p95_response_time: f64,
}

impl RecentRequests {
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            records: Mutex::new(VecDeque::new()),
            capacity,
        }
    }

    pub fn record(&self, at_ms: i64, key_id: &str, seconds: f64, status: u16) {
        let mut records = self.records.lock().unwrap_or_else(|p| p.into_inner());
        let oldest_useful = at_ms - i64::from(MAX_WINDOW_MINUTES) * 60_000;
        while records
            .front()
            .is_some_and(|r| r.at_ms <= oldest_useful || records.len() >= self.capacity)
        {
            records.pop_front();
        }
        records.push_back(Record {
            at_ms,
            key_id: key_id.to_owned(),
            seconds,
            status,
        });
    }

    /// The guide's `get_success_rate` and `get_avg_response_time` for `key_id`, plus
    /// percentiles. As in the guide, a request is in the window when its timestamp is
    /// strictly after `now − window`.
    pub fn stats(&self, key_id: &str, now_ms: i64, window_minutes: u32) -> Stats {
        let cutoff = now_ms - i64::from(window_minutes) * 60_000;
        let records = self.records.lock().unwrap_or_else(|p| p.into_inner());
        let recent: Vec<&Record> = records
            .iter()
            .filter(|r| r.at_ms > cutoff && r.key_id == key_id)
            .collect();
        let mut successes: Vec<f64> = recent
            .iter()
            .filter(|r| r.status == 200)
            .map(|r| r.seconds)
            .collect();
        // Summed in arrival order, as the guide's `sum` over its list is.
        let total: f64 = successes.iter().sum();
        successes.sort_by(f64::total_cmp);

        Stats {
            window_minutes,
            total_requests: recent.len(),
            successful_requests: successes.len(),
            success_rate: ratio_f64(successes.len() as f64, recent.len()),
            avg_response_time: ratio_f64(total, successes.len()),
            p50_response_time: percentile(&successes, 50.0),
            p95_response_time: percentile(&successes, 95.0),
        }
    }
}

/// `part / whole`, or 0.0 when there is nothing to divide by (the guide's "no traffic").
fn ratio_f64(part: f64, whole: usize) -> f64 {
    if whole == 0 { 0.0 } else { part / whole as f64 }
}

/// `np.percentile(sorted, p)` with the default `linear` method, step for step: virtual index
/// `(n − 1)·(p / 100)`, then NumPy's `_lerp`, which interpolates from the nearer neighbour.
/// 0.0 for no values.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    let Some(&last) = sorted.last() else {
        return 0.0;
    };
    let n = sorted.len();
    let index = (n - 1) as f64 * (p / 100.0);
    let below = index.floor();
    let (a, b) = match below as usize {
        i if i + 1 < n => (sorted[i], sorted[i + 1]),
        _ => (last, last),
    };
    let t = index - below;
    let diff = b - a;
    if t >= 0.5 {
        b - diff * (1.0 - t)
    } else {
        a + diff * t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_equal_numpys_default_percentile() {
        // Expected values printed by `np.percentile(xs, 50)` and `(xs, 95)` (NumPy 2.4).
        let cases: [(&[f64], f64, f64); 5] = [
            (&[1.0], 1.0, 1.0),
            (&[1.0, 2.0], 1.5, 1.95),
            (&[0.1, 0.2, 0.3, 0.4, 10.0], 0.3, 8.079999999999998),
            (&[1.0, 2.0, 3.0, 4.0], 2.5, 3.8499999999999996),
            (
                &[0.25, 0.5, 1.5, 2.0, 2.5, 3.0, 7.0],
                2.0,
                5.799999999999997,
            ),
        ];
        for (values, p50, p95) in cases {
            assert_eq!(percentile(values, 50.0), p50, "{values:?}");
            assert_eq!(percentile(values, 95.0), p95, "{values:?}");
        }
        assert_eq!(percentile(&[], 95.0), 0.0);
    }

    #[test]
    fn without_traffic_every_number_is_zero() {
        let recent = RecentRequests::default();

        let stats = recent.stats("key_a", 1_000_000, 60);

        assert_eq!(stats.success_rate, 0.0);
        assert_eq!(stats.avg_response_time, 0.0);
        assert_eq!(stats.p95_response_time, 0.0);
    }

    #[test]
    fn success_rate_counts_all_requests_and_times_count_successes_only() {
        let recent = RecentRequests::default();
        recent.record(1_000, "key_a", 2.0, 200);
        recent.record(2_000, "key_a", 4.0, 200);
        recent.record(3_000, "key_a", 0.1, 422);
        recent.record(4_000, "key_b", 9.0, 200);

        let stats = recent.stats("key_a", 5_000, 60);

        assert_eq!(stats.total_requests, 3);
        assert_eq!(stats.successful_requests, 2);
        assert_eq!(stats.success_rate, 2.0 / 3.0);
        assert_eq!(stats.avg_response_time, 3.0);
        assert_eq!(stats.p50_response_time, 3.0);
    }

    #[test]
    fn the_window_excludes_a_request_exactly_at_its_start_as_the_guide_does() {
        let recent = RecentRequests::default();
        recent.record(0, "key_a", 1.0, 200);
        recent.record(1, "key_a", 3.0, 200);

        let stats = recent.stats("key_a", 60_000, 1);

        assert_eq!(stats.total_requests, 1);
        assert_eq!(stats.avg_response_time, 3.0);
    }

    #[test]
    fn the_record_is_bounded_by_count_and_by_the_longest_window() {
        let recent = RecentRequests::with_capacity(3);
        for at in 0..5 {
            recent.record(at, "key_a", 1.0, 200);
        }
        assert_eq!(recent.stats("key_a", 10, 60).total_requests, 3);

        let day = i64::from(MAX_WINDOW_MINUTES) * 60_000;
        recent.record(day + 10, "key_a", 1.0, 200);

        assert_eq!(
            recent
                .stats("key_a", day + 10, MAX_WINDOW_MINUTES)
                .total_requests,
            1
        );
    }
}

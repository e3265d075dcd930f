//! A small metrics registry: counters, gauges and fixed-bucket histograms, rendered in the
//! Prometheus text exposition format 0.0.4. Hand-rolled because the whole need is a dozen
//! series behind a mutex; a metrics framework would add more than it saves.
//!
//! Label values come from bounded sets only (route templates, status codes, model names
//! from the model table, outcome and limit names), so the series count stays small.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

/// Seconds. Generations take seconds to a minute; probes and errors take milliseconds.
const LATENCY_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0,
];

/// Values by label values, `N` labels per series.
struct Family<const N: usize, V> {
    name: &'static str,
    help: &'static str,
    labels: [&'static str; N],
    series: Mutex<BTreeMap<[String; N], V>>,
}

impl<const N: usize, V: Default> Family<N, V> {
    const fn new(name: &'static str, help: &'static str, labels: [&'static str; N]) -> Self {
        Self {
            name,
            help,
            labels,
            series: Mutex::new(BTreeMap::new()),
        }
    }

    fn with(&self, values: [&str; N], update: impl FnOnce(&mut V)) {
        // A panic cannot leave a half-made update behind, so a poisoned lock is still sound.
        let mut series = self.series.lock().unwrap_or_else(|p| p.into_inner());
        update(series.entry(values.map(str::to_owned)).or_default());
    }

    fn label_set(&self, values: &[String; N], extra: Option<(&str, &str)>) -> String {
        let mut pairs: Vec<String> = self
            .labels
            .iter()
            .zip(values)
            .map(|(name, value)| format!("{name}=\"{}\"", escape(value)))
            .collect();
        pairs.extend(extra.map(|(name, value)| format!("{name}=\"{value}\"")));
        if pairs.is_empty() {
            String::new()
        } else {
            format!("{{{}}}", pairs.join(","))
        }
    }

    fn header(&self, out: &mut String, kind: &str) {
        let _ = writeln!(out, "# HELP {} {}", self.name, self.help);
        let _ = writeln!(out, "# TYPE {} {kind}", self.name);
    }
}

impl<const N: usize> Family<N, f64> {
    fn add(&self, values: [&str; N], amount: f64) {
        self.with(values, |v| *v += amount);
    }

    fn render(&self, out: &mut String) {
        self.render_as(out, "counter");
    }

    fn render_as(&self, out: &mut String, kind: &str) {
        self.header(out, kind);
        let series = self.series.lock().unwrap_or_else(|p| p.into_inner());
        for (values, value) in series.iter() {
            let _ = writeln!(out, "{}{} {value}", self.name, self.label_set(values, None));
        }
    }
}

#[derive(Default)]
struct Histogram {
    /// Per bucket, not cumulative; one more than `LATENCY_BUCKETS` for `+Inf`.
    counts: Vec<u64>,
    sum: f64,
}

impl<const N: usize> Family<N, Histogram> {
    fn observe(&self, values: [&str; N], seconds: f64) {
        self.with(values, |h| {
            h.counts.resize(LATENCY_BUCKETS.len() + 1, 0);
            let bucket = LATENCY_BUCKETS.partition_point(|&le| le < seconds);
            h.counts[bucket] += 1;
            h.sum += seconds;
        });
    }

    fn render(&self, out: &mut String) {
        self.header(out, "histogram");
        let series = self.series.lock().unwrap_or_else(|p| p.into_inner());
        for (values, h) in series.iter() {
            let mut cumulative = 0;
            let bounds = LATENCY_BUCKETS.iter().map(|b| b.to_string());
            for (le, count) in bounds.chain(["+Inf".to_owned()]).zip(&h.counts) {
                cumulative += count;
                let labels = self.label_set(values, Some(("le", &le)));
                let _ = writeln!(out, "{}_bucket{labels} {cumulative}", self.name);
            }
            let labels = self.label_set(values, None);
            let _ = writeln!(out, "{}_sum{labels} {}", self.name, h.sum);
            let _ = writeln!(out, "{}_count{labels} {cumulative}", self.name);
        }
    }
}

struct Gauge {
    name: &'static str,
    help: &'static str,
    value: AtomicI64,
}

impl Gauge {
    fn render(&self, out: &mut String) {
        let _ = writeln!(out, "# HELP {} {}", self.name, self.help);
        let _ = writeln!(out, "# TYPE {} gauge", self.name);
        let _ = writeln!(out, "{} {}", self.name, self.value.load(Ordering::Relaxed));
    }
}

/// Label values need `\`, `"` and newlines escaped (exposition format 0.0.4).
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Every metric the gateway exports.
pub struct Metrics {
    requests: Family<3, f64>,
    durations: Family<1, Histogram>,
    in_flight: Gauge,
    queue_depth: Gauge,
    /// 1 or 0 per dependency, as the last readiness check or store read found it.
    dependency_up: Family<1, f64>,
    limits_degraded: Gauge,
    upstream_calls: Family<1, f64>,
    upstream_retries: Family<1, f64>,
    upstream_durations: Family<0, Histogram>,
    images: Family<1, f64>,
    tokens: Family<2, f64>,
    cost: Family<1, f64>,
    rate_limited: Family<1, f64>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            requests: Family::new(
                "imagegate_http_requests_total",
                "HTTP requests answered, by route template, method and status.",
                ["endpoint", "method", "status"],
            ),
            durations: Family::new(
                "imagegate_http_request_duration_seconds",
                "Time from a request's arrival to its response, by route template.",
                ["endpoint"],
            ),
            in_flight: Gauge {
                name: "imagegate_http_requests_in_flight",
                help: "HTTP requests being served now.",
                value: AtomicI64::new(0),
            },
            queue_depth: Gauge {
                name: "imagegate_queue_depth",
                help: "Async requests stored and waiting to run (status queued), as last read from the store (at most every few seconds, in the background: a scrape never waits for the database).",
                value: AtomicI64::new(0),
            },
            dependency_up: Family::new(
                "imagegate_dependency_up",
                "1 when a dependency (database, image_storage, upstream) answered its last check, 0 when it failed.",
                ["dependency"],
            ),
            limits_degraded: Gauge {
                name: "imagegate_limits_degraded",
                help: "1 while the shared limiter (Redis) is unreachable and limits are counted per instance.",
                value: AtomicI64::new(0),
            },
            upstream_calls: Family::new(
                "imagegate_upstream_calls_total",
                "HTTP calls to the upstream model API (each retry is a call), by outcome: success, rate_limited, server_error, client_error, network_error, deadline_exceeded.",
                ["outcome"],
            ),
            upstream_retries: Family::new(
                "imagegate_upstream_retries_total",
                "Upstream calls retried, by the outcome of the call that was retried.",
                ["outcome"],
            ),
            upstream_durations: Family::new(
                "imagegate_upstream_call_duration_seconds",
                "Duration of each upstream HTTP call.",
                [],
            ),
            images: Family::new(
                "imagegate_images_generated_total",
                "Images returned by the model, by model.",
                ["model"],
            ),
            tokens: Family::new(
                "imagegate_tokens_total",
                "Tokens reported by the upstream, by model and kind (input, output, image, thought).",
                ["model", "kind"],
            ),
            cost: Family::new(
                "imagegate_cost_usd_total",
                "Cost of upstream usage in US dollars, priced by the model table, by model.",
                ["model"],
            ),
            rate_limited: Family::new(
                "imagegate_rate_limit_rejections_total",
                "Requests refused with 429, by limit (requests_per_minute, concurrency, upstream).",
                ["limit"],
            ),
        }
    }
}

/// How one upstream HTTP call ended, as a metrics label.
pub fn upstream_outcome(status: Option<u16>) -> &'static str {
    match status {
        Some(200..=299) => "success",
        Some(429) => "rate_limited",
        Some(500..=599) => "server_error",
        Some(_) => "client_error",
        None => "network_error",
    }
}

/// Counts a request in flight until dropped, so a request whose client went away (its
/// future dropped mid-way) still leaves the gauge.
pub struct InFlight(Arc<Metrics>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.value.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Metrics {
    pub fn in_flight(self: &Arc<Self>) -> InFlight {
        self.in_flight.value.fetch_add(1, Ordering::Relaxed);
        InFlight(Arc::clone(self))
    }

    pub fn request_finished(&self, endpoint: &str, method: &str, status: u16, seconds: f64) {
        self.requests
            .add([endpoint, method, &status.to_string()], 1.0);
        self.durations.observe([endpoint], seconds);
    }

    pub fn rate_limited(&self, limit: &str) {
        self.rate_limited.add([limit], 1.0);
    }

    /// One upstream HTTP call that got an answer or failed; `outcome` from
    /// [`upstream_outcome`].
    pub fn upstream_call(&self, outcome: &str, seconds: f64) {
        self.upstream_calls.add([outcome], 1.0);
        self.upstream_durations.observe([], seconds);
    }

    /// The call in flight when the overall deadline struck: counted, not timed.
    pub fn upstream_abandoned(&self) {
        self.upstream_calls.add(["deadline_exceeded"], 1.0);
    }

    pub fn upstream_retry(&self, outcome: &str) {
        self.upstream_retries.add([outcome], 1.0);
    }

    pub fn generated(&self, model: &str, images: usize, tokens: [(&str, u64); 4], cost_usd: f64) {
        self.images.add([model], images as f64);
        for (kind, count) in tokens {
            self.tokens.add([model, kind], count as f64);
        }
        self.cost.add([model], cost_usd);
    }

    pub fn set_queue_depth(&self, depth: i64) {
        self.queue_depth.value.store(depth, Ordering::Relaxed);
    }

    pub fn set_dependency_up(&self, dependency: &str, up: bool) {
        self.dependency_up
            .with([dependency], |v| *v = if up { 1.0 } else { 0.0 });
    }

    pub fn set_limits_degraded(&self, degraded: bool) {
        self.limits_degraded
            .value
            .store(i64::from(degraded), Ordering::Relaxed);
    }

    /// The text exposition format, `text/plain; version=0.0.4`.
    pub fn render(&self) -> String {
        let mut out = String::new();
        self.requests.render(&mut out);
        self.durations.render(&mut out);
        self.in_flight.render(&mut out);
        self.queue_depth.render(&mut out);
        self.dependency_up.render_as(&mut out, "gauge");
        self.limits_degraded.render(&mut out);
        self.upstream_calls.render(&mut out);
        self.upstream_retries.render(&mut out);
        self.upstream_durations.render(&mut out);
        self.images.render(&mut out);
        self.tokens.render(&mut out);
        self.cost.render(&mut out);
        self.rate_limited.render(&mut out);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_render_with_help_type_and_escaped_labels() {
        let metrics = Metrics::default();
        metrics.rate_limited("per \"minute\"\\");
        metrics.rate_limited("per \"minute\"\\");

        let text = metrics.render();

        assert!(text.contains("# HELP imagegate_rate_limit_rejections_total Requests refused"));
        assert!(text.contains("# TYPE imagegate_rate_limit_rejections_total counter"));
        assert!(
            text.contains(r#"imagegate_rate_limit_rejections_total{limit="per \"minute\"\\"} 2"#),
            "{text}"
        );
    }

    #[test]
    fn histogram_buckets_are_cumulative_and_end_with_inf() {
        let metrics = Arc::new(Metrics::default());
        let in_flight = metrics.in_flight();
        metrics.request_finished("/health", "GET", 200, 0.003);
        metrics.request_finished("/health", "GET", 200, 0.2);
        metrics.request_finished("/health", "GET", 200, 500.0);
        assert!(
            metrics
                .render()
                .contains("imagegate_http_requests_in_flight 1\n")
        );
        drop(in_flight);

        let text = metrics.render();

        let series = |le: &str| {
            format!(
                r#"imagegate_http_request_duration_seconds_bucket{{endpoint="/health",le="{le}"}}"#
            )
        };
        assert!(text.contains(&format!("{} 1\n", series("0.005"))), "{text}");
        assert!(text.contains(&format!("{} 1\n", series("0.1"))));
        assert!(text.contains(&format!("{} 2\n", series("0.25"))));
        assert!(text.contains(&format!("{} 2\n", series("120"))));
        assert!(text.contains(&format!("{} 3\n", series("+Inf"))));
        assert!(
            text.contains(r#"imagegate_http_request_duration_seconds_count{endpoint="/health"} 3"#)
        );
        assert!(text.contains(
            r#"imagegate_http_requests_total{endpoint="/health",method="GET",status="200"} 3"#
        ));
        assert!(text.contains("imagegate_http_requests_in_flight 0\n"));
    }

    #[test]
    fn an_observation_on_a_bucket_bound_counts_in_that_bucket() {
        let metrics = Metrics::default();
        metrics.upstream_call("success", 1.0);

        let text = metrics.render();

        assert!(text.contains(r#"imagegate_upstream_call_duration_seconds_bucket{le="0.5"} 0"#));
        assert!(text.contains(r#"imagegate_upstream_call_duration_seconds_bucket{le="1"} 1"#));
        assert!(text.contains("imagegate_upstream_call_duration_seconds_sum 1\n"));
    }
}

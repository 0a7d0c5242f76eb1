//! `GET /metrics`: Prometheus (OpenMetrics text). Counters and the scan-duration histogram
//! live in the process; the queue and image gauges are read from the store at every scrape,
//! so they are right across restarts and across several `bulkhead serve` sharing a store.
//! Labels are fixed words (kinds, results, states), never tenant, registry or repository
//! names: the endpoint is unauthenticated.

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

type Labels1 = [(&'static str, &'static str); 1];
type Labels2 = [(&'static str, &'static str); 2];

/// The service's metrics.
pub struct Metrics {
    registry: Registry,
    webhook_events: Family<Labels2, Counter>,
    scans: Family<Labels1, Counter>,
    scan_duration: Histogram,
    jobs: Family<Labels1, Gauge>,
    jobs_ready: Gauge,
    images: Family<Labels1, Gauge>,
    deliveries: Family<Labels1, Gauge>,
    delivery_attempts: Family<Labels1, Counter>,
    rescans: Family<Labels1, Counter>,
    rescanned_images: Family<Labels1, Counter>,
    queries: Family<Labels1, Counter>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::default();
        let webhook_events = Family::<Labels2, Counter>::default();
        registry.register(
            "bulkhead_webhook_events",
            "Registry notification events received, by kind (manifest_push, index_push, harbor_push, blob_push, pull, mount, delete, other, envelope) and result (enqueued, coalesced, already_scanned, ignored, unowned, out_of_scope, unauthorized, malformed, inspect_failed, store_error)",
            webhook_events.clone(),
        );
        let scans = Family::<Labels1, Counter>::default();
        registry.register(
            "bulkhead_scans",
            "Scan jobs finished by this process, by outcome (done, retried, failed, unsupported, lease_lost, abandoned)",
            scans.clone(),
        );
        // 0.25 s … ~34 min: a cached layer scan takes well under a second, a cold 1 GB
        // image minutes.
        let scan_duration = Histogram::new(exponential_buckets(0.25, 2.0, 14));
        registry.register(
            "bulkhead_scan_duration_seconds",
            "Wall-clock time of scans that produced a result",
            scan_duration.clone(),
        );
        let jobs = Family::<Labels1, Gauge>::default();
        registry.register(
            "bulkhead_jobs",
            "Scan jobs in the store, by state (queued, running, done, failed)",
            jobs.clone(),
        );
        let jobs_ready = Gauge::default();
        registry.register(
            "bulkhead_jobs_ready",
            "Queued jobs that are due (the queue depth workers see)",
            jobs_ready.clone(),
        );
        let images = Family::<Labels1, Gauge>::default();
        registry.register(
            "bulkhead_images",
            "Images in the store, by health",
            images.clone(),
        );
        let deliveries = Family::<Labels1, Gauge>::default();
        registry.register(
            "bulkhead_deliveries",
            "Notification deliveries in the store, by state",
            deliveries.clone(),
        );
        let delivery_attempts = Family::<Labels1, Counter>::default();
        registry.register(
            "bulkhead_delivery_attempts",
            "Notification attempts made by this process, by result (delivered, retried, failed)",
            delivery_attempts.clone(),
        );
        let rescans = Family::<Labels1, Counter>::default();
        registry.register(
            "bulkhead_rescans",
            "Passes over the stored reports after the advisory database changed, by outcome (done, failed)",
            rescans.clone(),
        );
        let rescanned_images = Family::<Labels1, Counter>::default();
        registry.register(
            "bulkhead_rescanned_images",
            "Stored reports examined by rescans, by result (changed: health or new critical/high findings, unchanged, current: already matched against this database, failed)",
            rescanned_images.clone(),
        );
        let queries = Family::<Labels1, Counter>::default();
        registry.register(
            "bulkhead_queries",
            "Query-language requests (POST /v1/query), by outcome (ok, bad_request, syntax, semantic, limit, row_cap, timeout, error)",
            queries.clone(),
        );
        Metrics {
            registry,
            webhook_events,
            scans,
            scan_duration,
            jobs,
            jobs_ready,
            images,
            deliveries,
            delivery_attempts,
            rescans,
            rescanned_images,
            queries,
        }
    }

    /// One `POST /v1/query` and how it ended.
    pub fn query_outcome(&self, outcome: &'static str) {
        self.queries.get_or_create(&[("outcome", outcome)]).inc();
    }

    /// One attempt to deliver a notification and what came of it.
    pub fn delivery_attempt(&self, result: &'static str) {
        self.delivery_attempts
            .get_or_create(&[("result", result)])
            .inc();
    }

    /// A rescan pass ended.
    pub fn rescan(&self, outcome: &'static str) {
        self.rescans.get_or_create(&[("outcome", outcome)]).inc();
    }

    /// One stored report examined by a rescan.
    pub fn rescanned_image(&self, result: &'static str) {
        self.rescanned_images
            .get_or_create(&[("result", result)])
            .inc();
    }

    /// One webhook event (or a whole envelope, kind `envelope`) and what came of it.
    pub fn webhook_event(&self, kind: &'static str, result: &'static str) {
        self.webhook_events
            .get_or_create(&[("kind", kind), ("result", result)])
            .inc();
    }

    /// A job's end in this process.
    pub fn scan_outcome(&self, outcome: &'static str) {
        self.scans.get_or_create(&[("outcome", outcome)]).inc();
    }

    pub fn scan_duration(&self, d: std::time::Duration) {
        self.scan_duration.observe(d.as_secs_f64());
    }

    /// Update the gauges from the store's counts.
    pub fn set_store_stats(&self, stats: &bulkhead_store::Stats) {
        for (state, n) in &stats.jobs {
            if let Some(s) = known(state, &["queued", "running", "done", "failed"]) {
                self.jobs.get_or_create(&[("state", s)]).set(*n);
            }
        }
        self.jobs_ready.set(stats.jobs_ready);
        for (health, n) in &stats.images {
            // The store's own words (`unknown` included): one definition of image health.
            let words: Vec<&'static str> = bulkhead_store::ImageHealth::ALL
                .iter()
                .map(|h| h.as_str())
                .collect();
            if let Some(h) = known(health, &words) {
                self.images.get_or_create(&[("health", h)]).set(*n);
            }
        }
        for (state, n) in &stats.deliveries {
            if let Some(s) = known(state, &["pending", "delivered", "failed"]) {
                self.deliveries.get_or_create(&[("state", s)]).set(*n);
            }
        }
    }

    /// The OpenMetrics text.
    pub fn render(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

/// The static word equal to `s`, so that label values are a fixed set.
fn known(s: &str, words: &[&'static str]) -> Option<&'static str> {
    words.iter().copied().find(|w| *w == s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_and_gauges_render() {
        let m = Metrics::new();
        m.webhook_event("manifest_push", "enqueued");
        m.webhook_event("manifest_push", "enqueued");
        m.scan_outcome("done");
        m.scan_duration(std::time::Duration::from_secs(3));
        let mut stats = bulkhead_store::Stats::default();
        stats.jobs.insert("queued".into(), 4);
        stats.jobs.insert("bogus".into(), 9);
        stats.jobs_ready = 2;
        m.set_store_stats(&stats);
        let text = m.render().expect("renders");
        assert!(
            text.contains(
                "bulkhead_webhook_events_total{kind=\"manifest_push\",result=\"enqueued\"} 2"
            ),
            "{text}"
        );
        assert!(
            text.contains("bulkhead_scans_total{outcome=\"done\"} 1"),
            "{text}"
        );
        assert!(text.contains("bulkhead_jobs{state=\"queued\"} 4"), "{text}");
        assert!(!text.contains("bogus"), "{text}");
        assert!(text.contains("bulkhead_jobs_ready 2"), "{text}");
        assert!(
            text.contains("bulkhead_scan_duration_seconds_count 1"),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"), "{text}");
    }
}

//! What `sys/metrics` reports, in Prometheus' text format: requests by path
//! family and status, issue / renew / revoke latency histograms, and — read at
//! scrape time from the engine — live and irrevocable leases, log appends and
//! fsyncs. Counters are plain atomics behind one small map lock: a request
//! touches two of them.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use lessor_engine::Engine;
use lessor_engine::state::LeaseStatus;

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS_S: [f64; 12] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0];

/// The operations with a latency histogram.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Timed {
    Issue,
    Renew,
    Revoke,
}

impl Timed {
    fn name(self) -> &'static str {
        match self {
            Timed::Issue => "issue",
            Timed::Renew => "renew",
            Timed::Revoke => "revoke",
        }
    }
}

#[derive(Debug, Default)]
struct Histogram {
    buckets: [AtomicU64; BUCKETS_S.len()],
    count: AtomicU64,
    sum_us: AtomicU64,
}

impl Histogram {
    fn observe(&self, took: Duration) {
        let s = took.as_secs_f64();
        for (bucket, bound) in self.buckets.iter().zip(BUCKETS_S) {
            if s <= bound {
                bucket.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_us.fetch_add(took.as_micros() as u64, Ordering::Relaxed);
    }
}

/// The server's counters.
#[derive(Debug, Default)]
pub(crate) struct Metrics {
    /// (path family, status) → requests.
    requests: Mutex<BTreeMap<(&'static str, u16), u64>>,
    issue: Histogram,
    renew: Histogram,
    revoke: Histogram,
    /// Requests refused because the server was at its concurrency limit.
    shed: AtomicU64,
}

/// The family of a path, a bounded label set (a path with a lease id or a role
/// name would make one series per lease).
pub(crate) fn family(path: &str) -> &'static str {
    let path = path.trim_end_matches('/');
    const FIXED: [&str; 12] = [
        "sys/health",
        "sys/seal-status",
        "sys/leader",
        "sys/init",
        "sys/metrics",
        "sys/leases/renew",
        "sys/leases/lookup",
        "sys/leases/revoke-prefix",
        "sys/leases/revoke-force",
        "sys/leases/revoke",
        "sys/mounts",
        "sys/policies",
    ];
    for fixed in FIXED {
        if path == fixed || path.strip_prefix(fixed).is_some_and(|rest| rest.starts_with('/')) {
            return fixed;
        }
    }
    if path.starts_with("sys/policy") {
        return "sys/policies";
    }
    if path.starts_with("auth/token/") {
        return "auth/token";
    }
    if path.starts_with("sys/") {
        return "sys/other";
    }
    // Under a mount: the segment after it names the path family.
    match path.split('/').nth(1) {
        Some("creds") => "<mount>/creds",
        Some("roles") => "<mount>/roles",
        Some("config") => "<mount>/config",
        Some("rotate-root") => "<mount>/rotate-root",
        Some("reset") => "<mount>/reset",
        _ => "other",
    }
}

impl Metrics {
    pub(crate) fn request(&self, family: &'static str, status: u16) {
        *self.requests.lock().expect("metrics lock").entry((family, status)).or_insert(0) += 1;
    }

    pub(crate) fn timed(&self, what: Timed, took: Duration) {
        match what {
            Timed::Issue => self.issue.observe(took),
            Timed::Renew => self.renew.observe(took),
            Timed::Revoke => self.revoke.observe(took),
        }
    }

    pub(crate) fn shed(&self) {
        self.shed.fetch_add(1, Ordering::Relaxed);
    }

    /// The Prometheus text exposition.
    pub(crate) fn render(&self, engine: Option<&Engine>) -> String {
        let mut out = String::new();
        out.push_str("# HELP lessor_http_requests_total HTTP requests by path family and status.\n");
        out.push_str("# TYPE lessor_http_requests_total counter\n");
        for ((family, status), n) in self.requests.lock().expect("metrics lock").iter() {
            let _ = writeln!(out, "lessor_http_requests_total{{path=\"{family}\",status=\"{status}\"}} {n}");
        }
        out.push_str("# HELP lessor_http_requests_shed_total Requests refused at the concurrency limit (503).\n");
        out.push_str("# TYPE lessor_http_requests_shed_total counter\n");
        let _ = writeln!(out, "lessor_http_requests_shed_total {}", self.shed.load(Ordering::Relaxed));
        out.push_str("# HELP lessor_lease_operation_seconds Latency of issue, renew and revoke requests.\n");
        out.push_str("# TYPE lessor_lease_operation_seconds histogram\n");
        for (what, h) in [(Timed::Issue, &self.issue), (Timed::Renew, &self.renew), (Timed::Revoke, &self.revoke)] {
            let op = what.name();
            for (bucket, bound) in h.buckets.iter().zip(BUCKETS_S) {
                let n = bucket.load(Ordering::Relaxed);
                let _ = writeln!(out, "lessor_lease_operation_seconds_bucket{{operation=\"{op}\",le=\"{bound}\"}} {n}");
            }
            let count = h.count.load(Ordering::Relaxed);
            let _ = writeln!(out, "lessor_lease_operation_seconds_bucket{{operation=\"{op}\",le=\"+Inf\"}} {count}");
            let sum = h.sum_us.load(Ordering::Relaxed) as f64 / 1e6;
            let _ = writeln!(out, "lessor_lease_operation_seconds_sum{{operation=\"{op}\"}} {sum}");
            let _ = writeln!(out, "lessor_lease_operation_seconds_count{{operation=\"{op}\"}} {count}");
        }
        if let Some(engine) = engine {
            let (live, irrevocable) = engine.with_state(|s| {
                let live = s.leases.values().filter(|l| matches!(l.status, LeaseStatus::Active)).count();
                (live, s.leases.values().filter(|l| l.irrevocable).count())
            });
            let stats = engine.log_stats();
            let gauges = [
                ("lessor_leases_live", "gauge", "Leases issued and not yet revoked or expired.", live as u64),
                (
                    "lessor_leases_irrevocable",
                    "gauge",
                    "Leases whose revocation spent its retry budget.",
                    irrevocable as u64,
                ),
                (
                    "lessor_log_events_total",
                    "counter",
                    "Events appended to the log since the engine opened.",
                    stats.events_written.load(Ordering::Relaxed),
                ),
                (
                    "lessor_log_fsyncs_total",
                    "counter",
                    "Batches appended (each one fdatasync) since the engine opened.",
                    stats.batches_synced.load(Ordering::Relaxed),
                ),
                (
                    "lessor_log_bytes_total",
                    "counter",
                    "Bytes appended to the log since the engine opened.",
                    stats.bytes_written.load(Ordering::Relaxed),
                ),
            ];
            for (name, kind, help, value) in gauges {
                let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}");
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_are_bounded() {
        assert_eq!(family("database/creds/app"), "<mount>/creds");
        assert_eq!(family("sys/leases/revoke/database/creds/app/x"), "sys/leases/revoke");
        assert_eq!(family("sys/leases/revoke-prefix/database"), "sys/leases/revoke-prefix");
        assert_eq!(family("sys/policy/p"), "sys/policies");
        assert_eq!(family("auth/token/lookup-self"), "auth/token");
        assert_eq!(family("sys/anything"), "sys/other");
    }

    #[test]
    fn histogram_renders() {
        let m = Metrics::default();
        m.timed(Timed::Issue, Duration::from_millis(3));
        m.request("sys/health", 200);
        let text = m.render(None);
        assert!(text.contains("lessor_lease_operation_seconds_bucket{operation=\"issue\",le=\"0.005\"} 1"));
        assert!(text.contains("lessor_lease_operation_seconds_bucket{operation=\"issue\",le=\"0.0025\"} 0"));
        assert!(text.contains("lessor_http_requests_total{path=\"sys/health\",status=\"200\"} 1"));
    }
}

//! `/metrics` in the Prometheus text format: HTTP requests by method and status with a latency
//! histogram, commits by repository kind, rounds, and apps by status. Small enough to write by hand.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::Ordering;
use std::sync::Mutex;
use std::time::Duration;

use crate::reconcile::Reconciler;

const BUCKETS: [f64; 10] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0];

#[derive(Default)]
pub struct HttpMetrics {
    inner: Mutex<Counts>,
}

#[derive(Default)]
struct Counts {
    requests: BTreeMap<(String, u16), u64>,
    buckets: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

impl HttpMetrics {
    pub fn observe(&self, method: &str, status: u16, took: Duration) {
        let mut c = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        *c.requests.entry((method.to_owned(), status)).or_default() += 1;
        let secs = took.as_secs_f64();
        for (i, le) in BUCKETS.iter().enumerate() {
            if secs <= *le {
                c.buckets[i] += 1;
            }
        }
        c.count += 1;
        c.sum += secs;
    }
}

pub fn render(http: &HttpMetrics, r: &Reconciler, refused: u64) -> String {
    let mut out = String::new();
    out.push_str(
        "# HELP sealwright_auth_refused_total Requests refused for a bad or unknown token.\n",
    );
    out.push_str("# TYPE sealwright_auth_refused_total counter\n");
    let _ = writeln!(out, "sealwright_auth_refused_total {refused}");
    {
        let c = http.inner.lock().unwrap_or_else(|p| p.into_inner());
        out.push_str("# HELP sealwright_http_requests_total HTTP requests served.\n");
        out.push_str("# TYPE sealwright_http_requests_total counter\n");
        for ((method, status), n) in &c.requests {
            let _ = writeln!(
                out,
                "sealwright_http_requests_total{{method=\"{method}\",code=\"{status}\"}} {n}"
            );
        }
        out.push_str("# HELP sealwright_http_request_duration_seconds Time to answer a request.\n");
        out.push_str("# TYPE sealwright_http_request_duration_seconds histogram\n");
        for (i, le) in BUCKETS.iter().enumerate() {
            let _ = writeln!(
                out,
                "sealwright_http_request_duration_seconds_bucket{{le=\"{le}\"}} {}",
                c.buckets[i]
            );
        }
        let _ = writeln!(
            out,
            "sealwright_http_request_duration_seconds_bucket{{le=\"+Inf\"}} {}",
            c.count
        );
        let _ = writeln!(
            out,
            "sealwright_http_request_duration_seconds_sum {}",
            c.sum
        );
        let _ = writeln!(
            out,
            "sealwright_http_request_duration_seconds_count {}",
            c.count
        );
    }
    let m = r.metrics();
    out.push_str("# HELP sealwright_commits_total Commits pushed, by repository kind.\n");
    out.push_str("# TYPE sealwright_commits_total counter\n");
    for (kind, n) in [
        ("platform", &m.commits_platform),
        ("flux", &m.commits_flux),
        ("state", &m.commits_state),
    ] {
        let _ = writeln!(
            out,
            "sealwright_commits_total{{repo=\"{kind}\"}} {}",
            n.load(Ordering::Relaxed)
        );
    }
    for (name, help, v) in [
        (
            "sealwright_rounds_total",
            "Full reconcile rounds.",
            &m.rounds,
        ),
        (
            "sealwright_app_failures_total",
            "App rounds that failed.",
            &m.round_failures,
        ),
        (
            "sealwright_write_ops_total",
            "Secret operations committed in group commits.",
            &m.writes_batched,
        ),
        (
            "sealwright_drift_detected_total",
            "Platform rounds that found files of sealwright's changed behind its back.",
            &m.drift_detected,
        ),
    ] {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
            v.load(Ordering::Relaxed)
        );
    }
    let mut by_status: BTreeMap<&str, usize> =
        BTreeMap::from([("ready", 0), ("failed", 0), ("provisioning", 0)]);
    for a in r.list_apps() {
        *by_status.entry(a.status()).or_default() += 1;
    }
    out.push_str(
        "# HELP sealwright_apps Registered apps by status.\n# TYPE sealwright_apps gauge\n",
    );
    for (status, n) in by_status {
        let _ = writeln!(out, "sealwright_apps{{status=\"{status}\"}} {n}");
    }
    out
}

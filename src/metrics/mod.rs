//! Prometheus text exposition (format 0.0.4), written by hand: a dozen
//! families of counters, gauges and histograms do not need a crate.
//!
//! Counters here live in memory (they restart at 0, as Prometheus
//! expects); callback totals come from the book's durable stats.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Mutex;

/// Upper bounds of the API latency histogram, seconds.
const LATENCY_BUCKETS: &[f64] = &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5];
/// Upper bounds of the fire-lateness histogram (due time to hand-over), seconds.
const LATENESS_BUCKETS: &[f64] = &[0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0];

#[derive(Debug, Clone)]
struct Histogram {
    bounds: &'static [f64],
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Self {
        Self { bounds, counts: vec![0; bounds.len()], sum: 0.0, count: 0 }
    }

    fn observe(&mut self, v: f64) {
        if let Some(i) = self.bounds.iter().position(|b| v <= *b) {
            self.counts[i] += 1;
        }
        self.sum += v;
        self.count += 1;
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        let mut cum = 0;
        for (b, c) in self.bounds.iter().zip(&self.counts) {
            cum += c;
            let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{b}\"}} {cum}");
        }
        let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {}", self.count);
        let _ = writeln!(out, "{name}_sum{{{labels}}} {}", self.sum);
        let _ = writeln!(out, "{name}_count{{{labels}}} {}", self.count);
    }
}

/// The standard methods as static labels (no allocation per request; any
/// other method is `other`, which also bounds label cardinality).
fn method_name(m: &str) -> &'static str {
    ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"].into_iter().find(|s| *s == m).unwrap_or("other")
}

/// Counters fed by the API, the scheduler's hand-over and (once wired) the
/// SIP stack and the dialler. Shared behind an `Arc`.
#[derive(Debug)]
pub struct Metrics {
    http: Mutex<BTreeMap<(&'static str, &'static str, u16), u64>>,
    http_latency: Mutex<BTreeMap<&'static str, Histogram>>,
    lateness: Mutex<Histogram>,
    attempts_ended: Mutex<BTreeMap<&'static str, u64>>,
    calls_active: AtomicI64,
    /// The SIP endpoint's transaction counters, once the endpoint runs.
    sip: std::sync::OnceLock<std::sync::Arc<crate::sip::stats::SipStats>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            http: Mutex::default(),
            http_latency: Mutex::default(),
            lateness: Mutex::new(Histogram::new(LATENESS_BUCKETS)),
            attempts_ended: Mutex::default(),
            calls_active: AtomicI64::new(0),
            sip: std::sync::OnceLock::new(),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Label values are escaped per the exposition format.
fn esc(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

impl Metrics {
    /// One API request: `route` is the matched route template.
    pub fn http_request(&self, route: &'static str, method: &str, status: u16, seconds: f64) {
        *lock(&self.http).entry((route, method_name(method), status)).or_default() += 1;
        lock(&self.http_latency).entry(route).or_insert_with(|| Histogram::new(LATENCY_BUCKETS)).observe(seconds);
    }

    /// A callback was handed to the dialler `late_ms` after its due time.
    pub fn fired(&self, late_ms: i64) {
        lock(&self.lateness).observe(late_ms.max(0) as f64 / 1000.0);
    }

    /// An attempt ended with `outcome` (the dialler).
    pub fn attempt_ended(&self, outcome: &'static str) {
        *lock(&self.attempts_ended).entry(outcome).or_default() += 1;
    }

    /// A call started (+1) or ended (−1) (the dialler).
    pub fn calls_active_add(&self, delta: i64) {
        self.calls_active.fetch_add(delta, Ordering::Relaxed);
    }

    /// Renders the SIP endpoint's transaction counters with the rest.
    pub fn set_sip_stats(&self, stats: std::sync::Arc<crate::sip::stats::SipStats>) {
        let _ = self.sip.set(stats);
    }

    /// Appends the families this struct owns.
    pub fn render_own(&self, out: &mut String) {
        family(out, "redial_http_requests_total", "counter", "API requests by route, method and status.");
        for ((route, method, status), n) in lock(&self.http).iter() {
            let _ = writeln!(out, "redial_http_requests_total{{route=\"{}\",method=\"{method}\",status=\"{status}\"}} {n}", esc(route));
        }
        family(out, "redial_http_request_duration_seconds", "histogram", "API request latency by route.");
        for (route, h) in lock(&self.http_latency).iter() {
            h.render(out, "redial_http_request_duration_seconds", &format!("route=\"{}\"", esc(route)));
        }
        // One snapshot for both, so a scrape never sees them disagree.
        let lateness = lock(&self.lateness).clone();
        family(out, "redial_fire_lateness_seconds", "histogram", "Time from a callback's due time to its hand-over to the dialler.");
        lateness.render(out, "redial_fire_lateness_seconds", "");
        family(out, "redial_attempts_started_total", "counter", "Attempts handed to the dialler since start.");
        let _ = writeln!(out, "redial_attempts_started_total {}", lateness.count);
        family(out, "redial_attempts_total", "counter", "Finished attempts by outcome since start.");
        for (o, n) in lock(&self.attempts_ended).iter() {
            let _ = writeln!(out, "redial_attempts_total{{outcome=\"{o}\"}} {n}");
        }
        family(out, "redial_calls_active", "gauge", "Calls in progress.");
        let _ = writeln!(out, "redial_calls_active {}", self.calls_active.load(Ordering::Relaxed));
        if let Some(sip) = self.sip.get() {
            sip.render_prometheus(out);
        }
    }
}

/// Writes the `# HELP` and `# TYPE` lines of a family.
pub fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// Escapes a label value.
pub fn label(s: &str) -> String {
    esc(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_is_cumulative_and_counters_render() {
        let m = Metrics::default();
        m.http_request("/v1/callbacks", "POST", 201, 0.003);
        m.http_request("/v1/callbacks", "POST", 201, 0.3);
        m.fired(1500);
        m.attempt_ended("no_answer");
        let mut out = String::new();
        m.render_own(&mut out);
        assert!(out.contains("redial_http_requests_total{route=\"/v1/callbacks\",method=\"POST\",status=\"201\"} 2"), "{out}");
        assert!(out.contains("redial_http_request_duration_seconds_bucket{route=\"/v1/callbacks\",le=\"0.005\"} 1"));
        assert!(out.contains("redial_http_request_duration_seconds_bucket{route=\"/v1/callbacks\",le=\"0.5\"} 2"));
        assert!(out.contains("redial_http_request_duration_seconds_bucket{route=\"/v1/callbacks\",le=\"+Inf\"} 2"));
        assert!(out.contains("redial_fire_lateness_seconds_bucket{le=\"1\"} 0"));
        assert!(out.contains("redial_fire_lateness_seconds_bucket{le=\"2\"} 1"));
        assert!(out.contains("redial_attempts_total{outcome=\"no_answer\"} 1"));
    }
}

//! SIP transaction counters: client and server transactions by method and by how
//! they ended (final response class, timeout, transport error), for `/metrics`.
//!
//! Atomics, so the endpoint task counts without locks and the HTTP task reads any time.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::sip::transaction::Role;

/// Methods with their own counters; anything else counts as `OTHER`.
const METHODS: [&str; 10] = ["INVITE", "ACK", "BYE", "CANCEL", "REGISTER", "OPTIONS", "INFO", "UPDATE", "PRACK", "OTHER"];
/// How a transaction ended (or, for `1xx`, provisional responses seen).
const CLASSES: [&str; 8] = ["1xx", "2xx", "3xx", "4xx", "5xx", "6xx", "timeout", "transport_error"];
const ROLES: [&str; 2] = ["client", "server"];

/// What to count for one transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A response with this status code (its class is counted).
    Status(u16),
    Timeout,
    TransportError,
}

/// What the agents' registrar guard counts (`redial_sip_auth_total{event=...}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthCounter {
    /// A wrong password or unknown user.
    Failure,
    /// A failure whose answer was held.
    Delayed,
    /// A failure that started a block.
    Blocked,
    /// A request dropped because its source or account was blocked.
    Dropped,
    /// A request dropped because its User-Agent names a known scanner.
    Scanner,
}

const AUTH_EVENTS: [&str; 5] = ["failure", "delayed", "blocked", "dropped", "scanner"];

/// Transaction counters by role × method × class, and the registrar guard's counters.
#[derive(Debug)]
pub struct SipStats {
    counts: [[[AtomicU64; CLASSES.len()]; METHODS.len()]; ROLES.len()],
    auth: [AtomicU64; AUTH_EVENTS.len()],
    /// New INVITEs and REGISTERs answered 503 for overload.
    overload_refused: AtomicU64,
    /// 1 while the endpoint refuses new work.
    overloaded: std::sync::atomic::AtomicBool,
}

impl Default for SipStats {
    fn default() -> Self {
        Self {
            counts: std::array::from_fn(|_| std::array::from_fn(|_| std::array::from_fn(|_| AtomicU64::new(0)))),
            auth: std::array::from_fn(|_| AtomicU64::new(0)),
            overload_refused: AtomicU64::new(0),
            overloaded: std::sync::atomic::AtomicBool::new(false),
        }
    }
}

fn method_index(method: &rsip::Method) -> usize {
    let name = method.to_string();
    METHODS.iter().position(|m| *m == name).unwrap_or(METHODS.len() - 1)
}

fn class_index(outcome: Outcome) -> Option<usize> {
    match outcome {
        Outcome::Status(s @ 100..=699) => Some(usize::from(s / 100) - 1),
        Outcome::Status(_) => None,
        Outcome::Timeout => Some(6),
        Outcome::TransportError => Some(7),
    }
}

impl SipStats {
    pub fn new() -> Self {
        Self::default()
    }

    /// Counts one transaction outcome (a final response, a timeout, a transport error).
    /// Statuses outside 100–699 are not counted.
    pub fn record(&self, role: Role, method: &rsip::Method, outcome: Outcome) {
        let Some(c) = class_index(outcome) else { return };
        let r = match role {
            Role::Client => 0,
            Role::Server => 1,
        };
        self.counts[r][method_index(method)][c].fetch_add(1, Ordering::Relaxed);
    }

    /// Counts one guard event.
    pub fn auth(&self, what: AuthCounter) {
        self.auth[what as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// The current count of one guard event.
    pub fn auth_count(&self, what: AuthCounter) -> u64 {
        self.auth[what as usize].load(Ordering::Relaxed)
    }

    /// The current count for one label set (`method` as in the metric, e.g. "INVITE").
    pub fn get(&self, role: Role, method: &str, class: &str) -> u64 {
        let r = match role {
            Role::Client => 0,
            Role::Server => 1,
        };
        let (Some(m), Some(c)) = (METHODS.iter().position(|x| *x == method), CLASSES.iter().position(|x| *x == class))
        else {
            return 0;
        };
        self.counts[r][m][c].load(Ordering::Relaxed)
    }

    /// One new INVITE or REGISTER refused with 503 for overload.
    pub fn overload_refused(&self) {
        self.overload_refused.fetch_add(1, Ordering::Relaxed);
    }

    pub fn set_overloaded(&self, on: bool) {
        self.overloaded.store(on, Ordering::Relaxed);
    }

    /// Appends `redial_sip_transactions_total` in the Prometheus text format: `# HELP` and
    /// `# TYPE` once, then one line per non-zero label set.
    pub fn render_prometheus(&self, out: &mut String) {
        out.push_str("# HELP redial_sip_transactions_total SIP transactions by method, role and final response class.\n");
        out.push_str("# TYPE redial_sip_transactions_total counter\n");
        for (r, role) in ROLES.iter().enumerate() {
            for (m, method) in METHODS.iter().enumerate() {
                for (c, class) in CLASSES.iter().enumerate() {
                    let n = self.counts[r][m][c].load(Ordering::Relaxed);
                    if n > 0 {
                        let _ = writeln!(
                            out,
                            "redial_sip_transactions_total{{method=\"{method}\",role=\"{role}\",class=\"{class}\"}} {n}"
                        );
                    }
                }
            }
        }
        out.push_str("# HELP redial_sip_auth_total Agents' digest failures and what the guard did (held, blocked, dropped; scanners dropped).\n");
        out.push_str("# TYPE redial_sip_auth_total counter\n");
        for (i, event) in AUTH_EVENTS.iter().enumerate() {
            let _ = writeln!(out, "redial_sip_auth_total{{event=\"{event}\"}} {}", self.auth[i].load(Ordering::Relaxed));
        }
        out.push_str("# HELP redial_sip_overload_refused_total New INVITEs and REGISTERs answered 503 because the endpoint was overloaded.\n");
        out.push_str("# TYPE redial_sip_overload_refused_total counter\n");
        let _ = writeln!(out, "redial_sip_overload_refused_total {}", self.overload_refused.load(Ordering::Relaxed));
        out.push_str("# HELP redial_sip_overloaded 1 while new INVITEs and REGISTERs are refused.\n");
        out.push_str("# TYPE redial_sip_overloaded gauge\n");
        let _ = writeln!(out, "redial_sip_overloaded {}", u8::from(self.overloaded.load(Ordering::Relaxed)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_renders() {
        let s = SipStats::new();
        s.record(Role::Client, &rsip::Method::Invite, Outcome::Status(200));
        s.record(Role::Client, &rsip::Method::Invite, Outcome::Status(200));
        s.record(Role::Server, &rsip::Method::Bye, Outcome::Status(481));
        s.record(Role::Client, &rsip::Method::Options, Outcome::Timeout);
        s.record(Role::Client, &rsip::Method::Message, Outcome::TransportError);
        s.record(Role::Client, &rsip::Method::Invite, Outcome::Status(42));
        assert_eq!(s.get(Role::Client, "INVITE", "2xx"), 2);
        assert_eq!(s.get(Role::Client, "OTHER", "transport_error"), 1);
        let mut out = String::new();
        s.render_prometheus(&mut out);
        assert_eq!(out.matches("# TYPE").count(), 4);
        assert!(out.contains("redial_sip_transactions_total{method=\"INVITE\",role=\"client\",class=\"2xx\"} 2\n"), "{out}");
        assert!(out.contains("{method=\"BYE\",role=\"server\",class=\"4xx\"} 1\n"), "{out}");
        assert!(out.contains("{method=\"OPTIONS\",role=\"client\",class=\"timeout\"} 1\n"), "{out}");
        assert_eq!(out.lines().count(), 2 + 4 + 2 + AUTH_EVENTS.len() + 6, "{out}");
        s.auth(AuthCounter::Blocked);
        assert_eq!(s.auth_count(AuthCounter::Blocked), 1);
        let mut out = String::new();
        s.render_prometheus(&mut out);
        assert!(out.contains("redial_sip_auth_total{event=\"blocked\"} 1\n"), "{out}");
    }
}

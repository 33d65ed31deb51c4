//! Console sessions (server-side, with idle expiry), their CSRF tokens, and
//! the login throttle (per source address and per account).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rand::RngCore;
use subtle::ConstantTimeEq;

use crate::ops::Actor;

/// The session cookie's name.
pub const COOKIE: &str = "redial_session";
/// A session ends after this long without a request.
pub const IDLE: Duration = Duration::from_secs(8 * 3600);
/// Failed logins allowed per account, and per source address, in [`WINDOW`].
pub const MAX_FAILS_ACCOUNT: u32 = 5;
pub const MAX_FAILS_SOURCE: u32 = 20;
pub const WINDOW: Duration = Duration::from_secs(300);

/// A note shown once on the next page (the result of the last action).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flash {
    pub ok: bool,
    pub message: String,
    /// The form field the error is about, shown next to it.
    pub field: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Session {
    pub actor: Actor,
    pub csrf: String,
    pub expires: Instant,
    pub flash: Option<Flash>,
}

fn random_hex(n: usize) -> String {
    let mut b = vec![0u8; n];
    rand::rng().fill_bytes(&mut b);
    hex::encode(b)
}

/// Sessions and the login throttle.
#[derive(Debug, Default)]
pub struct ConsoleState {
    sessions: Mutex<HashMap<String, Session>>,
    fails: Mutex<HashMap<String, (u32, Instant)>>,
    /// What the charts draw, counted from the event bus.
    pub charts: std::sync::Arc<super::charts::Charts>,
    /// Where the workspace's softphone registers: the SIP-over-WebSocket listener's
    /// URL, known once the SIP endpoint is bound (none without `sip.ws_listen`).
    softphone_ws: std::sync::OnceLock<String>,
}

impl ConsoleState {
    /// The state of a console started at `now` (clock milliseconds).
    pub fn new(now: crate::clock::Millis) -> Self {
        Self { charts: std::sync::Arc::new(super::charts::Charts::new(now)), ..Default::default() }
    }

    /// Tells the softphone where SIP over WebSocket listens (`ws://` or `wss://` URL).
    pub fn set_softphone_ws(&self, url: String) {
        let _ = self.softphone_ws.set(url);
    }

    pub fn softphone_ws(&self) -> Option<&str> {
        self.softphone_ws.get().map(String::as_str)
    }

    /// Starts a session for `actor`; returns its id (the cookie value).
    pub fn open(&self, actor: Actor, now: Instant) -> String {
        let id = random_hex(32);
        let s = Session { actor, csrf: random_hex(24), expires: now + IDLE, flash: None };
        let mut m = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        m.retain(|_, s| s.expires > now);
        m.insert(id.clone(), s);
        id
    }

    /// The live session `id`, its expiry pushed back, and its flash taken.
    pub fn touch(&self, id: &str, now: Instant) -> Option<Session> {
        let mut m = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        let s = m.get_mut(id)?;
        if s.expires <= now {
            m.remove(id);
            return None;
        }
        s.expires = now + IDLE;
        let out = s.clone();
        s.flash = None;
        Some(out)
    }

    pub fn flash(&self, id: &str, f: Flash) {
        if let Some(s) = self.sessions.lock().unwrap_or_else(|e| e.into_inner()).get_mut(id) {
            s.flash = Some(f);
        }
    }

    pub fn close(&self, id: &str) {
        self.sessions.lock().unwrap_or_else(|e| e.into_inner()).remove(id);
    }

    /// Whether a login for `account` from `source` may be tried now.
    pub fn may_try(&self, source: Option<IpAddr>, account: &str, now: Instant) -> bool {
        let m = self.fails.lock().unwrap_or_else(|e| e.into_inner());
        let over = |k: String, max: u32| m.get(&k).is_some_and(|(n, since)| now.duration_since(*since) < WINDOW && *n >= max);
        !(over(format!("a:{account}"), MAX_FAILS_ACCOUNT) || source.is_some_and(|ip| over(format!("s:{ip}"), MAX_FAILS_SOURCE)))
    }

    pub fn failed(&self, source: Option<IpAddr>, account: &str, now: Instant) {
        let mut m = self.fails.lock().unwrap_or_else(|e| e.into_inner());
        m.retain(|_, (_, since)| now.duration_since(*since) < WINDOW);
        let mut bump = |k: String| {
            let e = m.entry(k).or_insert((0, now));
            e.0 += 1;
        };
        bump(format!("a:{account}"));
        if let Some(ip) = source {
            bump(format!("s:{ip}"));
        }
    }

    /// Whether an API bearer token from `source` may be tried now: wrong tokens are
    /// throttled per source like console sign-ins (`MAX_FAILS_SOURCE` in `WINDOW`).
    pub fn may_try_token(&self, source: IpAddr, now: Instant) -> bool {
        let m = self.fails.lock().unwrap_or_else(|e| e.into_inner());
        !m.get(&format!("t:{source}")).is_some_and(|(n, since)| now.duration_since(*since) < WINDOW && *n >= MAX_FAILS_SOURCE)
    }

    /// Counts a wrong API token from `source`.
    pub fn token_failed(&self, source: IpAddr, now: Instant) {
        let mut m = self.fails.lock().unwrap_or_else(|e| e.into_inner());
        m.retain(|_, (_, since)| now.duration_since(*since) < WINDOW);
        m.entry(format!("t:{source}")).or_insert((0, now)).0 += 1;
    }

    pub fn succeeded(&self, account: &str) {
        self.fails.lock().unwrap_or_else(|e| e.into_inner()).remove(&format!("a:{account}"));
    }
}

/// Compares a submitted CSRF token with the session's in constant time.
pub fn csrf_ok(session: &Session, submitted: Option<&str>) -> bool {
    submitted.is_some_and(|s| s.len() == session.csrf.len() && bool::from(s.as_bytes().ct_eq(session.csrf.as_bytes())))
}

/// The session id in a `Cookie` header.
pub fn cookie_value(header: &str) -> Option<&str> {
    header.split(';').map(str::trim).find_map(|kv| kv.strip_prefix(COOKIE).and_then(|r| r.strip_prefix('=')))
}

/// The `Set-Cookie` value for a new session (`Secure` when served over TLS).
pub fn set_cookie(id: &str, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!("{COOKIE}={id}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{secure}", IDLE.as_secs())
}

pub fn clear_cookie() -> String {
    format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agent() -> Actor {
        Actor::Agent { id: "alice".into(), queues: vec!["support".into()] }
    }

    #[test]
    fn sessions_expire_when_idle_and_flash_shows_once() {
        let st = ConsoleState::default();
        let t0 = Instant::now();
        let id = st.open(agent(), t0);
        st.flash(&id, Flash { ok: true, message: "done".into(), field: None });
        assert_eq!(st.touch(&id, t0).unwrap().flash.unwrap().message, "done");
        assert!(st.touch(&id, t0).unwrap().flash.is_none());
        let later = t0 + IDLE - Duration::from_secs(1);
        assert!(st.touch(&id, later).is_some(), "a request pushes the expiry back");
        assert!(st.touch(&id, later + IDLE).is_none());
        assert!(st.touch("nope", t0).is_none());
    }

    #[test]
    fn csrf_and_cookies() {
        let st = ConsoleState::default();
        let id = st.open(agent(), Instant::now());
        let s = st.touch(&id, Instant::now()).unwrap();
        assert!(csrf_ok(&s, Some(&s.csrf)));
        assert!(!csrf_ok(&s, Some("x")));
        assert!(!csrf_ok(&s, None));
        let c = set_cookie(&id, false);
        assert!(c.contains("HttpOnly") && c.contains("SameSite=Strict") && !c.contains("Secure"));
        assert!(set_cookie(&id, true).ends_with("; Secure"));
        assert_eq!(cookie_value(&format!("a=b; {COOKIE}={id}; c=d")), Some(id.as_str()));
    }

    #[test]
    fn wrong_api_tokens_are_throttled_per_source() {
        let st = ConsoleState::default();
        let (a, b): (IpAddr, IpAddr) = ("192.0.2.1".parse().unwrap(), "192.0.2.2".parse().unwrap());
        let t0 = Instant::now();
        for _ in 0..MAX_FAILS_SOURCE {
            assert!(st.may_try_token(a, t0));
            st.token_failed(a, t0);
        }
        assert!(!st.may_try_token(a, t0), "blocked after the limit");
        assert!(st.may_try_token(b, t0), "another source is not");
        assert!(st.may_try_token(a, t0 + WINDOW), "the block ends with the window");
    }

    #[test]
    fn logins_are_throttled_per_account_and_per_source() {
        let st = ConsoleState::default();
        let t0 = Instant::now();
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        for _ in 0..MAX_FAILS_ACCOUNT {
            assert!(st.may_try(Some(ip), "alice", t0));
            st.failed(Some(ip), "alice", t0);
        }
        assert!(!st.may_try(Some(ip), "alice", t0));
        assert!(st.may_try(Some(ip), "bob", t0), "another account from the same source still may");
        assert!(st.may_try(Some(ip), "alice", t0 + WINDOW), "the window passes");
        for i in 0..MAX_FAILS_SOURCE {
            st.failed(Some(ip), &format!("u{i}"), t0);
        }
        assert!(!st.may_try(Some(ip), "carol", t0), "too many failures from one source");
        assert!(st.may_try(Some("127.0.0.2".parse().unwrap()), "carol", t0));
    }
}

//! Bearer tokens, scopes, the first-start admin token and the per-token
//! rate limit.
//!
//! Secrets are never kept: a presented token is hashed with SHA-256 and the
//! hash compared in constant time (`subtle`) with every known hash, so
//! timing reveals neither which token nor how much of it matched.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use axum::http::{Method, StatusCode};
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::error::ApiError;
use crate::config::{Config, Scope, Token};

/// The file next to the database that keeps the generated admin token's hash.
pub const ADMIN_TOKEN_FILE: &str = "admin-token.sha256";

/// Why the admin token could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum AdminTokenError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path} does not hold a SHA-256 in hex")]
    Malformed { path: PathBuf },
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
}

/// The tokens the API accepts: the configured ones, or the generated admin
/// token when none is configured. Clones share one set, which a configuration
/// reload replaces whole ([`Tokens::replace`]).
#[derive(Debug, Clone)]
pub struct Tokens(Arc<RwLock<Vec<Token>>>);

impl Tokens {
    pub fn new(tokens: Vec<Token>) -> Self {
        Self(Arc::new(RwLock::new(tokens)))
    }

    /// From now on, accepts `new`'s tokens instead (requests being served keep the answer they got).
    pub fn replace(&self, new: Tokens) {
        let tokens = new.read().clone();
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = tokens;
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Vec<Token>> {
        self.0.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Configured tokens; with none, the admin token whose hash lives next
    /// to the database, generated (and printed once on stdout) at first start.
    pub fn load(cfg: &Config) -> Result<Self, AdminTokenError> {
        if !cfg.tokens.is_empty() {
            return Ok(Self::new(cfg.tokens.clone()));
        }
        let dir = cfg.storage_path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        let path = dir.join(ADMIN_TOKEN_FILE);
        let sha256 = match std::fs::read_to_string(&path) {
            Ok(s) => {
                let mut h = [0u8; 32];
                hex::decode_to_slice(s.trim(), &mut h).map_err(|_| AdminTokenError::Malformed { path: path.clone() })?;
                h
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut raw = [0u8; 24];
                rand::rng().fill_bytes(&mut raw);
                let secret = format!("rdl_{}", hex::encode(raw));
                let h: [u8; 32] = Sha256::digest(secret.as_bytes()).into();
                write_private(&path, hex::encode(h).as_bytes()).map_err(|source| AdminTokenError::Write { path: path.clone(), source })?;
                // Printed once: only the hash is kept.
                let mut out = std::io::stdout().lock();
                let _ = writeln!(out, "admin token: {secret}");
                let _ = out.flush();
                tracing::warn!(file = %path.display(), "no [[tokens]] configured: generated an admin token (printed once on stdout)");
                h
            }
            Err(source) => return Err(AdminTokenError::Read { path, source }),
        };
        Ok(Self::new(vec![Token { name: "admin".into(), sha256, scopes: vec![Scope::Admin] }]))
    }

    /// The scopes of the token named `name` (none when unknown).
    pub fn scopes_of(&self, name: &str) -> Vec<Scope> {
        self.read().iter().find(|t| t.name == name).map(|t| t.scopes.clone()).unwrap_or_default()
    }

    /// The token a bearer secret belongs to. Every hash is compared, so the
    /// time taken does not depend on which one matched.
    pub fn authenticate(&self, secret: &str) -> Option<Token> {
        let h: [u8; 32] = Sha256::digest(secret.as_bytes()).into();
        let mut found = None;
        for t in self.read().iter() {
            if bool::from(t.sha256.ct_eq(&h)) {
                found = Some(t.clone());
            }
        }
        found
    }
}

fn write_private(path: &Path, data: &[u8]) -> std::io::Result<()> {
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d)?;
    }
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    let mut f = o.open(path)?;
    f.write_all(data)?;
    f.write_all(b"\n")?;
    f.sync_all()
}

/// The scope a request needs: GETs under `/v1` need `callbacks:read`,
/// changes `callbacks:write`, agent state and `/v1/admin` need `admin`;
/// `None` = no token needed.
pub fn required_scope(method: &Method, path: &str) -> Option<Scope> {
    if !path.starts_with("/v1/") && path != "/v1" {
        return None; // /healthz, /metrics
    }
    if path == "/v1/cluster" {
        Some(Scope::Admin)
    } else if method == Method::GET || method == Method::HEAD {
        Some(Scope::CallbacksRead)
    } else if (method == Method::PUT && path.starts_with("/v1/agents/")) || path.starts_with("/v1/admin/") {
        Some(Scope::Admin)
    } else {
        Some(Scope::CallbacksWrite)
    }
}

/// `admin` implies every scope.
pub fn has_scope(token: &Token, need: Scope) -> bool {
    token.scopes.iter().any(|s| *s == need || *s == Scope::Admin)
}

fn scope_name(s: Scope) -> &'static str {
    match s {
        Scope::CallbacksRead => "callbacks:read",
        Scope::CallbacksWrite => "callbacks:write",
        Scope::Admin => "admin",
    }
}

/// Checks the `Authorization` header; returns the token's name.
pub fn check(tokens: &Tokens, header: Option<&str>, need: Scope) -> Result<String, ApiError> {
    let unauthorized = |m: &str| ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", m);
    let h = header.ok_or_else(|| unauthorized("missing `Authorization: Bearer <token>`"))?;
    let secret = h
        .strip_prefix("Bearer ")
        .or_else(|| h.strip_prefix("bearer "))
        .map(str::trim)
        .ok_or_else(|| unauthorized("the Authorization header must be `Bearer <token>`"))?;
    let t = tokens.authenticate(secret).ok_or_else(|| unauthorized("unknown token"))?;
    if !has_scope(&t, need) {
        return Err(ApiError::new(StatusCode::FORBIDDEN, "forbidden", format!("token `{}` lacks the `{}` scope", t.name, scope_name(need))));
    }
    Ok(t.name)
}

/// Per-token token buckets.
#[derive(Debug)]
pub struct RateLimiter {
    rate: f64,
    burst: f64,
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
}

/// Defaults: generous enough for any CRM, low enough to stop a runaway loop.
pub const DEFAULT_RATE: f64 = 1000.0;
pub const DEFAULT_BURST: f64 = 2000.0;

impl RateLimiter {
    /// `rate` requests per second, bursts up to `burst`; `rate` ≤ 0 disables.
    pub fn new(rate: f64, burst: f64) -> Self {
        Self { rate, burst: burst.max(1.0), buckets: Mutex::new(HashMap::new()) }
    }

    /// From `REDIAL_API_RATE` and `REDIAL_API_BURST`, else the defaults.
    pub fn from_env() -> Self {
        let get = |k: &str, d: f64| std::env::var(k).ok().and_then(|v| v.parse().ok()).unwrap_or(d);
        Self::new(get("REDIAL_API_RATE", DEFAULT_RATE), get("REDIAL_API_BURST", DEFAULT_BURST))
    }

    /// Takes one token from `who`'s bucket, or says how many whole seconds
    /// to wait (the `Retry-After`).
    pub fn take(&self, who: &str, now: Instant) -> Result<(), u64> {
        if self.rate <= 0.0 {
            return Ok(());
        }
        let mut b = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if !b.contains_key(who) {
            b.insert(who.to_string(), (self.burst, now));
        }
        let Some((tokens, last)) = b.get_mut(who) else { return Ok(()) };
        *tokens = (*tokens + now.saturating_duration_since(*last).as_secs_f64() * self.rate).min(self.burst);
        *last = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err(((1.0 - *tokens) / self.rate).ceil().max(1.0) as u64)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn token(name: &str, secret: &str, scopes: Vec<Scope>) -> Token {
        Token { name: name.into(), sha256: Sha256::digest(secret.as_bytes()).into(), scopes }
    }

    #[test]
    fn scopes_and_tokens() {
        let t = Tokens::new(vec![token("crm", "s3cret-crm", vec![Scope::CallbacksRead]), token("boss", "s3cret-boss", vec![Scope::Admin])]);
        assert_eq!(check(&t, Some("Bearer s3cret-crm"), Scope::CallbacksRead).unwrap(), "crm");
        assert_eq!(check(&t, Some("Bearer s3cret-crm"), Scope::CallbacksWrite).unwrap_err().status, StatusCode::FORBIDDEN);
        assert_eq!(check(&t, Some("Bearer nope"), Scope::CallbacksRead).unwrap_err().status, StatusCode::UNAUTHORIZED);
        assert_eq!(check(&t, None, Scope::CallbacksRead).unwrap_err().status, StatusCode::UNAUTHORIZED);
        assert_eq!(check(&t, Some("Basic eA=="), Scope::CallbacksRead).unwrap_err().status, StatusCode::UNAUTHORIZED);
        assert_eq!(check(&t, Some("Bearer s3cret-boss"), Scope::Admin).unwrap(), "boss");
        assert_eq!(required_scope(&Method::GET, "/healthz"), None);
        assert_eq!(required_scope(&Method::PUT, "/v1/agents/a/state"), Some(Scope::Admin));
        assert_eq!(required_scope(&Method::POST, "/v1/admin/backup"), Some(Scope::Admin));
        assert_eq!(required_scope(&Method::PATCH, "/v1/callbacks/x"), Some(Scope::CallbacksWrite));
        assert_eq!(required_scope(&Method::POST, "/v1/detections"), Some(Scope::CallbacksWrite));
    }

    #[test]
    fn bucket_refills_at_rate() {
        let r = RateLimiter::new(10.0, 2.0);
        let t0 = Instant::now();
        assert!(r.take("a", t0).is_ok());
        assert!(r.take("a", t0).is_ok());
        assert_eq!(r.take("a", t0), Err(1));
        assert!(r.take("b", t0).is_ok(), "buckets are per token");
        assert!(r.take("a", t0 + Duration::from_millis(100)).is_ok());
    }

    #[test]
    fn a_replaced_set_is_what_every_clone_accepts() {
        let token = |name: &str, secret: &str| Token { name: name.into(), sha256: Sha256::digest(secret.as_bytes()).into(), scopes: vec![Scope::CallbacksRead] };
        let tokens = Tokens::new(vec![token("old", "s-old")]);
        let shared = tokens.clone();
        assert_eq!(shared.authenticate("s-old").map(|t| t.name), Some("old".into()));
        tokens.replace(Tokens::new(vec![token("new", "s-new")]));
        assert!(shared.authenticate("s-old").is_none());
        assert_eq!(shared.authenticate("s-new").map(|t| t.name), Some("new".into()));
        assert_eq!(shared.scopes_of("new"), vec![Scope::CallbacksRead]);
    }

    #[test]
    fn admin_token_is_generated_once_and_kept_hashed() {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = Config::defaults();
        cfg.storage_path = dir.path().join("db/redial.redb");
        let first = Tokens::load(&cfg).unwrap();
        let path = dir.path().join("db").join(ADMIN_TOKEN_FILE);
        let stored = std::fs::read_to_string(&path).unwrap();
        assert_eq!(stored.trim(), hex::encode(first.read()[0].sha256));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
        let again = Tokens::load(&cfg).unwrap();
        assert_eq!(again.read()[0].sha256, first.read()[0].sha256);
    }
}

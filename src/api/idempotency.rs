//! `Idempotency-Key` on `POST /v1/callbacks`: the same key (per token) with
//! the same body within 24 h answers with the first response (status and
//! body) instead of acting again; the same key with another body is 422
//! `idempotency_key_reused`.
//!
//! Kept in memory: a restart forgets keys. That is safe for callbacks
//! because a retried create after a restart meets the one-active-callback
//! rule (409 with the existing id) instead of creating a duplicate.
//! Requests with the same key are serialised by a per-key async lock, so
//! a retry racing the original waits for its answer.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use sha2::{Digest, Sha256};

/// How long a key is remembered.
pub const TTL: Duration = Duration::from_secs(24 * 3600);
/// Keys longer than this are refused (400).
pub const MAX_KEY_LEN: usize = 255;

/// A remembered answer.
#[derive(Debug, Clone)]
pub struct Stored {
    pub body_hash: [u8; 32],
    pub status: StatusCode,
    pub body: bytes::Bytes,
    pub at: Instant,
}

type Slot = Arc<tokio::sync::Mutex<Option<Stored>>>;

#[derive(Debug, Default)]
pub struct IdempotencyCache {
    slots: Mutex<HashMap<(String, String), Slot>>,
    inserts: std::sync::atomic::AtomicU64,
}

pub fn hash(body: &[u8]) -> [u8; 32] {
    Sha256::digest(body).into()
}

impl IdempotencyCache {
    /// The slot for (token, key); lock it for the whole request.
    pub fn slot(&self, token: &str, key: &str, now: Instant) -> Slot {
        let mut m = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        // Sweep expired answers now and then, so memory stays bounded by a day of keys.
        if self.inserts.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % 1024 == 1023 {
            m.retain(|_, s| match s.try_lock() {
                Ok(g) => g.as_ref().is_some_and(|st| now.duration_since(st.at) < TTL),
                Err(_) => true,
            });
        }
        m.entry((token.to_string(), key.to_string())).or_default().clone()
    }
}

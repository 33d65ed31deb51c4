//! Fresh branches, tags and Via headers for the TU.

use rand::Rng;
use rsip::headers::UntypedHeader;

use crate::sip::transaction::message::MAGIC_COOKIE;
use crate::sip::Transport;

fn random_token(len: usize) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    (0..len).map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char).collect()
}

/// A new RFC 3261 branch: the z9hG4bK magic cookie plus randomness (§8.1.1.7).
pub fn new_branch() -> String {
    format!("{MAGIC_COOKIE}{}", random_token(16))
}

/// A new From/To tag (§19.3: at least 32 bits of randomness).
pub fn new_tag() -> String {
    random_token(12)
}

/// A new Call-ID.
pub fn new_call_id() -> String {
    random_token(24)
}

/// A top Via for a new request sent from `sent_by` (`host:port`) with a fresh branch, and
/// `rport` so that a NATed peer answers where the request came from (RFC 3581).
pub fn new_via(transport: Transport, sent_by: &str) -> rsip::headers::Via {
    via(transport, sent_by, &new_branch())
}

/// A top Via with this branch, asking for `rport` (RFC 3261 §8.1.1.7, RFC 3581).
pub fn via(transport: Transport, sent_by: impl std::fmt::Display, branch: &str) -> rsip::headers::Via {
    let proto = match transport {
        Transport::Udp => "UDP",
        Transport::Tcp => "TCP",
        Transport::Ws => "WS",
    };
    rsip::headers::Via::new(format!("SIP/2.0/{proto} {sent_by};branch={branch};rport"))
}

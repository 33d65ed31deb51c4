//! Refusing a new INVITE from the raw datagram, sans-IO: the receive task answers it
//! 503 as a stateless UAS (RFC 3261 §8.2.7) without decoding it into a message, queueing
//! it for the endpoint or giving it a transaction, and absorbs the ACK of that 503.
//!
//! The 503 copies Via, From, To, Call-ID and CSeq (§8.2.6.2), stamps the top Via with
//! `received` and a requested `rport` (§18.2.1, RFC 3581), and adds a To tag computed
//! from the Call-ID, the From tag and the top Via branch: a retransmitted INVITE gets
//! the same answer, as §8.2.7 asks of a stateless UAS, and its ACK (same branch for a
//! non-2xx, §17.1.1.3) is recognised by that tag. Anything this cheap reading cannot be
//! sure of (folded lines, a To tag, missing headers) goes the normal way.
//!
//! A retransmission must get the answer its first transmission got: an INVITE admitted
//! while the gate was open and retransmitted after it closed belongs to its transaction,
//! not to a 503 (the caller would take the 503 and then meet the endpoint's 200). So
//! every new INVITE's decision is remembered by transaction for as long as its sender
//! may retransmit (Timer B, 64×T1), in [`Decisions`].

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Tags of stateless 503s start with this; the dialog tags of `codec::new_tag` are hex.
const TAG_PREFIX: &str = "ov-";
const SERVER: &str = concat!("redial/", env!("CARGO_PKG_VERSION"));

/// What the receive task does with a datagram.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Screened {
    /// Decode it and hand it to the endpoint.
    Pass,
    /// Send these bytes back to the source; nothing more.
    Answer(Vec<u8>),
    /// The ACK of a stateless 503: nothing to do.
    Absorb,
    /// A new INVITE to refuse whose User-Agent names a known scanner: dropped without
    /// an answer, as the endpoint drops scanners' requests.
    Scanner,
}

/// The header lines a stateless answer needs, as received.
#[derive(Default)]
struct Head<'a> {
    vias: Vec<&'a str>,
    from: Option<&'a str>,
    to: Option<&'a str>,
    call_id: Option<&'a str>,
    cseq: Option<&'a str>,
    user_agent: Option<&'a str>,
}

/// `name: value` → (canonical name, the line, value) for the headers of [`Head`].
fn parse_head(text: &str) -> Option<Head<'_>> {
    let head_end = text.find("\r\n\r\n").map(|i| i + 2).unwrap_or(text.len());
    let mut lines = text[..head_end].split("\r\n");
    lines.next()?; // the request line
    let mut h = Head::default();
    for line in lines.filter(|l| !l.is_empty()) {
        // A folded line (§7.3.1) continues the previous header: leave it to the decoder.
        if line.starts_with([' ', '\t']) {
            return None;
        }
        let (name, value) = line.split_once(':')?;
        let value = value.trim();
        let slot = match name.trim().to_ascii_lowercase().as_str() {
            "via" | "v" => {
                h.vias.push(line);
                continue;
            }
            "from" | "f" => &mut h.from,
            "to" | "t" => &mut h.to,
            "call-id" | "i" => &mut h.call_id,
            "cseq" => &mut h.cseq,
            "user-agent" => &mut h.user_agent,
            _ => continue,
        };
        // Two of one: not for this reader to judge.
        if slot.replace(value).is_some() {
            return None;
        }
    }
    Some(h)
}

/// A header parameter's value (`;name=value`) outside the URI's angle brackets.
fn param<'a>(value: &'a str, name: &str) -> Option<&'a str> {
    let params = value.rfind('>').map_or(value, |i| &value[i..]);
    params.split(';').skip(1).find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// The top Via value: the first of the first Via line.
fn top_via<'a>(h: &Head<'a>) -> Option<&'a str> {
    let line = h.vias.first()?;
    let value = line.split_once(':')?.1;
    Some(value.split(',').next()?.trim())
}

/// A transaction's key for [`Decisions`] and the tag: a hash of Call-ID, From tag and
/// branch, keyed at random once per process, since the peer chooses all three and must
/// not be able to make two transactions share a decision.
fn key(call_id: &str, from_tag: &str, branch: &str) -> u64 {
    static KEYS: std::sync::OnceLock<std::collections::hash_map::RandomState> = std::sync::OnceLock::new();
    KEYS.get_or_init(Default::default).hash_one((call_id, from_tag, branch))
}

/// The To tag of the stateless 503 to this transaction.
fn tag(call_id: &str, from_tag: &str, branch: &str) -> String {
    format!("{TAG_PREFIX}{:016x}", key(call_id, from_tag, branch))
}

/// How long a decision is kept at least: an INVITE is retransmitted until Timer B,
/// 64×T1 = 32 s with the default T1 (RFC 3261 §17.1.1.2). Kept in two generations of
/// this length, so each is kept between one and two of them.
const GENERATION: Duration = Duration::from_secs(32);
/// Decisions kept per generation at most (16 bytes or so each); a fuller generation is
/// retired early. 2^20 is over 30,000 new INVITEs/s for 32 s.
const GENERATION_CAP: usize = 1 << 20;

/// Admitted (`false`) or refused (`true`), by transaction, for new INVITEs over UDP.
#[derive(Debug)]
pub(super) struct Decisions {
    inner: Mutex<Generations>,
}

#[derive(Debug)]
struct Generations {
    current: HashMap<u64, bool>,
    previous: HashMap<u64, bool>,
    since: Option<Instant>,
}

impl Decisions {
    pub(super) fn new() -> Self {
        Self { inner: Mutex::new(Generations { current: HashMap::new(), previous: HashMap::new(), since: None }) }
    }

    /// The decision already taken for `key`, else `decide()`'s, remembered.
    fn decide(&self, now: Instant, key: u64, decide: impl FnOnce() -> bool) -> bool {
        let mut g = self.inner.lock().expect("decisions lock");
        let since = *g.since.get_or_insert(now);
        if now.saturating_duration_since(since) >= GENERATION || g.current.len() >= GENERATION_CAP {
            g.previous = std::mem::take(&mut g.current);
            g.since = Some(now);
        }
        if let Some(&d) = g.current.get(&key).or_else(|| g.previous.get(&key)) {
            return d;
        }
        let d = decide();
        g.current.insert(key, d);
        d
    }
}

/// The identifiers of the transaction: Call-ID, From tag, top Via branch.
fn ids<'a>(h: &Head<'a>) -> Option<(&'a str, &'a str, &'a str)> {
    Some((h.call_id?, param(h.from?, "tag")?, param(top_via(h)?, "branch")?))
}

/// A new INVITE's head (no To tag, CSeq method INVITE), or `None` when it is not one
/// this reader can answer.
fn new_invite(text: &str) -> Option<Head<'_>> {
    let h = parse_head(text)?;
    let (to, cseq) = (h.to?, h.cseq?);
    if param(to, "tag").is_some() || cseq.split_whitespace().nth(1) != Some("INVITE") || h.from.is_none() {
        return None;
    }
    Some(h)
}

/// The 503 to a new INVITE.
fn refusal(h: &Head<'_>, src: SocketAddr, retry_after: u64) -> Option<Vec<u8>> {
    let (to, cseq) = (h.to?, h.cseq?);
    let (call_id, from_tag, branch) = ids(h)?;
    let mut out = String::with_capacity(512);
    out.push_str("SIP/2.0 503 Service Unavailable\r\n");
    for (i, line) in h.vias.iter().enumerate() {
        if i > 0 {
            out.push_str(line);
            out.push_str("\r\n");
            continue;
        }
        // The top Via value ends at the first comma of the line, or with it; it is
        // stamped as the decoder stamps a request's (`received`, `rport`).
        let (name, rest) = line.split_once(':')?;
        let (top, more) = match rest.find(',') {
            Some(k) => (&rest[..k], &rest[k..]),
            None => (rest, ""),
        };
        out.push_str(&format!("{name}: {}{more}\r\n", crate::sip::codec::via::stamp_value(top, src)));
    }
    out.push_str(&format!(
        "From: {}\r\nTo: {to};tag={}\r\nCall-ID: {call_id}\r\nCSeq: {cseq}\r\nRetry-After: {retry_after}\r\nServer: {SERVER}\r\nContent-Length: 0\r\n\r\n",
        h.from?,
        tag(call_id, from_tag, branch),
    ));
    Some(out.into_bytes())
}

/// Whether `text` is the ACK of a stateless 503 (its To tag is the one [`refusal`] gave).
fn acks_refusal(text: &str) -> bool {
    if !text.contains(TAG_PREFIX) {
        return false;
    }
    let Some(h) = parse_head(text) else { return false };
    let (Some(to_tag), Some((call_id, from_tag, branch))) = (h.to.and_then(|t| param(t, "tag")), ids(&h)) else { return false };
    to_tag.starts_with(TAG_PREFIX) && to_tag == tag(call_id, from_tag, branch)
}

/// Screens one datagram at `now`: `refuse()` says, for a new INVITE not seen before,
/// whether it must be refused (503 with `retry_after`); a retransmission gets what its
/// first transmission got, from `decisions`. A refused INVITE whose User-Agent contains
/// one of `scanners` (lower-case) gets no answer.
pub(super) fn screen(bytes: &[u8], src: SocketAddr, now: Instant, decisions: &Decisions, retry_after: u64, scanners: &[String], refuse: impl FnOnce() -> bool) -> Screened {
    if bytes.starts_with(b"INVITE ") {
        let Some(h) = std::str::from_utf8(bytes).ok().and_then(new_invite) else { return Screened::Pass };
        let Some((call_id, from_tag, branch)) = ids(&h) else { return Screened::Pass };
        if !decisions.decide(now, key(call_id, from_tag, branch), refuse) {
            return Screened::Pass;
        }
        if h.user_agent.is_some_and(|ua| {
            let ua = ua.to_ascii_lowercase();
            scanners.iter().any(|s| ua.contains(s.as_str()))
        }) {
            return Screened::Scanner;
        }
        return refusal(&h, src, retry_after).map_or(Screened::Pass, Screened::Answer);
    }
    if bytes.starts_with(b"ACK ") {
        if let Ok(text) = std::str::from_utf8(bytes) {
            if acks_refusal(text) {
                return Screened::Absorb;
            }
        }
    }
    Screened::Pass
}

#[cfg(test)]
mod tests {
    use super::*;

    const SRC: &str = "192.0.2.7:5070";

    fn invite(to: &str) -> String {
        format!(
            "INVITE sip:+15550100@192.0.2.1 SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.1:5060;rport;branch=z9hG4bKa1, SIP/2.0/UDP 10.0.0.9;branch=z9hG4bKp\r\n\
             v: SIP/2.0/UDP 10.0.0.8;branch=z9hG4bKq\r\nMax-Forwards: 70\r\nFrom: <sip:alice@carrier.test>;tag=f1\r\nTo: {to}\r\n\
             Call-ID: c1@10.0.0.1\r\nCSeq: 7 INVITE\r\nContent-Type: application/sdp\r\nContent-Length: 4\r\n\r\nv=0\r\n"
        )
    }

    fn refuse(bytes: &[u8]) -> Screened {
        screen(bytes, SRC.parse().unwrap(), Instant::now(), &Decisions::new(), 5, &[], || true)
    }

    fn answer(bytes: &[u8]) -> rsip::Response {
        let Screened::Answer(r) = refuse(bytes) else { panic!("not answered") };
        rsip::Response::try_from(r.as_slice()).expect("a response rsip reads")
    }

    #[test]
    fn a_new_invite_gets_a_503_with_its_headers_and_the_same_tag_when_retransmitted() {
        let text = invite("<sip:+15550100@192.0.2.1>");
        let r = answer(text.as_bytes());
        assert_eq!(r.status_code.code(), 503);
        let wire = r.to_string();
        for needle in [
            "Via: SIP/2.0/UDP 10.0.0.1:5060;rport=5070;branch=z9hG4bKa1;received=192.0.2.7, SIP/2.0/UDP 10.0.0.9;branch=z9hG4bKp\r\n",
            "v: SIP/2.0/UDP 10.0.0.8;branch=z9hG4bKq\r\n",
            "From: <sip:alice@carrier.test>;tag=f1\r\n",
            "To: <sip:+15550100@192.0.2.1>;tag=ov-",
            "Call-ID: c1@10.0.0.1\r\n",
            "CSeq: 7 INVITE\r\n",
            "Retry-After: 5\r\n",
            "Content-Length: 0\r\n",
        ] {
            assert!(wire.contains(needle), "missing `{needle}` in:\n{wire}");
        }
        assert_eq!(answer(text.as_bytes()).to_string(), wire, "a retransmission gets the same 503");
        let other = text.replace("branch=z9hG4bKa1", "branch=z9hG4bKa2");
        assert_ne!(answer(other.as_bytes()).to_string(), wire, "another transaction, another tag");
    }

    #[test]
    fn only_new_invites_that_must_be_refused_are_answered() {
        let text = invite("<sip:+15550100@192.0.2.1>");
        let in_dialog = invite("<sip:+15550100@192.0.2.1>;tag=abc");
        assert_eq!(refuse(in_dialog.as_bytes()), Screened::Pass, "a re-INVITE");
        let folded = text.replace("Call-ID: c1@10.0.0.1", "Call-ID:\r\n c1@10.0.0.1");
        assert_eq!(refuse(folded.as_bytes()), Screened::Pass, "left to the decoder");
        let no_call_id = text.replace("Call-ID: c1@10.0.0.1\r\n", "");
        assert_eq!(refuse(no_call_id.as_bytes()), Screened::Pass, "the decoder answers it 400");
        let register = text.replacen("INVITE", "REGISTER", 1);
        let d = Decisions::new();
        assert_eq!(screen(register.as_bytes(), SRC.parse().unwrap(), Instant::now(), &d, 5, &[], || panic!("asked only for INVITEs")), Screened::Pass);
    }

    #[test]
    fn a_scanners_invite_is_dropped_not_answered_and_only_when_refused() {
        let (src, d) = (SRC.parse().unwrap(), Decisions::new());
        let scanners = ["friendly-scanner".to_string()];
        let text = invite("<sip:+15550100@192.0.2.1>").replace("Max-Forwards: 70", "User-Agent: Friendly-Scanner 1.0\r\nMax-Forwards: 70");
        assert_eq!(screen(text.as_bytes(), src, Instant::now(), &d, 5, &scanners, || true), Screened::Scanner);
        let admitted = text.replace("branch=z9hG4bKa1", "branch=z9hG4bKa2");
        assert_eq!(screen(admitted.as_bytes(), src, Instant::now(), &d, 5, &scanners, || false), Screened::Pass, "the decoder's screen drops it");
        let other = text.replace("Friendly-Scanner", "Acme Phone").replace("branch=z9hG4bKa1", "branch=z9hG4bKa3");
        assert!(matches!(screen(other.as_bytes(), src, Instant::now(), &d, 5, &scanners, || true), Screened::Answer(_)));
    }

    #[test]
    fn a_retransmission_gets_what_the_first_transmission_got_until_timer_b_has_passed() {
        let (src, t0, d) = (SRC.parse().unwrap(), Instant::now(), Decisions::new());
        let admitted = invite("<sip:+15550100@192.0.2.1>");
        assert_eq!(screen(admitted.as_bytes(), src, t0, &d, 5, &[], || false), Screened::Pass, "admitted while the gate was open");
        let later = t0 + Duration::from_secs(1);
        assert_eq!(screen(admitted.as_bytes(), src, later, &d, 5, &[], || true), Screened::Pass, "its retransmission goes to its transaction");
        let refused = admitted.replace("branch=z9hG4bKa1", "branch=z9hG4bKr1");
        assert!(matches!(screen(refused.as_bytes(), src, later, &d, 5, &[], || true), Screened::Answer(_)));
        assert!(matches!(screen(refused.as_bytes(), src, later, &d, 5, &[], || false), Screened::Answer(_)), "refused again though the gate opened");
        // Kept for a generation at least, forgotten after two.
        let t1 = t0 + GENERATION + Duration::from_secs(1);
        assert_eq!(screen(admitted.as_bytes(), src, t1, &d, 5, &[], || true), Screened::Pass, "still remembered");
        let t2 = t1 + GENERATION;
        assert!(matches!(screen(admitted.as_bytes(), src, t2, &d, 5, &[], || true), Screened::Answer(_)), "forgotten: a new decision");
    }

    #[test]
    fn the_ack_of_a_stateless_503_is_absorbed_and_no_other() {
        let (src, d) = (SRC.parse().unwrap(), Decisions::new());
        let r = answer(invite("<sip:+15550100@192.0.2.1>").as_bytes());
        let to = r.to_string().lines().find(|l| l.starts_with("To:")).unwrap().to_string();
        let ack = |to: &str, branch: &str| {
            format!(
                "ACK sip:+15550100@192.0.2.1 SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.1:5060;branch={branch}\r\nFrom: <sip:alice@carrier.test>;tag=f1\r\n\
                 {to}\r\nCall-ID: c1@10.0.0.1\r\nCSeq: 7 ACK\r\nContent-Length: 0\r\n\r\n"
            )
        };
        let now = Instant::now();
        assert_eq!(screen(ack(&to, "z9hG4bKa1").as_bytes(), src, now, &d, 5, &[], || true), Screened::Absorb);
        assert_eq!(screen(ack(&to, "z9hG4bKzz").as_bytes(), src, now, &d, 5, &[], || true), Screened::Pass, "the tag is not this transaction's");
        assert_eq!(screen(ack("To: <sip:x@y>;tag=0123456789abcdef", "z9hG4bKa1").as_bytes(), src, now, &d, 5, &[], || true), Screened::Pass);
    }
}

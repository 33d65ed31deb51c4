//! The sans-IO rules of the SIP WebSocket listener (RFC 7118): which upgrade requests are
//! accepted, how many connections one source may hold, and what a received WebSocket
//! message means.

use std::collections::HashMap;
use std::net::IpAddr;

/// The only WebSocket subprotocol served (RFC 7118 §4.1, IANA-registered as `sip`).
pub const SUBPROTOCOL: &str = "sip";
/// The only path served; browser softphones are pointed at `ws://host:port/`.
pub const PATH: &str = "/";

/// Why an upgrade request is refused, with the HTTP status it gets.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// RFC 7118 §4.1: the client must offer `sip` in `Sec-WebSocket-Protocol`; a server
    /// that does not serve what it offers refuses the handshake.
    #[error("subprotocol `sip` not offered (offered: {offered:?})")]
    NoSipSubprotocol { offered: String },
    #[error("path `{path}` is not served (only `/`)")]
    WrongPath { path: String },
}

impl Refusal {
    pub fn status(&self) -> u16 {
        match self {
            Refusal::NoSipSubprotocol { .. } => 400,
            Refusal::WrongPath { .. } => 404,
        }
    }
}

/// Checks an upgrade request's path (without query) and its `Sec-WebSocket-Protocol`
/// values (each a comma-separated list; tokens compare case-sensitively, RFC 6455 §4.1).
pub fn check_upgrade<'a>(path: &str, protocols: impl IntoIterator<Item = &'a str>) -> Result<(), Refusal> {
    let path_only = path.split('?').next().unwrap_or("");
    if path_only != PATH {
        return Err(Refusal::WrongPath { path: path_only.to_string() });
    }
    let offered: Vec<&str> = protocols.into_iter().flat_map(|v| v.split(',')).map(str::trim).filter(|t| !t.is_empty()).collect();
    if offered.contains(&SUBPROTOCOL) {
        Ok(())
    } else {
        Err(Refusal::NoSipSubprotocol { offered: offered.join(", ") })
    }
}

/// Open connections per source IP, against a cap: a source at the cap has further
/// connections closed before the handshake.
#[derive(Debug)]
pub struct SourceLimit {
    max: usize,
    open: HashMap<IpAddr, usize>,
}

impl SourceLimit {
    pub fn new(max: usize) -> Self {
        Self { max, open: HashMap::new() }
    }

    /// Counts a new connection from `ip`, or refuses it (`false`) when `ip` is at the cap.
    pub fn acquire(&mut self, ip: IpAddr) -> bool {
        let n = self.open.entry(ip).or_insert(0);
        if *n >= self.max {
            return false;
        }
        *n += 1;
        true
    }

    /// A connection counted by [`SourceLimit::acquire`] closed.
    pub fn release(&mut self, ip: IpAddr) {
        if let Some(n) = self.open.get_mut(&ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.open.remove(&ip);
            }
        }
    }

    pub fn open(&self, ip: IpAddr) -> usize {
        self.open.get(&ip).copied().unwrap_or(0)
    }
}

/// What one received WebSocket message is, for the SIP layer.
#[derive(Debug, PartialEq, Eq)]
pub enum Received<'a> {
    /// RFC 7118 §5.2: each text or binary message carries exactly one SIP message.
    Sip(&'a [u8]),
    /// Keep-alive traffic (pings are answered by the WebSocket library).
    KeepAlive,
    Close,
}

pub fn classify(msg: &tokio_tungstenite::tungstenite::Message) -> Received<'_> {
    use tokio_tungstenite::tungstenite::Message;
    match msg {
        Message::Text(t) => Received::Sip(t.as_bytes()),
        Message::Binary(b) => Received::Sip(b),
        Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => Received::KeepAlive,
        Message::Close(_) => Received::Close,
    }
}

/// How to send `bytes`: as a text message when they are UTF-8 (what SIP messages are in
/// practice, and what JsSIP and SIP.js expect), else binary (RFC 7118 §5.2 allows both).
pub fn outgoing(bytes: Vec<u8>) -> tokio_tungstenite::tungstenite::Message {
    use tokio_tungstenite::tungstenite::Message;
    match String::from_utf8(bytes) {
        Ok(s) => Message::text(s),
        Err(e) => Message::binary(e.into_bytes()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio_tungstenite::tungstenite::Message;

    #[test]
    fn sip_subprotocol_is_required() {
        assert_eq!(check_upgrade("/", ["sip"]), Ok(()));
        assert_eq!(check_upgrade("/", ["chat, sip"]), Ok(()));
        assert_eq!(check_upgrade("/", ["chat", " sip "]), Ok(()));
        assert_eq!(check_upgrade("/?x=1", ["sip"]), Ok(()));
        assert_eq!(check_upgrade("/", []), Err(Refusal::NoSipSubprotocol { offered: String::new() }));
        let e = check_upgrade("/", ["chat, SIP"]).unwrap_err();
        assert_eq!(e, Refusal::NoSipSubprotocol { offered: "chat, SIP".into() });
        assert_eq!(e.status(), 400);
        let e = check_upgrade("/ws", ["sip"]).unwrap_err();
        assert_eq!(e, Refusal::WrongPath { path: "/ws".into() });
        assert_eq!(e.status(), 404);
    }

    #[test]
    fn connections_are_capped_per_source() {
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let mut l = SourceLimit::new(2);
        assert!(l.acquire(a));
        assert!(l.acquire(a));
        assert!(!l.acquire(a), "third connection from one source refused");
        assert!(l.acquire(b), "other sources are not affected");
        l.release(a);
        assert_eq!(l.open(a), 1);
        assert!(l.acquire(a), "a slot freed by a close is usable again");
        l.release(b);
        l.release(b);
        assert_eq!(l.open(b), 0, "extra releases do not underflow");
    }

    #[test]
    fn text_and_binary_carry_one_sip_message_each() {
        let text = Message::text("OPTIONS sip:x SIP/2.0\r\n\r\n");
        assert_eq!(classify(&text), Received::Sip(b"OPTIONS sip:x SIP/2.0\r\n\r\n"));
        let bin = Message::binary(vec![1u8, 2, 3]);
        assert_eq!(classify(&bin), Received::Sip(&[1, 2, 3]));
        assert_eq!(classify(&Message::Ping(vec![].into())), Received::KeepAlive);
        assert_eq!(classify(&Message::Pong(vec![].into())), Received::KeepAlive);
        assert_eq!(classify(&Message::Close(None)), Received::Close);
    }

    #[test]
    fn outgoing_is_text_when_utf8() {
        assert!(matches!(outgoing(b"SIP/2.0 200 OK\r\n\r\n".to_vec()), Message::Text(_)));
        assert!(matches!(outgoing(vec![0xff, 0xfe]), Message::Binary(_)));
    }
}

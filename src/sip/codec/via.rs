//! The top Via on receipt and on the way back (RFC 3261 §18.2.1, §18.2.2; RFC 3581).
//!
//! Done on the raw header text so it also works for Vias rsip's typed form refuses.

use std::net::{IpAddr, SocketAddr};

use rsip::headers::UntypedHeader;
use rsip::{Header, SipMessage};

use crate::sip::Peer;

/// Split of a Via value: `SIP/2.0/UDP`, `host[:port]`, the `;params` text.
struct ViaParts<'a> {
    protocol: &'a str,
    sent_by: &'a str,
    params: Vec<(&'a str, Option<&'a str>)>,
}

fn split(value: &str) -> Option<ViaParts<'_>> {
    let value = value.trim();
    let ws = value.find(|c: char| c.is_whitespace())?;
    let protocol = &value[..ws];
    let rest = value[ws..].trim_start();
    let (sent_by, params) = match rest.find(';') {
        Some(i) => (rest[..i].trim(), &rest[i + 1..]),
        None => (rest.trim(), ""),
    };
    if sent_by.is_empty() {
        return None;
    }
    let params = params
        .split(';')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((n, v)) => (n.trim(), Some(v.trim())),
            None => (p, None),
        })
        .collect();
    Some(ViaParts { protocol, sent_by, params })
}

/// `host[:port]` → host text (brackets kept off) and port.
fn host_port(sent_by: &str) -> (&str, Option<u16>) {
    if let Some(rest) = sent_by.strip_prefix('[') {
        if let Some(end) = rest.find(']') {
            let port = rest[end + 1..].strip_prefix(':').and_then(|p| p.parse().ok());
            return (&rest[..end], port);
        }
    }
    match sent_by.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') => (h, p.parse().ok()),
        _ => (sent_by, None),
    }
}

/// Adds `received` (when the sent-by host is not the source address, or rport asks for
/// it) and fills an empty `rport` with the source port (§18.2.1, RFC 3581 §4).
pub fn stamp_value(value: &str, src: SocketAddr) -> String {
    let Some(parts) = split(value) else { return value.to_string() };
    let (host, _) = host_port(parts.sent_by);
    let wants_rport = parts.params.iter().any(|(n, v)| n.eq_ignore_ascii_case("rport") && v.is_none());
    let host_is_src = host.parse::<IpAddr>().is_ok_and(|ip| ip == src.ip());
    let mut out = format!("{} {}", parts.protocol, parts.sent_by);
    for (n, v) in &parts.params {
        if n.eq_ignore_ascii_case("received") {
            continue; // replaced below
        }
        if n.eq_ignore_ascii_case("rport") && v.is_none() {
            out.push_str(&format!(";rport={}", src.port()));
            continue;
        }
        out.push(';');
        out.push_str(n);
        if let Some(v) = v {
            out.push('=');
            out.push_str(v);
        }
    }
    if wants_rport || !host_is_src {
        out.push_str(&format!(";received={}", src.ip()));
    }
    out
}

/// Stamps the top Via of a received request with where it really came from.
pub fn stamp_received(msg: &mut SipMessage, src: SocketAddr) {
    let SipMessage::Request(req) = msg else { return };
    if let Some(h) = req.headers.iter_mut().find(|h| matches!(h, Header::Via(_))) {
        if let Header::Via(v) = h {
            *h = Header::Via(rsip::headers::Via::new(stamp_value(v.value(), src)));
        }
    }
}

/// Where a response goes over UDP (§18.2.2 + RFC 3581 §4): `received` and `rport` when
/// present, else the sent-by address (port 5060 by default). `None` when the sent-by is a
/// host name we would need DNS for; the caller then answers the source address.
pub fn response_destination(top_via: &str) -> Option<SocketAddr> {
    let parts = split(top_via)?;
    let (host, port) = host_port(parts.sent_by);
    let param = |name: &str| parts.params.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).and_then(|(_, v)| *v);
    let ip: IpAddr = match param("received") {
        Some(r) => r.trim_start_matches('[').trim_end_matches(']').parse().ok()?,
        None => host.parse().ok()?,
    };
    let port = param("rport").and_then(|p| p.parse().ok()).or(port).unwrap_or(5060);
    Some(SocketAddr::new(ip, port))
}

/// The sent-by of a Via as an address (default port 5060), ignoring `received`/`rport`:
/// where a TCP response goes when the request's connection is gone (§18.2.2).
pub fn sent_by_destination(top_via: &str) -> Option<SocketAddr> {
    let parts = split(top_via)?;
    let (host, port) = host_port(parts.sent_by);
    Some(SocketAddr::new(host.parse().ok()?, port.unwrap_or(5060)))
}

fn top_via_of(resp: &rsip::Response) -> Option<String> {
    resp.headers.iter().find_map(|h| match h {
        Header::Via(v) => Some(v.value().to_string()),
        _ => None,
    })
}

/// The destination for a response to `peer` (§18.2.2): over UDP per the top Via; over TCP
/// the connection the request came on when `connected(peer)` says it is still open, else
/// a new connection to the Via's sent-by; over WebSocket always the request's connection.
pub fn response_peer(resp: &rsip::Response, peer: Peer, connected: impl Fn(SocketAddr) -> bool) -> Peer {
    // RFC 7118 §5.3: a WebSocket client cannot be reached but on its own connection.
    if peer.transport == crate::config::Transport::Ws {
        return peer;
    }
    let top = top_via_of(resp);
    let addr = if peer.transport == crate::config::Transport::Tcp {
        if connected(peer.addr) {
            return peer;
        }
        top.and_then(|v| sent_by_destination(&v))
    } else {
        top.and_then(|v| response_destination(&v))
    };
    Peer { addr: addr.unwrap_or(peer.addr), transport: peer.transport }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn src() -> SocketAddr {
        "10.0.0.9:40000".parse().unwrap()
    }

    #[test]
    fn rport_filled_and_received_added() {
        let v = stamp_value("SIP/2.0/UDP 10.0.0.9:5060;branch=z9hG4bK1;rport", src());
        assert_eq!(v, "SIP/2.0/UDP 10.0.0.9:5060;branch=z9hG4bK1;rport=40000;received=10.0.0.9");
        assert_eq!(response_destination(&v), Some(src()));
    }

    #[test]
    fn received_only_when_host_differs() {
        let same = stamp_value("SIP/2.0/UDP 10.0.0.9:5070;branch=z9hG4bK1", src());
        assert_eq!(same, "SIP/2.0/UDP 10.0.0.9:5070;branch=z9hG4bK1");
        assert_eq!(response_destination(&same), Some("10.0.0.9:5070".parse().unwrap()));
        let other = stamp_value("SIP/2.0/UDP pc33.example.com;branch=z9hG4bK1", src());
        assert_eq!(other, "SIP/2.0/UDP pc33.example.com;branch=z9hG4bK1;received=10.0.0.9");
        // received without rport: the sent-by port, default 5060 (§18.2.2).
        assert_eq!(response_destination(&other), Some("10.0.0.9:5060".parse().unwrap()));
    }

    #[test]
    fn ipv6_sent_by() {
        let s: SocketAddr = "[::1]:4000".parse().unwrap();
        let v = stamp_value("SIP/2.0/TCP [::1]:5062;branch=z9hG4bKx;rport", s);
        assert_eq!(response_destination(&v), Some(s));
        assert_eq!(response_destination("SIP/2.0/UDP [::1]:5062;branch=z"), Some("[::1]:5062".parse().unwrap()));
    }

    #[test]
    fn tcp_responses_use_the_connection_else_sent_by() {
        let raw = "SIP/2.0 200 OK\r\nVia: SIP/2.0/TCP 10.0.0.9:5070;branch=z9hG4bK1;rport=40000;received=10.0.0.9\r\n\
                   From: <sip:a@b>;tag=1\r\nTo: <sip:a@b>;tag=2\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n";
        let rsip::SipMessage::Response(resp) = crate::sip::codec::decode(raw.as_bytes()).unwrap() else { panic!() };
        let peer = Peer { addr: src(), transport: crate::config::Transport::Tcp };
        assert_eq!(response_peer(&resp, peer, |_| true), peer);
        assert_eq!(response_peer(&resp, peer, |_| false).addr, "10.0.0.9:5070".parse().unwrap());
        let udp = Peer { addr: "127.0.0.1:1".parse().unwrap(), transport: crate::config::Transport::Udp };
        assert_eq!(response_peer(&resp, udp, |_| false).addr, src());
    }

    #[test]
    fn websocket_responses_always_use_the_connection() {
        // RFC 7118 §5.3: the sent-by is a made-up `.invalid` host; only the connection works.
        let raw = "SIP/2.0 200 OK\r\nVia: SIP/2.0/WS df7jal23ls0d.invalid;branch=z9hG4bK1;received=10.0.0.9\r\n\
                   From: <sip:a@b>;tag=1\r\nTo: <sip:a@b>;tag=2\r\nCall-ID: c\r\nCSeq: 1 REGISTER\r\nContent-Length: 0\r\n\r\n";
        let rsip::SipMessage::Response(resp) = crate::sip::codec::decode(raw.as_bytes()).unwrap() else { panic!() };
        let peer = Peer { addr: src(), transport: crate::config::Transport::Ws };
        assert_eq!(response_peer(&resp, peer, |_| false), peer);
    }

    #[test]
    fn host_names_need_the_source() {
        assert_eq!(response_destination("SIP/2.0/UDP pc33.example.com:5060;branch=z"), None);
        assert_eq!(response_destination("garbage"), None);
    }
}

//! Transaction tests in virtual time: exact timer schedules per machine, matching, and a
//! two-peer harness over a lossy in-memory UDP network.

mod index;
mod layer;
pub(crate) mod pair;
mod props;
mod schedules;

use std::time::{Duration, Instant};

use rsip::prelude::*;
use rsip::{Request, Response, SipMessage, StatusCode};

use super::{response_for, TransactionEvent, TransactionLayer};
use crate::config::SipTimers;
use crate::sip::{Peer, Transport};

pub(super) fn peer(port: u16, transport: Transport) -> Peer {
    Peer { addr: format!("127.0.0.1:{port}").parse().unwrap(), transport }
}

pub(super) fn udp(port: u16) -> Peer {
    peer(port, Transport::Udp)
}

pub(super) fn tcp(port: u16) -> Peer {
    peer(port, Transport::Tcp)
}

/// A request parsed from text, as the codec would hand it over.
pub(super) fn request(method: &str, branch: &str, cseq: u32) -> Request {
    let text = format!(
        "{method} sip:bob@127.0.0.1:5070 SIP/2.0\r\n\
         Via: SIP/2.0/UDP 127.0.0.1:5060;branch={branch}\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:alice@127.0.0.1>;tag=a1\r\n\
         To: <sip:bob@127.0.0.1>\r\n\
         Call-ID: call-1@test\r\n\
         CSeq: {cseq} {method}\r\n\
         Content-Length: 0\r\n\r\n"
    );
    Request::try_from(text.as_str()).expect("test request parses")
}

/// A response to `req` with a To tag.
pub(super) fn response(req: &Request, code: u16) -> Response {
    let mut resp = response_for(req, StatusCode::from(code));
    if code > 100 {
        let to = resp.to_header_mut().unwrap();
        to.mut_tag(rsip::param::Tag::new("b1")).unwrap();
    }
    resp
}

/// What happened, in milliseconds since the start.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Seen {
    Tx(SipMessage),
    Ev(TransactionEvent),
}

/// Drains the layer's outputs, stamping them with `now - t0` in ms.
pub(super) fn drain(layer: &mut TransactionLayer, t0: Instant, now: Instant, log: &mut Vec<(u64, Seen)>) {
    let ms = (now - t0).as_millis() as u64;
    while let Some(t) = layer.poll_transmit() {
        log.push((ms, Seen::Tx(t.message)));
    }
    while let Some(e) = layer.poll_event() {
        log.push((ms, Seen::Ev(e)));
    }
}

/// Steps virtual time from timeout to timeout until `t0 + limit` or nothing is armed.
pub(super) fn run_until(layer: &mut TransactionLayer, t0: Instant, limit: Duration, log: &mut Vec<(u64, Seen)>) -> Instant {
    let mut now = t0;
    loop {
        drain(layer, t0, now, log);
        match layer.poll_timeout() {
            Some(at) if at <= t0 + limit => {
                assert!(at >= now, "poll_timeout went back in time");
                now = at;
                layer.handle_timeout(now);
            }
            _ => return now,
        }
    }
}

pub(super) fn tx_times(log: &[(u64, Seen)]) -> Vec<u64> {
    log.iter().filter(|(_, s)| matches!(s, Seen::Tx(_))).map(|(t, _)| *t).collect()
}

pub(super) fn ms(v: u64) -> Duration {
    Duration::from_millis(v)
}

pub(super) fn fast_timers() -> SipTimers {
    SipTimers { t1: ms(100), t2: ms(400), t4: ms(1000) }
}

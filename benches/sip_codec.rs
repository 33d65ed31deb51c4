//! Parse + serialise rate of a typical INVITE through the codec boundary
//! (`codec::decode` then `codec::encode`). Prints messages per second.
//!
//! Run: `cargo bench --bench sip_codec`

use std::hint::black_box;
use std::time::{Duration, Instant};

use redial::sip::codec;

const INVITE: &str = "INVITE sip:+14155550100@carrier.test SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK776asdhds;rport\r\n\
Max-Forwards: 70\r\n\
To: <sip:+14155550100@carrier.test>\r\n\
From: \"Support\" <sip:+15550100@carrier.test>;tag=1928301774\r\n\
Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n\
CSeq: 314159 INVITE\r\n\
Contact: <sip:trunk1@192.0.2.10:5060;transport=udp>\r\n\
Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE\r\n\
Supported: timer\r\n\
User-Agent: redial/0.1.0\r\n\
X-Redial-Callback-Id: cb_01HZY3\r\n\
Content-Type: application/sdp\r\n\
Content-Length: 231\r\n\r\n\
v=0\r\n\
o=redial 2890844526 2890844526 IN IP4 192.0.2.10\r\n\
s=redial\r\n\
c=IN IP4 192.0.2.10\r\n\
t=0 0\r\n\
m=audio 20000 RTP/AVP 0 8 101\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-16\r\n\
a=sendrecv\r\n";

fn run(name: &str, budget: Duration, mut f: impl FnMut()) {
    // Warm up, then count iterations within the budget.
    for _ in 0..1_000 {
        f();
    }
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < budget {
        for _ in 0..256 {
            f();
        }
        n += 256;
    }
    let secs = start.elapsed().as_secs_f64();
    println!("{name:<28} {:>10.0} messages/s  ({:.2} µs each, {n} iterations)", n as f64 / secs, secs * 1e6 / n as f64);
}

fn main() {
    let bytes = INVITE.as_bytes();
    assert_eq!(codec::decode(bytes).expect("valid INVITE").body().len(), 231);
    let msg = codec::decode(bytes).unwrap();
    let budget = Duration::from_secs(3);
    run("decode (parse + checks)", budget, || {
        black_box(codec::decode(black_box(bytes)).unwrap());
    });
    run("encode (serialise)", budget, || {
        black_box(codec::encode(black_box(&msg)));
    });
    run("decode + encode", budget, || {
        let m = codec::decode(black_box(bytes)).unwrap();
        black_box(codec::encode(&m));
    });
    run("rsip alone: parse + print", budget, || {
        let m = rsip::SipMessage::try_from(black_box(bytes)).unwrap();
        black_box(m.to_string());
    });
}

use super::*;
use rsip::prelude::*;

const OPTIONS: &str = "OPTIONS sip:redial@127.0.0.1:5060 SIP/2.0\r\n\
Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-1;rport\r\n\
Max-Forwards: 70\r\n\
From: <sip:probe@127.0.0.1>;tag=a1\r\n\
To: <sip:redial@127.0.0.1>\r\n\
Call-ID: c1@127.0.0.1\r\n\
CSeq: 1 OPTIONS\r\n\
Content-Length: 0\r\n\r\n";

fn with(replace: &str, by: &str) -> String {
    assert!(OPTIONS.contains(replace), "{replace}");
    OPTIONS.replacen(replace, by, 1)
}

fn status_of(e: &DecodeError) -> Option<u16> {
    e.reply.as_ref().map(|r| u16::from(r.status_code.clone()))
}

#[test]
fn decodes_a_plain_request() {
    let m = decode(OPTIONS.as_bytes()).unwrap();
    let SipMessage::Request(r) = m else { panic!("not a request") };
    assert_eq!(r.method, rsip::Method::Options);
    assert_eq!(r.call_id_header().unwrap().value(), "c1@127.0.0.1");
}

#[test]
fn compact_names_are_expanded() {
    // rsip alone keeps `i:` etc. as unknown headers, so Call-ID would be missing.
    let raw = "INVITE sip:+14155550100@carrier.test SIP/2.0\r\n\
v: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-2\r\n\
f: <sip:a@x>;tag=1\r\n\
t: <tel:+14155550100>\r\n\
i: compact@x\r\n\
CSeq: 1 INVITE\r\n\
m: <sip:a@127.0.0.1:5070>\r\n\
k: timer\r\n\
x: 1800;refresher=uac\r\n\
c: application/sdp\r\n\
l: 4\r\n\r\nv=0\n";
    let plain = rsip::SipMessage::try_from(raw).unwrap();
    assert!(plain.call_id_header().is_err(), "rsip gap still there");
    let m = decode(raw.as_bytes()).unwrap();
    assert_eq!(m.call_id_header().unwrap().value(), "compact@x");
    assert!(m.via_header().unwrap().typed().is_ok());
    assert!(m.contact_header().is_ok());
    assert_eq!(header_value(m.headers(), "Supported").as_deref(), Some("timer"));
    let se = headers::parse_session_expires(&header_value(m.headers(), "Session-Expires").unwrap()).unwrap();
    assert_eq!(se.delta_seconds, 1800);
    assert_eq!(header_value(m.headers(), "Content-Type").as_deref(), Some("application/sdp"));
    assert_eq!(m.body(), b"v=0\n");
    // The tel: To is readable through our parser.
    let to = headers::parse_name_addr(m.to_header().unwrap().value(), "To").unwrap();
    assert_eq!(to.uri.user(), Some("+14155550100"));
}

#[test]
fn folding_space_before_colon_and_via_lists() {
    let raw = with("Max-Forwards: 70\r\n", "Max-Forwards : 70\r\nSubject: a\r\n  folded\r\n")
        .replace("rport\r\n", "rport, SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK-0\r\n");
    let m = decode(raw.as_bytes()).unwrap();
    assert_eq!(header_value(m.headers(), "Subject").as_deref(), Some("a folded"));
    assert_eq!(m.headers().iter().filter(|h| matches!(h, rsip::Header::Via(_))).count(), 2);
}

#[test]
fn content_length_longer_than_body_is_400() {
    let raw = with("Content-Length: 0\r\n\r\n", "Content-Length: 10\r\n\r\nabc");
    let e = decode(raw.as_bytes()).unwrap_err();
    assert_eq!(e.kind, DecodeErrorKind::BodyTooShort { declared: 10, actual: 3 });
    assert_eq!(status_of(&e), Some(400));
}

#[test]
fn content_length_shorter_than_body_truncates() {
    // RFC 3261 §18.3: extra bytes in a datagram beyond Content-Length are discarded.
    let raw = with("Content-Length: 0\r\n\r\n", "Content-Length: 2\r\n\r\nabcdef");
    assert_eq!(decode(raw.as_bytes()).unwrap().body(), b"ab");
}

#[test]
fn content_length_garbage_is_400() {
    for v in ["-1", "abc", "", "99999999999"] {
        let raw = with("Content-Length: 0", &format!("Content-Length: {v}"));
        let e = decode(raw.as_bytes()).unwrap_err();
        assert_eq!(status_of(&e), Some(400), "{v}");
    }
}

#[test]
fn missing_mandatory_headers() {
    // A missing Call-ID, From, To or CSeq is answered 400 (RFC 4475 §3.3.1) with the
    // headers that are there; without Via no response can be addressed: dropped.
    for (line, header) in [
        ("Call-ID: c1@127.0.0.1\r\n", "Call-ID"),
        ("CSeq: 1 OPTIONS\r\n", "CSeq"),
        ("From: <sip:probe@127.0.0.1>;tag=a1\r\n", "From"),
        ("To: <sip:redial@127.0.0.1>\r\n", "To"),
    ] {
        let e = decode(with(line, "").as_bytes()).unwrap_err();
        assert_eq!(e.kind, DecodeErrorKind::Missing { header }, "{header}");
        assert_eq!(status_of(&e), Some(400), "{header}");
    }
    let e = decode(with("Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-1;rport\r\n", "").as_bytes()).unwrap_err();
    assert_eq!(e.kind, DecodeErrorKind::Missing { header: "Via" });
    assert!(e.reply.is_none());
}

#[test]
fn duplicated_single_headers_are_400() {
    for (line, header) in [("Call-ID: c1@127.0.0.1\r\n", "Call-ID"), ("CSeq: 1 OPTIONS\r\n", "CSeq")] {
        let raw = with(line, &format!("{line}{line}"));
        let e = decode(raw.as_bytes()).unwrap_err();
        assert_eq!(e.kind, DecodeErrorKind::Duplicate { header });
        assert_eq!(status_of(&e), Some(400));
    }
    // Via may repeat.
    let v = "Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-1;rport\r\n";
    assert!(decode(with(v, &format!("{v}{v}")).as_bytes()).is_ok());
}

#[test]
fn max_forwards_rules() {
    let zero_invite = with("OPTIONS sip", "INFO sip").replace("1 OPTIONS", "1 INFO").replace("Max-Forwards: 70", "Max-Forwards: 0");
    let e = decode(zero_invite.as_bytes()).unwrap_err();
    assert_eq!(e.kind, DecodeErrorKind::TooManyHops);
    assert_eq!(status_of(&e), Some(483));
    // OPTIONS with Max-Forwards 0 is for us to answer.
    assert!(decode(with("Max-Forwards: 70", "Max-Forwards: 0").as_bytes()).is_ok());
    for bad in ["-1", "x", ""] {
        let e = decode(with("Max-Forwards: 70", &format!("Max-Forwards: {bad}")).as_bytes()).unwrap_err();
        assert_eq!(status_of(&e), Some(400), "{bad}");
    }
}

#[test]
fn invalid_uris() {
    let e = decode(with("OPTIONS sip:redial@127.0.0.1:5060", "OPTIONS sip:").as_bytes()).unwrap_err();
    assert_eq!(e.kind, DecodeErrorKind::InvalidUri { header: "Request-URI" });
    assert_eq!(status_of(&e), Some(400));
    let e = decode(with("OPTIONS sip:redial@127.0.0.1:5060", "OPTIONS http://x").as_bytes()).unwrap_err();
    assert_eq!(status_of(&e), Some(416));
    let e = decode(with("To: <sip:redial@127.0.0.1>", "To: <sip:redial@127.0.0.1").as_bytes()).unwrap_err();
    assert_eq!(e.kind, DecodeErrorKind::InvalidUri { header: "To" });
    assert_eq!(status_of(&e), Some(400));
}

#[test]
fn unknown_method_is_501_with_allow() {
    let raw = with("OPTIONS sip", "FROBNICATE sip").replace("1 OPTIONS", "1 FROBNICATE");
    let e = decode(raw.as_bytes()).unwrap_err();
    assert_eq!(status_of(&e), Some(501));
    assert!(e.reply.unwrap().to_string().contains(&format!("Allow: {ALLOW}\r\n")));
}

#[test]
fn cseq_checks() {
    let e = decode(with("CSeq: 1 OPTIONS", "CSeq: 1 INVITE").as_bytes()).unwrap_err();
    assert!(matches!(e.kind, DecodeErrorKind::CSeqMethodMismatch { .. }));
    for bad in ["x OPTIONS", "1", "4294967296 OPTIONS", "1 OPTIONS extra"] {
        let e = decode(with("CSeq: 1 OPTIONS", &format!("CSeq: {bad}")).as_bytes()).unwrap_err();
        assert_eq!(status_of(&e), Some(400), "{bad}");
    }
}

#[test]
fn error_reply_is_addressed() {
    let raw = with("Content-Length: 0\r\n\r\n", "Content-Length: 10\r\n\r\n");
    let e = decode(raw.as_bytes()).unwrap_err();
    let r = e.reply.unwrap();
    let text = String::from_utf8(encode(&SipMessage::Response(*r))).unwrap();
    assert!(text.starts_with("SIP/2.0 400 Bad Request\r\n"), "{text}");
    assert!(text.contains("Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-1;rport\r\n"));
    assert!(text.contains("Call-ID: c1@127.0.0.1\r\n"));
    assert!(text.contains("CSeq: 1 OPTIONS\r\n"));
    assert!(text.contains("To: <sip:redial@127.0.0.1>;tag="));
    // and it decodes as a response itself
    assert!(decode(text.as_bytes()).is_ok());
}

#[test]
fn responses_are_never_answered() {
    let raw = "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-1\r\nFrom: <sip:a@x>;tag=1\r\nTo: <sip:b@x>\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\nContent-Length: 5\r\n\r\n";
    let e = decode(raw.as_bytes()).unwrap_err();
    assert!(e.reply.is_none());
}

#[test]
fn oversized_is_513() {
    let body = "a".repeat(MAX_MESSAGE_SIZE);
    let raw = with("Content-Length: 0\r\n\r\n", &format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    let e = decode(raw.as_bytes()).unwrap_err();
    assert!(matches!(e.kind, DecodeErrorKind::TooLarge { .. }));
    assert_eq!(status_of(&e), Some(513));
    // Huge headers with no end in the first 64 KiB: not addressable, dropped.
    let raw = with("Max-Forwards: 70\r\n", &format!("X-Big: {}\r\n", "b".repeat(MAX_MESSAGE_SIZE)));
    assert!(decode(raw.as_bytes()).unwrap_err().reply.is_none());
}

#[test]
fn garbage_is_dropped() {
    for g in [&b""[..], b"\r\n\r\n", b"\x00\x01\x02\xff", b"hello", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", b"SIP/2.0 abc\r\n\r\n"] {
        let e = decode(g).unwrap_err();
        assert!(e.reply.is_none(), "{g:?}");
    }
}

#[test]
fn non_utf8_header_is_refused() {
    let raw = with("Max-Forwards: 70\r\n", "X-Bin: \u{1}\r\n").into_bytes();
    let mut raw = raw;
    let i = raw.iter().position(|&b| b == 1).unwrap();
    raw[i] = 0xff;
    assert!(matches!(decode(&raw).unwrap_err().kind, DecodeErrorKind::NotUtf8 { .. }));
}

#[test]
fn encode_fixes_content_length() {
    let mut m = decode(OPTIONS.as_bytes()).unwrap();
    *m.body_mut() = b"hello".to_vec();
    let out = String::from_utf8(encode(&m)).unwrap();
    assert!(out.contains("Content-Length: 5\r\n"), "{out}");
    assert!(out.ends_with("\r\n\r\nhello"));
    let back = decode(out.as_bytes()).unwrap();
    assert_eq!(back.body(), b"hello");
}

#[test]
fn binary_bodies_survive_encoding() {
    // Found by the fuzz target: rsip prints bodies through from_utf8_lossy.
    let raw = with("Content-Length: 0\r\n\r\n", "Content-Length: 4\r\n\r\n");
    let mut raw = raw.into_bytes();
    raw.extend_from_slice(&[b'v', b'=', 0xff, b'\n']);
    let m = decode(&raw).unwrap();
    assert_eq!(m.body(), &[b'v', b'=', 0xff, b'\n']);
    let again = decode(&encode(&m)).unwrap();
    assert_eq!(again.body(), m.body());
}

#[test]
fn unknown_status_codes_keep_their_reason() {
    let raw = "SIP/2.0 299 Fine Thanks\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-1\r\nFrom: <sip:a@x>;tag=1\r\nTo: <sip:b@x>;tag=2\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n";
    let out = String::from_utf8(encode(&decode(raw.as_bytes()).unwrap())).unwrap();
    assert!(out.starts_with("SIP/2.0 299 Fine Thanks\r\n"), "{out}");
}

proptest::proptest! {
    #![proptest_config(proptest::test_runner::Config::with_cases(2000))]
    #[test]
    fn never_panics_on_bytes(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..600)) {
        let _ = decode(&bytes);
    }

    #[test]
    fn never_panics_on_mutated_messages(cut in 0usize..OPTIONS.len(), byte in proptest::num::u8::ANY, pos in 0usize..OPTIONS.len()) {
        let mut b = OPTIONS.as_bytes().to_vec();
        b[pos] = byte;
        let _ = decode(&b[..cut]);
        let _ = decode(&b);
    }
}

/// Every RFC 4475 message through the decoder alone (the integration test `rfc4475`
/// checks the answers of the running server): the valid requests decode, and the
/// invalid ones the RFC wants refused with a status are refused with one.
#[test]
fn rfc4475_messages_decode_or_are_refused_as_the_rfc_says() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/rfc4475/msgs");
    let outcome = |name: &str| {
        let bytes = std::fs::read(dir.join(format!("{name}.sip"))).unwrap();
        match decode(&bytes) {
            Ok(_) => Ok(()),
            Err(e) => Err((status_of(&e), e.kind.to_string())),
        }
    };
    let mut wrong = Vec::new();
    for name in ["wsinv", "esc01", "escnull", "lwsdisp", "longreq", "dblreq", "semiuri", "transports", "mpart01", "unreason", "noreason", "inv2543"] {
        if outcome(name).is_err() {
            wrong.push(format!("{name} is valid (RFC 4475 §3.1.1): {:?}", outcome(name)));
        }
    }
    let refused = [
        ("badinv01", 400),
        ("lwsruri", 400),
        ("lwsstart", 400),
        ("trws", 400),
        ("baddn", 400),
        ("badvers", 505),
        ("insuf", 400),
        ("quotbal", 400),
        ("ltgtruri", 400),
        ("escruri", 400),
        ("mismatch01", 400),
        ("scalar02", 400),
        ("multi01", 400),
    ];
    for (name, status) in refused {
        let got = outcome(name);
        if got.as_ref().map_err(|e| e.0) != Err(Some(status)) {
            wrong.push(format!("{name}: want {status}, got {got:?}"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn lws_around_separators_is_taken_out() {
    // RFC 3261 §25.1: SLASH, SEMI, EQUAL may have LWS around them; quoted text is kept.
    let raw = with(
        "Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-1;rport",
        "Via: SIP / 2.0 / UDP   my_host.example.com:5070 ; branch = z9hG4bK-1 ;\r\n  rport",
    )
    .replace("From: <sip:probe@127.0.0.1>;tag=a1", "From: \"A  B\"   <sip:probe@127.0.0.1> ;  tag = a1");
    let SipMessage::Request(r) = decode(raw.as_bytes()).unwrap() else { panic!("not a request") };
    assert_eq!(header_value(&r.headers, "Via").unwrap(), "SIP/2.0/UDP my_host.example.com:5070;branch=z9hG4bK-1;rport");
    assert_eq!(header_value(&r.headers, "From").unwrap(), "\"A  B\" <sip:probe@127.0.0.1>;tag=a1");
    // Empty Via params are not LWS: 400.
    let e = decode(with(";rport\r\n", ";;rport\r\n").as_bytes()).unwrap_err();
    assert_eq!(e.kind, DecodeErrorKind::BadVia);
    assert_eq!(status_of(&e), Some(400));
}

/// A request built straight from the checked head is the one rsip makes of the canonical
/// text: the same Ok value, or the same refusal, for every RFC 4475 message, the plain and
/// compact-form requests here, and mutations of a REGISTER with digest credentials.
#[test]
fn direct_requests_equal_rsip_decoding() {
    use rand::{Rng, SeedableRng};
    let same = |bytes: &[u8]| match (decode::decode_checked(bytes, true), decode::decode_checked(bytes, false)) {
        (Ok(a), Ok(b)) => a == b,
        (Err(a), Err(b)) => a.kind == b.kind,
        _ => false,
    };
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/rfc4475/msgs");
    let mut wrong = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        if !same(&bytes) {
            wrong.push(path.display().to_string());
        }
    }
    let register = "REGISTER sip:127.0.0.1:5060 SIP/2.0\r\n\
Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-1-2;rport\r\n\
From: <sip:user7@127.0.0.1>;tag=1SIPpTag001\r\n\
To: <sip:user7@127.0.0.1>\r\n\
Call-ID: 1-12@127.0.0.1\r\n\
CSeq: 2 REGISTER\r\n\
Contact: <sip:user7@127.0.0.1:5070>\r\n\
Authorization: Digest username=\"user7\",realm=\"redial\",uri=\"sip:127.0.0.1:5060\",nonce=\"00ab\",response=\"0123\",algorithm=MD5,qop=auth,nc=00000001,cnonce=\"6b8b4567\"\r\n\
Expires: 3600\r\n\
Max-Forwards: 70\r\n\
Content-Length: 0\r\n\r\n";
    for msg in [OPTIONS, register, &with("Via:", "v:"), &register.replace("sip:user7@", "sip:first.last@")] {
        if !same(msg.as_bytes()) {
            wrong.push(msg.lines().next().unwrap_or("").to_string());
        }
    }
    let mut rng = rand::rngs::StdRng::seed_from_u64(20);
    for _ in 0..3000 {
        let mut b = register.as_bytes().to_vec();
        for _ in 0..rng.random_range(1..4) {
            let pos = rng.random_range(0..b.len());
            let alphabet = b"<>;:@ ,.\"\\%=x1\r\n\t";
            b[pos] = alphabet[rng.random_range(0..alphabet.len())];
        }
        if !same(&b) {
            wrong.push(String::from_utf8_lossy(&b).into_owned());
        }
    }
    assert!(wrong.is_empty(), "{} differ, first: {:?}", wrong.len(), wrong.first());
}

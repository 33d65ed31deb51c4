use super::*;

/// What redial offers a browser (ICE-lite, DTLS actpass, four formats).
const OUR_WEBRTC_OFFER: &str = "v=0\r\n\
o=str0m-1 5000 2 IN IP4 0.0.0.0\r\n\
s=-\r\n\
t=0 0\r\n\
a=group:BUNDLE 0\r\n\
a=ice-lite\r\n\
m=audio 40000 UDP/TLS/RTP/SAVPF 0 8 111 101\r\n\
c=IN IP4 127.0.0.1\r\n\
a=mid:0\r\n\
a=ice-ufrag:ourU\r\n\
a=ice-pwd:ourpasswordourpassword\r\n\
a=fingerprint:sha-256 AA:BB:CC\r\n\
a=setup:actpass\r\n\
a=sendrecv\r\n\
a=rtcp-mux\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:111 opus/48000/2\r\n\
a=fmtp:111 minptime=10;useinbandfec=1\r\n\
a=rtcp-fb:111 transport-cc\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=candidate:1 1 udp 2130706431 127.0.0.1 40000 typ host\r\n";

/// The browser's answer that set the call up: it took `active`.
const BROWSER_ANSWER: &str = "v=0\r\n\
o=- 77 2 IN IP4 127.0.0.1\r\n\
s=-\r\n\
t=0 0\r\n\
m=audio 9 UDP/TLS/RTP/SAVPF 0 101\r\n\
c=IN IP4 0.0.0.0\r\n\
a=mid:0\r\n\
a=setup:active\r\n\
a=sendrecv\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\n";

/// A browser's re-offer (JsSIP `hold()`): same ICE, `actpass`, and its own format list.
fn browser_reoffer(direction: &str) -> String {
    format!(
        "v=0\r\n\
o=- 77 3 IN IP4 127.0.0.1\r\n\
s=-\r\n\
t=0 0\r\n\
m=audio 9 UDP/TLS/RTP/SAVPF 111 0 8 101 126\r\n\
c=IN IP4 0.0.0.0\r\n\
a=mid:0\r\n\
a=setup:actpass\r\n\
a={direction}\r\n\
a=rtpmap:111 opus/48000/2\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=rtpmap:126 telephone-event/48000\r\n"
    )
}

fn attrs(sdp: &str, key: &str) -> Vec<String> {
    sdp.lines().filter_map(|l| l.strip_prefix("a=")).filter(|l| l.split(':').next() == Some(key)).map(str::to_owned).collect()
}

fn has_line(sdp: &str, line: &str) -> bool {
    sdp.lines().any(|l| l == line)
}

#[test]
fn a_browser_hold_is_answered_recvonly_keeping_ice_fingerprint_and_dtls_role() {
    let held = reanswer(OUR_WEBRTC_OFFER, Some(BROWSER_ANSWER), &browser_reoffer("sendonly")).unwrap();
    assert!(has_line(&held, "a=recvonly"), "{held}");
    assert!(!has_line(&held, "a=sendrecv"));
    // The established association stays: the browser was active, so we stay passive.
    assert_eq!(attrs(&held, "setup"), ["setup:passive"]);
    for kept in ["a=ice-ufrag:ourU", "a=ice-pwd:ourpasswordourpassword", "a=fingerprint:sha-256 AA:BB:CC", "a=ice-lite", "a=rtcp-mux", "a=mid:0"] {
        assert!(has_line(&held, kept), "{kept} kept: {held}");
    }
    assert!(held.contains("a=candidate:1 1 udp 2130706431 127.0.0.1 40000 typ host"));
    assert!(held.contains("m=audio 40000 UDP/TLS/RTP/SAVPF 0 8 111 101"), "every format the offer still lists: {held}");
    assert!(held.contains("o=str0m-1 5000 3 IN IP4"), "changed, so the version goes up: {held}");

    // Resume: sendrecv again, version up once more, still passive.
    let resumed = reanswer(&held, Some(BROWSER_ANSWER), &browser_reoffer("sendrecv")).unwrap();
    assert!(has_line(&resumed, "a=sendrecv") && !has_line(&resumed, "a=recvonly"), "{resumed}");
    assert_eq!(attrs(&resumed, "setup"), ["setup:passive"]);
    assert!(resumed.contains("o=str0m-1 5000 4 IN IP4"));

    // The same offer again changes nothing: same version.
    let again = reanswer(&resumed, Some(BROWSER_ANSWER), &browser_reoffer("sendrecv")).unwrap();
    assert_eq!(again, resumed);
}

#[test]
fn inactive_is_answered_inactive_and_the_dtls_role_follows_the_peer() {
    let answer = reanswer(OUR_WEBRTC_OFFER, Some(&BROWSER_ANSWER.replace("setup:active", "setup:passive")), &browser_reoffer("inactive")).unwrap();
    assert!(has_line(&answer, "a=inactive"), "{answer}");
    assert_eq!(attrs(&answer, "setup"), ["setup:active"], "the peer was passive, so we stay active");
    // An offer naming its role gets the other one.
    let named = reanswer(OUR_WEBRTC_OFFER, None, &browser_reoffer("sendonly").replace("setup:actpass", "setup:active")).unwrap();
    assert_eq!(attrs(&named, "setup"), ["setup:passive"]);
}

#[test]
fn a_sip_softphone_hold_is_answered_recvonly_on_the_same_port_with_only_offered_formats() {
    let ours = "v=0\r\no=redial 42 1 IN IP4 127.0.0.1\r\ns=redial\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
m=audio 30000 RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-16\r\na=ptime:20\r\na=sendrecv\r\n";
    // baresip/SIPp hold: the same media, sendonly; only PCMU and telephone-event listed.
    let offer = "v=0\r\no=agent 7 2 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
m=audio 6000 RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\na=sendonly\r\n";
    let answer = reanswer(ours, None, offer).unwrap();
    assert!(answer.contains("m=audio 30000 RTP/AVP 0 101"), "{answer}");
    assert!(!answer.contains("PCMA"), "a format the offer dropped is not answered");
    assert!(has_line(&answer, "a=recvonly") && !has_line(&answer, "a=sendrecv"));
    assert!(has_line(&answer, "a=fmtp:101 0-16"));
    assert!(answer.contains("o=redial 42 2 IN IP4"));
    assert!(attrs(&answer, "setup").is_empty(), "no DTLS, no setup attribute added");

    // RFC 2543 hold (c=0.0.0.0, no direction) is a sendrecv offer by its attributes; the
    // media layer sees the null address. A session-level direction counts too.
    let session_level = offer.replace("a=sendonly\r\n", "").replace("t=0 0\r\n", "t=0 0\r\na=inactive\r\n");
    assert!(has_line(&reanswer(ours, None, &session_level).unwrap(), "a=inactive"));
}

#[test]
fn an_offer_or_description_that_does_not_parse_is_an_error() {
    assert!(matches!(reanswer(OUR_WEBRTC_OFFER, None, "garbage"), Err(SdpError::Syntax { .. })));
    assert_eq!(reanswer("garbage", None, &browser_reoffer("sendonly")).unwrap(), "garbage", "repeated when not editable");
    let video_only = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=video 9 RTP/AVP 96\r\n";
    assert_eq!(reanswer(OUR_WEBRTC_OFFER, None, video_only), Err(SdpError::NoAudio));
}

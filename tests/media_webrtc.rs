//! Browser (WebRTC) media legs in their real task over loopback UDP, against a str0m
//! peer playing the browser (full ICE, controlling, Chrome's codec order) on its own
//! socket: a certificate that does not match the answer's fingerprint, and the
//! carrier's RFC 4733 digits reaching the browser through a bridge.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use redial::amd::AmdConfig;
use redial::media::call::{MediaConfig, MediaEngine, MediaEvent, MediaLeg};
use redial::media::dtmf;
use redial::media::rtp::RtpPacket;
use redial::media::Codec;
use str0m::change::SdpOffer;
use str0m::format::Codec as RtcCodec;
use str0m::media::Frequency;
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, Input, Output, Rtc};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::time::timeout;

const LO: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
/// Generous: DTLS on a loaded 2-core machine in a debug build.
const WAIT: Duration = Duration::from_secs(20);

fn engine() -> MediaEngine {
    let probe = std::net::UdpSocket::bind((LO, 0)).unwrap();
    let base = probe.local_addr().unwrap().port() & !1;
    drop(probe);
    let start = base.saturating_sub(40).max(1024);
    let cfg = MediaConfig { bind: LO, advertised: LO, media_timeout: Duration::from_secs(60), amd: AmdConfig::default() };
    MediaEngine::with_config(cfg, start..=start + 39).unwrap()
}

/// What the browser peer saw.
#[derive(Debug)]
enum Seen {
    Connected,
    Data { codec: RtcCodec, payload: Vec<u8> },
    Error(String),
}

/// A str0m peer answering `offer` on a loopback socket; returns its (possibly
/// tampered) answer and what it sees, driven by a task of its own.
async fn browser(offer: &str, tamper: impl FnOnce(String) -> String) -> (String, mpsc::UnboundedReceiver<Seen>) {
    let sock = UdpSocket::bind((LO, 0)).await.unwrap();
    let local = sock.local_addr().unwrap();
    let mut cfg = Rtc::builder().clear_codecs().enable_opus(true, false).enable_pcmu(true, false).enable_pcma(true, false);
    cfg.codec_config().add_config(126.into(), None, RtcCodec::Tele, Frequency::EIGHT_KHZ, None, Default::default());
    let mut rtc = cfg.build(Instant::now());
    rtc.add_local_candidate(Candidate::host(local, "udp").unwrap());
    let answer = rtc.sdp_api().accept_offer(SdpOffer::from_sdp_string(offer).unwrap()).unwrap().to_sdp_string();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(drive(rtc, sock, local, tx));
    (tamper(answer), rx)
}

async fn drive(mut rtc: Rtc, sock: UdpSocket, local: SocketAddr, tx: mpsc::UnboundedSender<Seen>) {
    let mut buf = vec![0u8; 2048];
    loop {
        let deadline = loop {
            match rtc.poll_output() {
                Ok(Output::Timeout(t)) => break t,
                Ok(Output::Transmit(t)) => {
                    let _ = sock.send_to(&t.contents, t.destination).await;
                }
                Ok(Output::Event(Event::Connected)) => {
                    let _ = tx.send(Seen::Connected);
                }
                Ok(Output::Event(Event::MediaData(d))) => {
                    let _ = tx.send(Seen::Data { codec: d.params.spec().codec, payload: d.data.to_vec() });
                }
                Ok(Output::Event(_)) => {}
                Err(e) => {
                    let _ = tx.send(Seen::Error(e.to_string()));
                    return;
                }
            }
        };
        if tx.is_closed() {
            return;
        }
        let r = tokio::select! {
            r = sock.recv_from(&mut buf) => match r {
                Ok((n, from)) => match buf[..n].try_into() {
                    Ok(contents) => rtc.handle_input(Input::Receive(Instant::now(), Receive { proto: Protocol::Udp, source: from, destination: local, contents })),
                    Err(_) => Ok(()),
                },
                Err(_) => Ok(()),
            },
            _ = tokio::time::sleep_until(deadline.into()) => rtc.handle_input(Input::Timeout(Instant::now())),
        };
        if let Err(e) = r {
            let _ = tx.send(Seen::Error(e.to_string()));
            return;
        }
    }
}

async fn next_event(leg: &mut MediaLeg) -> MediaEvent {
    timeout(WAIT, leg.events.recv()).await.expect("no media event in time").expect("events closed")
}

#[tokio::test]
async fn a_browser_whose_certificate_does_not_match_the_answer_fails_its_leg_before_media() {
    let e = engine();
    let mut leg = e.open().await.unwrap();
    let offer = leg.offer_webrtc().unwrap();
    // Another certificate's fingerprint in the answer: the DTLS peer is not who the SDP says.
    let (answer, _seen) = browser(&offer, |a| {
        a.lines()
            .map(|l| match l.strip_prefix("a=fingerprint:sha-256 ") {
                Some(fp) => format!("a=fingerprint:sha-256 {}\r\n", fp.chars().rev().collect::<String>()),
                None => format!("{l}\r\n"),
            })
            .collect()
    })
    .await;
    leg.accept_answer(&answer).unwrap();
    let ev = loop {
        match next_event(&mut leg).await {
            MediaEvent::FirstPacket => continue,
            ev => break ev,
        }
    };
    match ev {
        MediaEvent::Failed { reason, set_up } => {
            assert!(reason.contains("fingerprint"), "{reason}");
            assert!(!set_up, "media never flowed");
        }
        other => panic!("expected the leg to fail, got {other:?}"),
    }
    leg.close();
}

#[tokio::test]
async fn the_carriers_rfc4733_digits_reach_the_browser_as_telephone_events() {
    let e = engine();
    let mut browser_leg = e.open().await.unwrap();
    let offer = browser_leg.offer_webrtc().unwrap();
    let (answer, mut seen) = browser(&offer, |a| a).await;
    browser_leg.accept_answer(&answer).unwrap();
    let connected = timeout(WAIT, async {
        loop {
            match seen.recv().await {
                Some(Seen::Connected) => return,
                Some(Seen::Error(e)) => panic!("browser peer: {e}"),
                Some(_) => {}
                None => panic!("browser peer gone"),
            }
        }
    })
    .await;
    assert!(connected.is_ok(), "the browser peer never connected");

    // The carrier: a plain RTP leg whose remote is this socket.
    let phone = UdpSocket::bind((LO, 0)).await.unwrap();
    let mut carrier = e.open().await.unwrap();
    carrier.offer(&[Codec::Pcmu]);
    let port = phone.local_addr().unwrap().port();
    carrier
        .accept_answer(&format!(
            "v=0\r\no=c 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio {port} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n"
        ))
        .unwrap();
    browser_leg.bridge(&mut carrier).unwrap();
    let to = (LO, carrier.local_port());
    let (mut seq, mut ts) = (100u16, 8000u32);
    let mut send = |pt: u8, marker: bool, at: u32, payload: &[u8]| {
        let p = RtpPacket { payload_type: pt, marker, sequence: seq, timestamp: at, ssrc: 0xC0FF_EE00, payload: payload.to_vec().into() };
        seq = seq.wrapping_add(1);
        p.to_bytes().unwrap()
    };
    // Audio until the browser hears it (the bridge is in place on the task).
    let heard = timeout(WAIT, async {
        loop {
            phone.send_to(&send(0, false, ts, &[0x55; 160]), to).await.unwrap();
            ts += 160;
            if let Ok(Some(Seen::Data { codec: RtcCodec::PCMU, .. })) = timeout(Duration::from_millis(40), seen.recv()).await {
                return;
            }
        }
    })
    .await;
    assert!(heard.is_ok(), "the carrier's audio never reached the browser");

    // Key 5 for 100 ms, as a carrier sends it: reports every 20 ms, the end report three times.
    let digit = dtmf::generate('5', Duration::from_millis(100), 10, 8000).unwrap();
    for p in &digit {
        phone.send_to(&send(101, p.marker, ts, &p.payload), to).await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let reports = timeout(WAIT, async {
        let mut reports: Vec<Vec<u8>> = vec![];
        loop {
            match seen.recv().await {
                Some(Seen::Data { codec: RtcCodec::Tele, payload }) => {
                    let end = payload.len() >= 4 && payload[payload.len() - 3] & 0x80 != 0;
                    reports.push(payload);
                    if end {
                        return reports;
                    }
                }
                Some(Seen::Error(e)) => panic!("browser peer: {e}"),
                Some(_) => {}
                None => panic!("browser peer gone"),
            }
        }
    })
    .await
    .expect("no telephone-event with the end bit reached the browser");
    assert!(reports.iter().all(|p| p.len() % 4 == 0 && p[0] == 5), "{reports:?}");
    browser_leg.close();
    carrier.close();
}

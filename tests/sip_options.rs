//! OPTIONS in (SIPp → redial, UDP and TCP) and out (redial's keep-alive to a SIPp carrier).

mod common;

use std::time::Duration;

use common::{Setup, Sipp};

#[test]
fn options_in_over_udp_and_tcp() {
    let r = Setup::new().start();
    let udp = Sipp::new("options_uac.xml").remote(r.sip).calls(20).rate(100).run();
    assert!(udp.ok(), "{udp}");
    let tcp = Sipp::new("options_uac.xml").remote(r.sip).calls(20).rate(100).tcp().run();
    assert!(tcp.ok(), "{tcp}");
}

#[test]
fn keepalive_options_out_reach_the_carrier() {
    // The carrier listens first; redial pings it every second.
    let carrier = Sipp::new("options_uas.xml").calls(2).timeout(Duration::from_secs(10)).trace_msg().spawn();
    let carrier_port = carrier.port();
    let _r = Setup::new()
        .profile(
            "carrier1",
            &format!(
                "proxy = \"sip:127.0.0.1:{carrier_port}\"\ndomain = \"carrier.test\"\nregister = false\noptions_ping = \"1s\"\n"
            ),
        )
        .start();
    let out = carrier.wait();
    assert!(out.ok(), "{out}");
    assert_eq!(out.received("OPTIONS "), 2, "{}", out.messages);
}

//! Texts customers send back (inbound SIP MESSAGE, RFC 3428), against SIPp
//! as the carrier: from the carrier's address the text is answered 200 and
//! published as an `sms.received` event (sender, our number, trunk, text),
//! replayed by `GET /v1/events`; from any other address it is refused 403
//! and publishes nothing.

mod common;

use common::api::sse;
use common::{Setup, Sipp};

const TOKEN: &str = "sms-inbound-token";
const CARRIER_IP: &str = "127.0.0.2";

#[test]
fn a_carriers_text_is_accepted_and_published_and_anyone_elses_is_refused() {
    let r = Setup::new()
        .profile("carrier1", &format!("proxy = \"sip:{CARRIER_IP}:5060\"\ndomain = \"carrier.test\"\nregister = false\noptions_ping = \"0\"\n"))
        .extra_toml(&format!("[[tokens]]\nname = \"crm\"\nsecret = \"{TOKEN}\"\nscopes = [\"admin\"]\n"))
        .start();

    let stranger = Sipp::new("sms_customer_text.xml").local_ip("127.0.0.1").remote(r.sip).trace_msg().run();
    assert!(stranger.ok(), "{stranger}");
    assert!(stranger.messages.contains("SIP/2.0 403"), "{}", stranger.messages);

    let carrier = Sipp::new("sms_customer_text.xml").local_ip(CARRIER_IP).remote(r.sip).trace_msg().run();
    assert!(carrier.ok(), "{carrier}");
    assert!(carrier.messages.contains("SIP/2.0 200"), "{}", carrier.messages);

    // Everything from the start up to a later change: the refused text
    // published nothing.
    let body = serde_json::json!({"phone": "+15551112222", "queue": "default"}).to_string();
    let (st, cb) = common::api::request(r.http.port(), "POST", "/v1/callbacks", Some(TOKEN), Some(&body), &[]).unwrap();
    assert_eq!(st, 201, "{cb}");
    let evs = sse(r.http.port(), TOKEN, Some(0), |e| e.iter().any(|(_, _, d)| d["type"] == "callback.created"));
    let texts: Vec<_> = evs.iter().filter(|(_, ev, _)| ev == "sms").collect();
    assert_eq!(texts.len(), 1, "{evs:?}");
    let d = &texts[0].2;
    assert_eq!(d["type"], "sms.received");
    assert_eq!((d["from"].as_str(), d["to"].as_str(), d["trunk"].as_str()), (Some("+15557654321"), Some("+15550100"), Some("carrier1")), "{d}");
    assert_eq!(d["text"].as_str().map(str::trim_end), Some("Please call me after 5pm instead, thanks"), "{d}");
    assert!(d["at"].as_str().is_some_and(|a| a.ends_with('Z')), "{d}");
}

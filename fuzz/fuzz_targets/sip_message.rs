//! The codec boundary must never panic: decode any bytes, and re-encode and re-decode
//! whatever it accepts (the TCP framer gets the same bytes).
#![no_main]

use libfuzzer_sys::fuzz_target;
use redial::sip::codec;
use redial::sip::transport::framer::StreamFramer;

fuzz_target!(|data: &[u8]| {
    match codec::decode(data) {
        Ok(msg) => {
            let bytes = codec::encode(&msg);
            // What we print we must read back.
            let again = codec::decode(&bytes).expect("re-decode of our own encoding");
            assert_eq!(again.body(), msg.body());
        }
        Err(e) => {
            if let Some(r) = e.reply {
                let _ = codec::encode(&rsip::SipMessage::Response(*r));
            }
        }
    }
    let mut f = StreamFramer::new();
    f.push(data);
    while let Ok(Some(_)) = f.next_frame() {}
});

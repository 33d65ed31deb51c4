//! The digest header parsers (WWW-Authenticate / Authorization values) never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use redial::sip::auth::challenge::{parse_authorization, parse_challenge};

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = parse_challenge(s);
        let _ = parse_authorization(s);
    }
});

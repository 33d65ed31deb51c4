//! cargo-fuzz target: see `targets::sip_message` (the codec boundary must never
//! panic; what it accepts re-encodes and re-decodes; the TCP framer gets the
//! same bytes).
#![no_main]

#[path = "targets.rs"]
mod targets;

libfuzzer_sys::fuzz_target!(|data: &[u8]| targets::sip_message(data));

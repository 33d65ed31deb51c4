//! cargo-fuzz target: see `targets::rtp_rtcp`.
#![no_main]

#[path = "targets.rs"]
mod targets;

libfuzzer_sys::fuzz_target!(|data: &[u8]| targets::rtp_rtcp(data));

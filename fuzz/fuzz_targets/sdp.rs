//! cargo-fuzz target: see `targets::sdp`.
#![no_main]

#[path = "targets.rs"]
mod targets;

libfuzzer_sys::fuzz_target!(|data: &[u8]| targets::sdp(data));

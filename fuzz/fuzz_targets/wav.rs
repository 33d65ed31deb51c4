//! cargo-fuzz target: see `targets::wav`.
#![no_main]

#[path = "targets.rs"]
mod targets;

libfuzzer_sys::fuzz_target!(|data: &[u8]| targets::wav(data));

//! cargo-fuzz target: see `targets::rfc4733`.
#![no_main]

#[path = "targets.rs"]
mod targets;

libfuzzer_sys::fuzz_target!(|data: &[u8]| targets::rfc4733(data));

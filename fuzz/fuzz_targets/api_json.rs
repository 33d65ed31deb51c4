//! cargo-fuzz target: see `targets::api_json`.
#![no_main]

#[path = "targets.rs"]
mod targets;

libfuzzer_sys::fuzz_target!(|data: &[u8]| targets::api_json(data));

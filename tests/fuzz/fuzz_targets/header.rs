#![no_main]
//! Fuzz target: see checks::header in tests/fuzz/checks.rs.

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::header(data));

#![no_main]
//! Fuzz target: see checks::dns_answer in tests/fuzz/checks.rs.

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::dns_answer(data));

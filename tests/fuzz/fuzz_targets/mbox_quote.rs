#![no_main]
//! Fuzz target: see checks::mbox_quote in tests/fuzz/checks.rs.

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::mbox_quote(data));

#![no_main]
//! Fuzz target: see checks::smtp_bdat in tests/fuzz/checks.rs.

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::smtp_bdat(data));

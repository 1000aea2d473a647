#![no_main]
//! Fuzz target: see checks::dsn_xtext in tests/fuzz/checks.rs.

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::dsn_xtext(data));

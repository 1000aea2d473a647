#![no_main]
//! Fuzz target: see checks::dsn_params in tests/fuzz/checks.rs.

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::dsn_params(data));

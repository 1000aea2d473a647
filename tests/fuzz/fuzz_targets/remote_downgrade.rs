#![no_main]
//! Fuzz target: see checks::remote_downgrade in tests/fuzz/checks.rs.

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::remote_downgrade(data));

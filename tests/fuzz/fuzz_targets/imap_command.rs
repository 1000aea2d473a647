#![no_main]
//! Fuzz target: see checks::imap_command in tests/fuzz/checks.rs.

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::imap_command(data));

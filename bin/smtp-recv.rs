//! smtp-recv: receive mail via SMTP on descriptors 0 and 1 (smtp-recv(8)).
//! The program lives in lib/smtp (PROG, USAGE, main), which tcp-serve also
//! links to run a session without exec.
//!
//! No Rust `main`: a session is short and this program starts once per
//! connection under inetd or tcpserver, so it skips the start-up work it
//! does not need (sys::no_main_start). A panic still exits 101.
#![cfg_attr(not(test), no_main)]

// SAFETY: the program's one C entry point; no other symbol is named main.
#[cfg(not(test))]
#[allow(unsafe_code)]
#[no_mangle]
pub extern "C" fn main(_argc: i32, _argv: *const *const u8) -> i32 {
    pipemail::sys::no_main_start();
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    std::panic::catch_unwind(|| pipemail::smtp::main(&args)).unwrap_or(101)
}

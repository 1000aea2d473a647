//! smtp-recv: receive mail via SMTP on descriptors 0 and 1 (smtp-recv(8)).
//! The program lives in lib/smtp (PROG, USAGE, main), which tcp-serve also
//! links to run a session without exec.

fn main() {
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    std::process::exit(pipemail::smtp::main(&args));
}

//! pop3-login: POP3 authorization, then checkpassword and pop3d
//! (pop3-login(8)).

use std::os::unix::ffi::OsStringExt;

const PROG: &str = "pop3-login";
const USAGE: &str = "pop3-login hostname checkprog prog...";

fn main() {
    pipemail::exit::set_prog(PROG, true);
    pipemail::sys::signal_ignore(libc::SIGPIPE, true);
    let mut args = std::env::args_os().skip(1);
    let host = args.next().map(|h| h.into_vec()).unwrap_or_default();
    let prog: Vec<std::ffi::OsString> = args.collect();
    if host.is_empty() || prog.len() < 2 || host.iter().any(|&c| c <= b' ' || c == 0x7f) {
        pipemail::exit::usage(USAGE);
    }
    std::process::exit(pipemail::pop3::login::run(&host, &prog))
}

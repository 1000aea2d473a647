//! remote-send: delivers the message on fd 0 to a remote host over SMTP,
//! reporting as qmail-remote does (remote-send(8)).

use pipemail::{exit, remote};
use std::os::unix::ffi::OsStringExt;

const PROG: &str = "remote-send";
const USAGE: &str = "remote-send host sender recip [recip...]";

fn main() {
    exit::set_prog(PROG, false);
    let args: Vec<Vec<u8>> = std::env::args_os().skip(1).map(|a| a.into_vec()).collect();
    if args.len() < 3 {
        exit::usage(USAGE);
    }
    let report = remote::run(&args[0], &args[1], &args[2..]);
    // Always exit 0: the result is in the report (qmail-remote's interface).
    if let Err(e) = pipemail::sys::write_all(1, &report.encode()) {
        exit::die_sys(exit::TEMP, &[b"unable to write the report"], &e);
    }
}

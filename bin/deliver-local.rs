//! deliver-local: deliver the message on fd 0 to one local recipient
//! (deliver-local(8)). The one-line report goes to stdout.

use pipemail::{deliver, exit};
use std::os::unix::ffi::OsStringExt;

const PROG: &str = "deliver-local";
const USAGE: &str = "deliver-local sender recipient";

fn main() {
    exit::set_prog(PROG, false);
    let args: Vec<Vec<u8>> = std::env::args_os().skip(1).map(|a| a.into_vec()).collect();
    if args.len() != 2 {
        exit::usage(USAGE);
    }
    let (code, mut report) = deliver::deliver_local(&args[0], &args[1]);
    report.push(b'\n');
    let _ = pipemail::sys::write_all(1, &report);
    std::process::exit(code)
}

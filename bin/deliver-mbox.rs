//! deliver-mbox: stdin to an mbox file, locked, with From_ quoting
//! (deliver-mbox(8)).

use pipemail::{deliver, exit, mbox, sys};
use std::os::unix::ffi::OsStringExt;

const PROG: &str = "deliver-mbox";
const USAGE: &str = "deliver-mbox file";

fn main() {
    exit::set_prog(PROG, false);
    let args: Vec<Vec<u8>> = exit::operands(USAGE)
        .into_iter()
        .map(|a| a.into_vec())
        .collect();
    if args.len() != 1 || args[0].is_empty() {
        exit::usage(USAGE);
    }
    let pre = deliver::env_lines(&["RPLINE", "DTLINE"]);
    let from = match std::env::var_os("UFLINE") {
        Some(u) if !u.is_empty() => deliver::line_end(u.into_vec()),
        _ => {
            let sender = std::env::var_os("SENDER")
                .map(|s| s.into_vec())
                .unwrap_or_default();
            deliver::ufline(&sender, sys::now())
        }
    };
    let file = std::path::PathBuf::from(std::ffi::OsString::from_vec(args[0].clone()));
    if let Err(f) = mbox::deliver(&file, &from, &pre, 0, deliver::MBOX_LOCK_SECS * 1000) {
        exit::die(f.code, &[&f.text]);
    }
}

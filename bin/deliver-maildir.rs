//! deliver-maildir: stdin to a Maildir, crash-safe (deliver-maildir(8)).

use pipemail::{deliver, exit, maildir};
use std::os::unix::ffi::OsStringExt;

const PROG: &str = "deliver-maildir";
const USAGE: &str = "deliver-maildir dir";

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
    let dir = std::path::PathBuf::from(std::ffi::OsString::from_vec(args[0].clone()));
    if let Err(f) = maildir::deliver(&dir, &pre, 0) {
        exit::die(f.code, &[&f.text]);
    }
}

//! forward: re-inject stdin to new recipients (forward(1)).

use pipemail::{deliver, exit};
use std::os::unix::ffi::OsStringExt;

const PROG: &str = "forward";
const USAGE: &str = "forward address...";

fn main() {
    exit::set_prog(PROG, false);
    let args: Vec<Vec<u8>> = std::env::args_os().skip(1).map(|a| a.into_vec()).collect();
    if args.is_empty() || args.iter().any(|a| a.is_empty() || a[0] == b'-') {
        exit::usage(USAGE);
    }
    let sender = match std::env::var_os("NEWSENDER").or_else(|| std::env::var_os("SENDER")) {
        Some(s) => s.into_vec(),
        None => exit::die(exit::PERM, &[b"neither NEWSENDER nor SENDER is set"]),
    };
    let pre = deliver::env_lines(&["DTLINE"]);
    match deliver::forward::forward(0, &pre, &sender, &args) {
        Ok(id) => exit::info(&[b"qp ", &id]),
        Err(f) => exit::die(f.code, &[&f.text]),
    }
}

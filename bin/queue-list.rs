//! queue-list: what is in the queue (queue-list(1)).

use pipemail::queuerun::{ctl, store::Dirs};
use pipemail::{exit, sys};

const PROG: &str = "queue-list";
const USAGE: &str = "queue-list [ -s ]";

fn main() {
    exit::set_prog(PROG, false);
    let mut counts = false;
    let mut p = lexopt::Parser::from_env();
    loop {
        match p.next() {
            Ok(Some(lexopt::Arg::Short('s'))) => counts = true,
            Ok(None) => break,
            _ => exit::usage(USAGE),
        }
    }
    let d = Dirs::new();
    let jobs = ctl::list(&d)
        .unwrap_or_else(|e| exit::die_sys(exit::TEMP, &[b"unable to read the queue"], &e));
    let now = pipemail::queuerun::now();
    let out = if counts {
        ctl::format_counts(&jobs, ctl::unprocessed(&d), now)
    } else {
        ctl::format_long(&jobs, now)
    };
    if let Err(e) = sys::write_all(1, &out) {
        exit::die_sys(exit::TEMP, &[b"unable to write output"], &e);
    }
}

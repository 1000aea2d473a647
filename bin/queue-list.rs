//! queue-list: what is in the queue (queue-list(1)).

use pipemail::queuerun::{ctl, mailq, store::Dirs};
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
    let now = pipemail::queuerun::now();
    let jobs = match ctl::list(&d) {
        Ok(j) => j,
        // Not the queue's user: the listing queue-run keeps for everyone.
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied && !counts => {
            match mailq::read(&d, now) {
                Ok((text, age)) => {
                    exit::info(&[format!("from queue/mailq, written {} s ago", age).as_bytes()]);
                    write(&text)
                }
                Err(e) => exit::die_sys(exit::TEMP, &[b"unable to read queue/mailq"], &e),
            }
            return;
        }
        Err(e) => exit::die_sys(exit::TEMP, &[b"unable to read the queue"], &e),
    };
    let out = if counts {
        ctl::format_counts(&jobs, ctl::unprocessed(&d), now)
    } else {
        ctl::format_long(&jobs, now)
    };
    write(&out)
}

fn write(out: &[u8]) {
    if let Err(e) = sys::write_all(1, out) {
        exit::die_sys(exit::TEMP, &[b"unable to write output"], &e);
    }
}

//! queue-ctl: asks queue-run to retry, hold, release, delete or bounce
//! messages, or to retry a domain (queue-ctl(8)).

use pipemail::queuerun::{ctl, valid_id};
use pipemail::{exit, parse};
use std::os::unix::ffi::OsStrExt;

const PROG: &str = "queue-ctl";
const USAGE: &str =
    "queue-ctl retry|hold|release|delete|bounce id...|all, queue-ctl etrn domain...";

fn main() {
    exit::set_prog(PROG, false);
    let args: Vec<Vec<u8>> = std::env::args_os()
        .skip(1)
        .map(|a| a.as_bytes().to_vec())
        .collect();
    let Some((verb, rest)) = args.split_first() else {
        exit::usage(USAGE)
    };
    let Some(letter) = ctl::verb_letter(verb) else {
        exit::usage(USAGE)
    };
    if rest.is_empty() {
        exit::usage(USAGE);
    }
    let mut out = Vec::new();
    for a in rest {
        let a = parse::trim(a);
        let ok = if letter == b'E' {
            !a.is_empty() && a.len() < 256 && a.iter().all(|&c| c > b' ' && c < 0x7f)
        } else {
            a == b"all" || valid_id(a)
        };
        if !ok {
            exit::die(exit::PERM, &[b"bad argument: ", a]);
        }
        out.push(letter);
        out.extend_from_slice(if a == b"all" && letter != b'E' {
            b"*"
        } else {
            a
        });
        out.push(b'\n');
    }
    // Each line is short: one write per argument keeps them whole in the fifo.
    for line in out.split_inclusive(|&c| c == b'\n') {
        if let Err(e) = ctl::send(line) {
            if e.raw_os_error() == Some(libc::ENXIO) {
                exit::die(exit::TEMP, &[b"queue-run is not running"]);
            }
            exit::die_sys(exit::TEMP, &[b"unable to write to queue/ctl"], &e);
        }
    }
}

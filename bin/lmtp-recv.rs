//! lmtp-recv: an LMTP server (RFC 2033) on descriptors 0 and 1 that
//! delivers each recipient through deliver-local (lmtp-recv(8)).
//! `lmtp-recv -u user`, started as root: the session runs as user and a
//! root helper starts each delivery as the recipient's account.

use pipemail::queuerun::run::account_ids;
use pipemail::{exit, lmtp, sys};
use std::os::unix::ffi::OsStrExt;

const PROG: &str = "lmtp-recv";
const USAGE: &str = "lmtp-recv [ -u user ]";

fn main() {
    exit::set_prog(PROG, true);
    let mut user = None;
    let mut p = lexopt::Parser::from_env();
    loop {
        match p.next() {
            Ok(Some(lexopt::Arg::Short('u'))) => match p.value() {
                Ok(v) => user = Some(v.as_bytes().to_vec()),
                Err(_) => exit::usage(USAGE),
            },
            Ok(None) => break,
            _ => exit::usage(USAGE),
        }
    }
    let root = sys::geteuid() == 0;
    let refuse = |why: &[u8]| -> ! {
        let _ = sys::write_timeout(1, b"421 4.3.0 lmtp-recv is not set up to run\r\n", 10);
        exit::die(exit::TEMP, &[why])
    };
    let helper = match (root, user) {
        (false, None) => None,
        (false, Some(_)) => refuse(b"-u needs root (see lmtp-recv(8))"),
        (true, None) => refuse(b"refusing to run as root without -u (see lmtp-recv(8))"),
        (true, Some(u)) => match account_ids(&u) {
            Some((0, _)) => refuse(b"refusing to run the session as root"),
            None => refuse(&[&b"unable to find user "[..], &u].concat()),
            Some(ids) => match lmtp::helper::split(ids) {
                Ok(sock) => Some(sock),
                Err(e) => exit::die_sys(exit::TEMP, &[b"unable to start the root helper"], &e),
            },
        },
    };
    std::process::exit(lmtp::server::run(0, 1, helper))
}

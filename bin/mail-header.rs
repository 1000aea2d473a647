//! mail-header: print header fields of the message on stdin (mail-header(1)).

use pipemail::{exit, header, sys};
use std::io::Write;
use std::os::unix::ffi::OsStringExt;

const PROG: &str = "mail-header";
const USAGE: &str = "mail-header [-a] [-d] name...";

fn main() {
    exit::set_prog(PROG, false);
    sys::signal_ignore(libc::SIGPIPE, false);
    let (mut all, mut decode, mut names) = (false, false, Vec::new());
    let mut p = lexopt::Parser::from_env();
    loop {
        use lexopt::Arg::*;
        match p.next() {
            Ok(None) => break,
            Ok(Some(Short('a'))) => all = true,
            Ok(Some(Short('d'))) => decode = true,
            Ok(Some(Value(v))) => names.push(v.into_vec()),
            _ => exit::usage(USAGE),
        }
    }
    if names.is_empty() {
        exit::usage(USAGE);
    }
    // A file on fd 0 gets its offset back, so a script can read it again.
    let at = sys::lseek(0, 0, libc::SEEK_CUR);
    let h = match header::read_header(pipemail::submit::input::Fd(0)) {
        Ok(h) => h,
        Err(e) => exit::die_sys(exit::TEMP, &[b"unable to read message"], &e),
    };
    if let Ok(at) = at {
        let _ = sys::lseek(0, at, libc::SEEK_SET);
    }
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut found = false;
    for n in &names {
        for v in header::values(&h, n, all) {
            found = true;
            let v = if decode { header::decode(&v) } else { v };
            let _ = out.write_all(&v).and_then(|_| out.write_all(b"\n"));
        }
    }
    if let Err(e) = out.flush() {
        exit::die_sys(exit::TEMP, &[b"unable to write output"], &e);
    }
    std::process::exit(if found { 0 } else { 1 })
}

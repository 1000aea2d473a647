//! Exit codes and the one-line diagnostics every program writes to fd 2.
//!
//! Grammar (skalibs/qmail): `PROG: fatal: unable to VERB OBJECT: errno text`.
//! Per-connection programs call [`set_prog`] with `pid = true` so every line
//! reads `PROG: pid N: LEVEL: ...`. Each line is one write(2).

use std::io;

pub const OK: i32 = 0;
pub const STOP: i32 = 99;
pub const PERM: i32 = 100;
pub const TEMP: i32 = 111;
pub const EXEC_FAIL: i32 = 126;
pub const EXEC_NOENT: i32 = 127;

/// The `PROG: ` (or `PROG: pid N: `) prefix; null until [`set_prog`].
/// A leaked box rather than a lock, so a forked child never waits on it.
static PREFIX: crate::sys::StaticBytes = crate::sys::StaticBytes::new();

/// Names the program in every diagnostic and chooses where logs go
/// (`crate::log`). With `pid` (per-connection programs): adds `pid N:`, and
/// takes a connection systemd passed as fd 3 as fds 0 and 1. A later call
/// replaces the name: a forked child that runs another program's linked
/// code (tcp-serve, relay-gate, local-spawn) logs under that name.
pub fn set_prog(prog: &str, pid: bool) {
    let mut p = prog.as_bytes().to_vec();
    p.extend_from_slice(b": ");
    if pid {
        crate::sys::adopt_listen_fd();
        p.extend_from_slice(format!("pid {}: ", std::process::id()).as_bytes());
    }
    PREFIX.set(p);
    crate::log::init(prog);
}

fn prefix() -> &'static [u8] {
    PREFIX.get().unwrap_or(b"pipemail: ")
}

/// In a forked child that runs another program's code (tcp-serve running
/// tls-wrap linked): names that program, with the child's pid.
pub fn rename_child(prog: &str) {
    let p = format!("{}: pid {}: ", prog, std::process::id());
    PREFIX.set(p.into_bytes());
}

/// One line to fd 2 in a single write (or to syslog, see `crate::log`):
/// prefix, level, the parts, newline.
/// Bytes that are not printable ASCII are escaped; the line is cut at 1000.
pub fn log(level: &str, parts: &[&[u8]]) {
    let mut line = Vec::with_capacity(128);
    line.extend_from_slice(level.as_bytes());
    line.extend_from_slice(b": ");
    for p in parts {
        crate::log::escape_into(&mut line, p);
    }
    let pre = prefix();
    line.truncate(999usize.saturating_sub(pre.len()));
    crate::log::emit(level, pre, &line);
}

pub fn info(parts: &[&[u8]]) {
    log("info", parts);
}

pub fn warn(parts: &[&[u8]]) {
    log("warning", parts);
}

/// Writes `fatal: parts` and exits with `code`.
pub fn die(code: i32, parts: &[&[u8]]) -> ! {
    log("fatal", parts);
    std::process::exit(code)
}

/// Writes `fatal: parts: errno text` and exits with `code`.
pub fn die_sys(code: i32, parts: &[&[u8]], e: &io::Error) -> ! {
    let t = errtext(e);
    let mut v: Vec<&[u8]> = parts.to_vec();
    v.push(b": ");
    v.push(t.as_bytes());
    die(code, &v)
}

/// `PROG: usage: USAGE` and exit 100: the one misuse line of every program
/// (tests/it/usage.rs checks it against each man page's SYNOPSIS).
pub fn usage(text: &str) -> ! {
    usage_exit(PERM, text)
}

/// [`usage`] with the exit code a foreign interface fixes (check-password:
/// 2; sendmail: sysexits 64). Always one line on fd 2, never to syslog:
/// `PROG: usage: ` (`PROG: pid N: usage: ` once a per-connection program
/// called [`set_prog`], so tcp-serve's log ties it to the session); before
/// [`set_prog`], PROG is USAGE's first word.
pub fn usage_exit(code: i32, text: &str) -> ! {
    let mut line = match PREFIX.get() {
        None => format!("{}: ", text.split(' ').next().unwrap_or(text)).into_bytes(),
        Some(p) => p.to_vec(),
    };
    line.extend_from_slice(b"usage: ");
    line.extend_from_slice(text.as_bytes());
    line.push(b'\n');
    crate::sys::write_all(2, &line).ok();
    std::process::exit(code)
}

/// The operands of a program that takes no options: `--` first is dropped,
/// a first argument that looks like an option (`-x`, not `-`) is misuse.
/// Only the first is looked at: after it may come another program's argv.
pub fn operands(text: &str) -> Vec<std::ffi::OsString> {
    operands_exit(PERM, text)
}

/// [`operands`] with the misuse exit code of [`usage_exit`].
pub fn operands_exit(code: i32, text: &str) -> Vec<std::ffi::OsString> {
    let mut args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    match args.first().map(|a| a.as_encoded_bytes()) {
        Some(b"--") => {
            args.remove(0);
        }
        Some(a) if a.len() > 1 && a[0] == b'-' => usage_exit(code, text),
        _ => {}
    }
    args
}

/// Lower-case errno text without Rust's " (os error N)" suffix.
pub fn errtext(e: &io::Error) -> String {
    let s = e.to_string();
    let s = match s.find(" (os error") {
        Some(i) => s[..i].to_string(),
        None => s,
    };
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_lowercase().collect::<String>() + c.as_str(),
        None => s,
    }
}

/// qmail's error_temp: is this errno worth retrying?
pub fn is_temp(e: &io::Error) -> bool {
    match e.raw_os_error() {
        Some(n) => !matches!(
            n,
            libc::ENOENT
                | libc::EACCES
                | libc::EPERM
                | libc::ENOTDIR
                | libc::EISDIR
                | libc::ELOOP
                | libc::ENAMETOOLONG
                | libc::EINVAL
                | libc::ENOEXEC
        ),
        None => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn errtext_is_lower_case_without_suffix() {
        let e = io::Error::from_raw_os_error(libc::ENOENT);
        assert_eq!(errtext(&e), "no such file or directory");
    }
}

//! Running other programs: finding a sibling pipemail program next to our
//! own executable, chain-loading argv (exit 126/127 when exec fails), and
//! naming replacements through the environment (`QMAILQUEUE`, ...).

use std::ffi::{CString, OsString};
use std::io;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::PathBuf;

/// The path of pipemail program `name`: the directory of our own
/// executable, so a cargo tree and an installed tree both work.
pub fn sibling(name: &str) -> PathBuf {
    let dir = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(|d| d.to_path_buf()));
    match dir {
        Some(d) => d.join(name),
        None => PathBuf::from(name),
    }
}

/// Where to run program `name` from: a name with a slash as it is; else
/// our sibling of that name when there is one (inetd clears PATH, and an
/// installed tree need not be in PATH); else the bare name, for PATH.
pub fn resolve(name: &std::ffi::OsStr) -> OsString {
    if name.as_bytes().contains(&b'/') || name.is_empty() {
        return name.to_os_string();
    }
    let s = sibling(&name.to_string_lossy());
    let c = match crate::sys::cpath(&s) {
        Ok(c) => c,
        Err(_) => return name.to_os_string(),
    };
    if s.is_file() && unsafe { libc::access(c.as_ptr(), libc::X_OK) } == 0 {
        s.into_os_string()
    } else {
        name.to_os_string()
    }
}

/// A Command for `prog` found by [`resolve`].
pub fn command(prog: &std::ffi::OsStr) -> std::process::Command {
    std::process::Command::new(resolve(prog))
}

/// `$VAR` when set and non-empty, else the sibling program `name`.
pub fn program(var: &str, name: &str) -> PathBuf {
    match std::env::var_os(var) {
        Some(v) if !v.is_empty() => PathBuf::from(v),
        _ => sibling(name),
    }
}

fn cstrings(args: &[OsString]) -> io::Result<Vec<CString>> {
    args.iter()
        .map(|a| crate::sys::cstr(a.as_bytes()))
        .collect()
}

/// execvp(argv), argv[0] found by [`resolve`] (argv[0] itself is passed
/// unchanged). Returns only on failure, with the errno.
pub fn exec(argv: &[OsString]) -> io::Error {
    if argv.is_empty() {
        return io::Error::from_raw_os_error(libc::EINVAL);
    }
    let (c, file) = match (
        cstrings(argv),
        crate::sys::cstr(resolve(&argv[0]).as_bytes()),
    ) {
        (Ok(c), Ok(f)) => (c, f),
        (Err(e), _) | (_, Err(e)) => return e,
    };
    let mut p: Vec<*const libc::c_char> = c.iter().map(|s| s.as_ptr()).collect();
    p.push(std::ptr::null());
    unsafe { libc::execvp(file.as_ptr(), p.as_ptr()) };
    io::Error::last_os_error()
}

/// Chain-loads argv; on failure dies with 127 (not found) or 126.
pub fn chain(argv: &[OsString]) -> ! {
    let e = exec(argv);
    let name = argv
        .first()
        .map(|a| a.as_bytes().to_vec())
        .unwrap_or_default();
    let code = if e.kind() == io::ErrorKind::NotFound {
        crate::exit::EXEC_NOENT
    } else {
        crate::exit::EXEC_FAIL
    };
    crate::exit::die_sys(code, &[b"unable to run ", &name], &e)
}

/// The rest of the command line as raw OsStrings (for chain-loaders).
pub fn os_args(v: Vec<Vec<u8>>) -> Vec<OsString> {
    v.into_iter().map(OsString::from_vec).collect()
}

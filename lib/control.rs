//! The home directory and its control files (pipemail-control(5)).
//!
//! Every program finds its files under `$PIPEMAIL_HOME`, else [`DEFAULT_HOME`].
//! A missing control file means its documented default; an unreadable or
//! malformed one is an error naming the file (and line), which callers turn
//! into exit 111: mail waits, it is never lost because of a typo.

use std::fmt;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

pub const DEFAULT_HOME: &str = "/var/pipemail";

/// A control-file problem: which file, which line (0 = the file as a whole).
#[derive(Debug)]
pub struct ControlError {
    pub file: PathBuf,
    pub line: usize,
    pub what: String,
}

impl fmt::Display for ControlError {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        if self.line > 0 {
            write!(
                f,
                "{} line {}: {}",
                self.file.display(),
                self.line,
                self.what
            )
        } else {
            write!(f, "{}: {}", self.file.display(), self.what)
        }
    }
}

impl ControlError {
    /// The message as bytes for `exit::die`.
    pub fn text(&self) -> Vec<u8> {
        self.to_string().into_bytes()
    }
}

/// `$PIPEMAIL_HOME`, else the compiled-in default.
pub fn home() -> PathBuf {
    match std::env::var_os("PIPEMAIL_HOME") {
        Some(h) if !h.is_empty() => PathBuf::from(h),
        _ => PathBuf::from(DEFAULT_HOME),
    }
}

/// A path under the home directory, e.g. `path("control/me")`.
pub fn path(rel: &str) -> PathBuf {
    home().join(rel)
}

fn err(file: PathBuf, line: usize, what: String) -> ControlError {
    ControlError { file, line, what }
}

/// The raw bytes of control/NAME; Ok(None) when the file does not exist.
pub fn read_raw(name: &str) -> Result<Option<Vec<u8>>, ControlError> {
    let p = path(&format!("control/{}", name));
    match std::fs::read(&p) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(err(
            p,
            0,
            format!("unable to read: {}", crate::exit::errtext(&e)),
        )),
    }
}

/// The lines of control/NAME, trimmed, without blank lines and `#` comments.
/// Ok(None) when the file does not exist.
pub fn lines(name: &str) -> Result<Option<Vec<Vec<u8>>>, ControlError> {
    Ok(read_raw(name)?.map(|b| {
        b.split(|&c| c == b'\n')
            .map(crate::parse::trim)
            .filter(|l| !l.is_empty() && l[0] != b'#')
            .map(|l| l.to_vec())
            .collect()
    }))
}

/// The first line of control/NAME, or `default` when the file is missing or empty.
pub fn line(name: &str, default: &[u8]) -> Result<Vec<u8>, ControlError> {
    Ok(lines(name)?
        .and_then(|v| v.into_iter().next())
        .unwrap_or_else(|| default.to_vec()))
}

/// A number in control/NAME; a malformed one is an error naming the file.
pub fn number(name: &str, default: u64) -> Result<u64, ControlError> {
    match lines(name)? {
        None => Ok(default),
        Some(v) => match v.first() {
            None => Ok(default),
            Some(l) => crate::parse::number(l).ok_or_else(|| {
                err(
                    path(&format!("control/{}", name)),
                    1,
                    format!("not a number: {}", String::from_utf8_lossy(l)),
                )
            }),
        },
    }
}

/// control/me, else the system's host name.
pub fn me() -> Result<Vec<u8>, ControlError> {
    let h = crate::sys::hostname();
    line("me", &h)
}

/// control/locals, else control/me: the domains delivered here.
pub fn locals() -> Result<Vec<Vec<u8>>, ControlError> {
    match lines("locals")? {
        Some(v) => Ok(v.into_iter().map(|l| l.to_ascii_lowercase()).collect()),
        None => Ok(vec![me()?.to_ascii_lowercase()]),
    }
}

/// A path as bytes (for messages and env values).
pub fn bytes(p: &std::path::Path) -> &[u8] {
    p.as_os_str().as_bytes()
}

#[cfg(test)]
mod tests {
    #[test]
    fn error_names_file_and_line() {
        let e = super::err("/h/control/databytes".into(), 1, "not a number: x".into());
        assert_eq!(
            e.to_string(),
            "/h/control/databytes line 1: not a number: x"
        );
    }
}

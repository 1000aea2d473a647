//! Where log lines go, and escaping untrusted bytes for them.
//!
//! Lines go to descriptor 2, except when descriptor 2 is a socket that is
//! not journald's stream (inetd, xinetd, systemd with StandardError=socket
//! hand programs the client's connection as fd 2): then they go to syslog,
//! facility mail, and fd 2 becomes /dev/null so that no program of the
//! session, ours or not, writes into the connection. `PIPEMAIL_LOG=syslog`
//! (exported for the programs we run) keeps them on syslog too (the FFI is
//! in sys::syslog).
//!
//! Escaping: printable ASCII passes, the rest becomes `\xNN`; values are
//! cut at [`MAX_FIELD`] bytes.

use std::sync::atomic::{AtomicBool, Ordering};

static SYSLOG: AtomicBool = AtomicBool::new(false);

/// Is descriptor 2 a socket other than journald's stream ($JOURNAL_STREAM
/// names its device and inode)?
fn stderr_is_client_socket() -> bool {
    let st = match crate::sys::fs::fstat(2) {
        Ok(st) if crate::sys::fs::file_type(&st) == libc::S_IFSOCK => st,
        _ => return false,
    };
    let journal = std::env::var("JOURNAL_STREAM").unwrap_or_default();
    journal != format!("{}:{}", st.st_dev, st.st_ino)
}

/// Chooses the log sink for program `prog` (called once, at start, by
/// `exit::set_prog`).
pub fn init(prog: &str) {
    let forced = std::env::var_os("PIPEMAIL_LOG").is_some_and(|v| v == "syslog");
    if !forced && !stderr_is_client_socket() {
        return;
    }
    crate::sys::syslog::open(prog);
    SYSLOG.store(true, Ordering::Relaxed);
    if !forced {
        if let Ok(null) = std::fs::OpenOptions::new().write(true).open("/dev/null") {
            use std::os::fd::AsRawFd;
            let _ = crate::sys::dup2(null.as_raw_fd(), 2);
        }
        std::env::set_var("PIPEMAIL_LOG", "syslog");
    }
}

/// Writes one finished line: `prefix` names the program (left out on
/// syslog, whose ident does that), `rest` is `LEVEL: text`.
pub fn emit(level: &str, prefix: &[u8], rest: &[u8]) {
    if SYSLOG.load(Ordering::Relaxed) {
        let pri = match level {
            "info" => libc::LOG_INFO,
            "warning" => libc::LOG_WARNING,
            _ => libc::LOG_ERR,
        };
        crate::sys::syslog::line(pri, rest);
        return;
    }
    let mut line = Vec::with_capacity(prefix.len() + rest.len() + 1);
    line.extend_from_slice(prefix);
    line.extend_from_slice(rest);
    line.push(b'\n');
    crate::sys::write_all(2, &line).ok();
}

pub const MAX_FIELD: usize = 200;

pub fn escape_into(out: &mut Vec<u8>, b: &[u8]) {
    for &c in b {
        if (0x20..0x7f).contains(&c) && c != b'\\' {
            out.push(c);
        } else {
            out.extend_from_slice(format!("\\x{:02x}", c).as_bytes());
        }
    }
}

/// A value from a peer, escaped and cut for a `key=value` field.
pub fn field(b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    escape_into(&mut out, &b[..b.len().min(MAX_FIELD)]);
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn escapes_control_bytes() {
        assert_eq!(
            super::field(b"a\r\n\x00\xff\\"),
            b"a\\x0d\\x0a\\x00\\xff\\x5c".to_vec()
        );
    }
}

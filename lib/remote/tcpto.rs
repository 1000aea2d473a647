//! Hosts that timed out lately (qmail's tcpto), so a dead MX is not
//! hammered by every queue run.
//!
//! The file is `$PIPEMAIL_HOME/queue/tcpto`, text, one line per address:
//! `IP TIME COUNT` (TIME = seconds since the epoch of the last timeout,
//! COUNT = timeouts in a row). A connect timeout or a greeting that never
//! comes adds one; a greeting clears the line. An address with COUNT >= 2
//! whose last timeout is less than [`HOLD`] seconds old is skipped while
//! other addresses remain. The file is updated under flock(2); lines that
//! do not parse are dropped, and a file that cannot be opened or written
//! is ignored: tcpto is an optimisation, never a reason to fail.

use std::net::IpAddr;

pub const HOLD: u64 = 3600;
const MAX_LINES: usize = 1000;

pub struct Tcpto {
    path: std::path::PathBuf,
}

#[derive(Debug, PartialEq)]
struct Entry {
    ip: IpAddr,
    time: u64,
    count: u64,
}

fn parse(text: &[u8]) -> Vec<Entry> {
    let mut v = Vec::new();
    for line in text.split(|&c| c == b'\n') {
        let Ok(s) = std::str::from_utf8(line) else {
            continue;
        };
        let w: Vec<&str> = s.split_whitespace().collect();
        if let [ip, t, c] = w[..] {
            if let (Ok(ip), Ok(time), Ok(count)) = (ip.parse(), t.parse(), c.parse()) {
                v.push(Entry { ip, time, count });
            }
        }
    }
    v
}

fn format(v: &[Entry]) -> Vec<u8> {
    let mut out = Vec::new();
    for e in v {
        out.extend_from_slice(format!("{} {} {}\n", e.ip, e.time, e.count).as_bytes());
    }
    out
}

impl Tcpto {
    pub fn open() -> Tcpto {
        Tcpto {
            path: crate::control::path("queue/tcpto"),
        }
    }

    /// Whether `ip` timed out often and recently enough to be skipped.
    pub fn skip(&self, ip: IpAddr) -> bool {
        let now = crate::sys::now();
        let text = std::fs::read(&self.path).unwrap_or_default();
        parse(&text)
            .iter()
            .any(|e| e.ip == ip && e.count >= 2 && now.saturating_sub(e.time) < HOLD)
    }

    /// Records a timeout (`timed_out`) or a working connection for `ip`.
    pub fn record(&self, ip: IpAddr, timed_out: bool) {
        use std::io::{Read, Seek, Write};
        use std::os::fd::AsRawFd;
        use std::os::unix::fs::OpenOptionsExt;
        let Ok(mut f) = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(timed_out)
            .mode(0o600)
            .open(&self.path)
        else {
            return;
        };
        if crate::sys::locks::lock(f.as_raw_fd()).is_err() {
            return;
        }
        let mut text = Vec::new();
        if f.read_to_end(&mut text).is_err() {
            return;
        }
        let now = crate::sys::now();
        let mut v: Vec<Entry> = parse(&text)
            .into_iter()
            .filter(|e| now.saturating_sub(e.time) < 86400)
            .collect();
        let old = v.iter().position(|e| e.ip == ip).map(|i| v.remove(i));
        if timed_out {
            let count = old.map(|e| e.count).unwrap_or(0) + 1;
            v.push(Entry {
                ip,
                time: now,
                count,
            });
        }
        let skip = v.len().saturating_sub(MAX_LINES);
        let out = format(&v[skip..]);
        if out != text && f.set_len(0).is_ok() && f.rewind().is_ok() {
            let _ = f.write_all(&out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn parses_and_ignores_junk() {
        let v = parse(b"127.0.0.2 100 2\njunk\n\xff\n::1 5 1\n1.2.3.4 x 1\n");
        assert_eq!(v.len(), 2);
        assert_eq!(format(&v), b"127.0.0.2 100 2\n::1 5 1\n");
    }
}

//! POP3 (RFC 1939, 2449, 5034): the authorization state (pop3-login) and
//! the transaction and update states on a Maildir (pop3d).

pub mod login;
pub mod maildir;
pub mod server;

use std::io;

/// Longest command line accepted (RFC 2449 allows 255; AUTH responses
/// may be longer).
pub const MAX_LINE: usize = 1024;
/// Default idle time before the session ends, in seconds.
pub const DEFAULT_TIMEOUT: u64 = 600;

/// The idle timeout: $POP3_TIMEOUT seconds, else 10 minutes.
pub fn timeout() -> u64 {
    use std::os::unix::ffi::OsStrExt;
    std::env::var_os("POP3_TIMEOUT")
        .and_then(|v| crate::parse::number(v.as_bytes()))
        .filter(|&n| n > 0)
        .unwrap_or(DEFAULT_TIMEOUT)
}

/// One command line, without its CR LF.
#[derive(Debug, PartialEq, Eq)]
pub enum Line {
    Text(Vec<u8>),
    /// Longer than [`MAX_LINE`]: the rest up to LF was skipped.
    TooLong,
    Eof,
    Timeout,
}

/// Reads command lines from a descriptor with a timeout. `exact` reads
/// one byte at a time so nothing past the line is consumed (pop3-login
/// hands fd 0 on to the next program).
pub struct Reader {
    fd: i32,
    exact: bool,
    secs: u64,
    buf: Vec<u8>,
    pos: usize,
}

impl Reader {
    pub fn new(fd: i32, exact: bool, secs: u64) -> Reader {
        Reader {
            fd,
            exact,
            secs,
            buf: Vec::new(),
            pos: 0,
        }
    }

    /// Whether a whole line is already buffered (no read would block).
    pub fn has_line(&self) -> bool {
        memchr::memchr(b'\n', &self.buf[self.pos..]).is_some()
    }

    fn fill(&mut self) -> io::Result<usize> {
        if self.pos > 0 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        let want = if self.exact { 1 } else { 8192 };
        let old = self.buf.len();
        self.buf.resize(old + want, 0);
        let r = crate::sys::read_timeout(self.fd, &mut self.buf[old..], self.secs);
        let n = *r.as_ref().unwrap_or(&0);
        self.buf.truncate(old + n);
        r
    }

    pub fn line(&mut self) -> io::Result<Line> {
        let mut skipping = false;
        loop {
            if let Some(i) = memchr::memchr(b'\n', &self.buf[self.pos..]) {
                let mut l = self.buf[self.pos..self.pos + i].to_vec();
                self.pos += i + 1;
                if skipping || l.len() > MAX_LINE + 1 {
                    return Ok(Line::TooLong);
                }
                if l.last() == Some(&b'\r') {
                    l.pop();
                }
                if l.len() > MAX_LINE {
                    return Ok(Line::TooLong);
                }
                return Ok(Line::Text(l));
            }
            if self.buf.len() - self.pos > MAX_LINE + 1 {
                skipping = true;
                self.pos = self.buf.len();
            }
            match self.fill() {
                Ok(0) => return Ok(Line::Eof),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::TimedOut => return Ok(Line::Timeout),
                Err(e) => return Err(e),
            }
        }
    }
}

/// Splits a command line into its verb (upper-cased) and the rest after
/// one space.
pub fn split_command(l: &[u8]) -> (Vec<u8>, &[u8]) {
    match memchr::memchr(b' ', l) {
        Some(i) => (l[..i].to_ascii_uppercase(), &l[i + 1..]),
        None => (l.to_ascii_uppercase(), &l[l.len()..]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    fn lines(input: &[u8], exact: bool) -> Vec<Line> {
        let (r, w) = crate::sys::pipe().unwrap();
        crate::sys::write_all(w, input).unwrap();
        crate::sys::close(w);
        let mut rd = Reader::new(r, exact, 5);
        let mut v = Vec::new();
        loop {
            let l = rd.line().unwrap();
            let end = l == Line::Eof;
            v.push(l);
            if end {
                break;
            }
        }
        crate::sys::close(r);
        v
    }
    #[test]
    fn reads_lines_both_ways() {
        let mut long = vec![b'x'; MAX_LINE + 5];
        long.extend_from_slice(b"\r\nNOOP\n");
        for exact in [false, true] {
            assert_eq!(
                lines(b"USER a\r\nPASS b c\nx", exact),
                vec![
                    Line::Text(b"USER a".to_vec()),
                    Line::Text(b"PASS b c".to_vec()),
                    Line::Eof
                ]
            );
            assert_eq!(
                lines(&long, exact),
                vec![Line::TooLong, Line::Text(b"NOOP".to_vec()), Line::Eof]
            );
        }
    }
    #[test]
    fn splits_commands() {
        assert_eq!(split_command(b"uidl 1"), (b"UIDL".to_vec(), &b"1"[..]));
        assert_eq!(split_command(b"PASS a b"), (b"PASS".to_vec(), &b"a b"[..]));
        assert_eq!(split_command(b"stat"), (b"STAT".to_vec(), &b""[..]));
    }
}

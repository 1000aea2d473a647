//! The connection: buffered input from fd 0 with a per-read timeout and a
//! hard line limit, buffered output to fd 1 flushed before every blocking
//! read (qmail's saferead), which is what makes PIPELINING work.

use std::io;

/// Why a session ends without QUIT.
#[derive(Debug)]
pub enum Fatal {
    /// The client closed the connection.
    Eof,
    /// No byte arrived (or could be sent) within the timeout.
    Timeout,
    /// A read or write error.
    Io(io::Error),
}

/// One command line, or what was wrong with it.
#[derive(Debug, PartialEq, Eq)]
pub enum Line {
    /// The line without its LF and one trailing CR.
    Ok(Vec<u8>),
    /// Longer than the limit; the rest up to LF was read and dropped.
    TooLong,
}

pub struct Conn {
    rfd: i32,
    wfd: i32,
    /// Input: capacity BUF, length = the bytes read; never zeroed.
    buf: Vec<u8>,
    pos: usize,
    out: Vec<u8>,
    pub timeout: u64,
}

const CHUNK: usize = 512;
/// The input buffer: one read takes up to this much of a DATA stream.
const BUF: usize = 65536;

impl Conn {
    pub fn new(rfd: i32, wfd: i32, timeout: u64) -> Conn {
        Conn {
            rfd,
            wfd,
            buf: Vec::with_capacity(BUF),
            pos: 0,
            out: Vec::with_capacity(4096),
            timeout,
        }
    }

    /// Queues reply bytes; they go out at the next flush.
    pub fn put(&mut self, b: &[u8]) {
        self.out.extend_from_slice(b);
    }

    /// Writes what is queued, at most `timeout` seconds per piece. Small
    /// pieces, so a blocking descriptor that poll called writable takes them.
    pub fn flush(&mut self) -> Result<(), Fatal> {
        let mut off = 0;
        while off < self.out.len() {
            let end = (off + CHUNK).min(self.out.len());
            match crate::sys::write_timeout(self.wfd, &self.out[off..end], self.timeout) {
                Ok(()) => off = end,
                Err(e) if e.kind() == io::ErrorKind::TimedOut => {
                    self.out.clear();
                    return Err(Fatal::Timeout);
                }
                Err(e) => {
                    self.out.clear();
                    return Err(Fatal::Io(e));
                }
            }
        }
        self.out.clear();
        Ok(())
    }

    /// Input already read and not yet used.
    pub fn buffered(&self) -> &[u8] {
        &self.buf[self.pos..]
    }

    /// Moves to other descriptors (after STARTTLS): input already read
    /// from the old ones is thrown away, its length returned (RFC 3207:
    /// nothing sent before the handshake may count after it).
    pub fn switch(&mut self, rfd: i32, wfd: i32) -> usize {
        let dropped = self.buf.len() - self.pos;
        self.rfd = rfd;
        self.wfd = wfd;
        self.pos = 0;
        self.buf.clear();
        dropped
    }

    /// Marks `n` buffered bytes as used.
    pub fn consume(&mut self, n: usize) {
        self.pos = (self.pos + n).min(self.buf.len());
    }

    /// Flushes the replies, then waits for more input (the buffer must be
    /// used up). Eof when the client closed.
    pub fn fill(&mut self) -> Result<(), Fatal> {
        self.flush()?;
        self.pos = 0;
        self.buf.clear();
        match crate::sys::read_timeout_spare(self.rfd, &mut self.buf, self.timeout) {
            Ok(0) => Err(Fatal::Eof),
            Ok(_) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::TimedOut => Err(Fatal::Timeout),
            Err(e) => Err(Fatal::Io(e)),
        }
    }

    /// Reads one line ending in LF, at most `max` octets with the LF. The
    /// LF and one CR before it are removed. Longer lines are read to their
    /// LF and dropped (Line::TooLong), so the session stays in step.
    pub fn line(&mut self, max: usize) -> Result<Line, Fatal> {
        let mut acc: Vec<u8> = Vec::new();
        let mut too_long = false;
        loop {
            if self.pos == self.buf.len() {
                self.fill()?;
            }
            let avail = &self.buf[self.pos..];
            match memchr::memchr(b'\n', avail) {
                Some(i) => {
                    if !too_long {
                        if acc.len() + i + 1 > max {
                            too_long = true;
                        } else {
                            acc.extend_from_slice(&avail[..i]);
                        }
                    }
                    self.pos += i + 1;
                    if too_long {
                        return Ok(Line::TooLong);
                    }
                    if acc.last() == Some(&b'\r') {
                        acc.pop();
                    }
                    return Ok(Line::Ok(acc));
                }
                None => {
                    if !too_long {
                        if acc.len() + avail.len() >= max {
                            too_long = true;
                            acc = Vec::new();
                        } else {
                            acc.extend_from_slice(avail);
                        }
                    }
                    self.pos = self.buf.len();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn_with(input: &[u8]) -> Conn {
        let (r, w) = crate::sys::pipe().unwrap();
        crate::sys::write_all(w, input).unwrap();
        crate::sys::close(w);
        Conn::new(r, 2, 5)
    }

    #[test]
    fn lines_and_limits() {
        let mut l998 = vec![b'a'; 998];
        l998.extend_from_slice(b"\r\n");
        let mut l999 = vec![b'b'; 999];
        l999.extend_from_slice(b"\r\n");
        let mut input = b"NOOP\r\nbare\nx\r\r\n".to_vec();
        input.extend_from_slice(&l998);
        input.extend_from_slice(&l999);
        input.extend_from_slice(b"QUIT\r\n");
        let mut c = conn_with(&input);
        assert_eq!(c.line(1000).unwrap(), Line::Ok(b"NOOP".to_vec()));
        assert_eq!(c.line(1000).unwrap(), Line::Ok(b"bare".to_vec()));
        assert_eq!(c.line(1000).unwrap(), Line::Ok(b"x\r".to_vec()));
        assert_eq!(c.line(1000).unwrap(), Line::Ok(vec![b'a'; 998]));
        assert_eq!(c.line(1000).unwrap(), Line::TooLong);
        assert_eq!(c.line(1000).unwrap(), Line::Ok(b"QUIT".to_vec()));
        assert!(matches!(c.line(1000), Err(Fatal::Eof)));
    }
}

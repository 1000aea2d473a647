//! Reading a message for submission: lines with CRLF turned into LF, long
//! lines cut into pieces, and (sendmail without -i) a line holding a single
//! dot ending the input.

use std::io::{self, Read};

/// A raw descriptor as a reader (no hidden buffer), EINTR retried.
pub struct Fd(pub i32);

impl Read for Fd {
    fn read(&mut self, b: &mut [u8]) -> io::Result<usize> {
        crate::sys::read(self.0, b)
    }
}

/// The message as pieces: whole lines, or parts of over-long lines.
pub struct Input<R> {
    r: R,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    eof: bool,
    bol: bool,
    dot: bool,
    done: bool,
}

impl<R: Read> Input<R> {
    /// With `dot`, a line `.` ends the input (the rest is not read).
    pub fn new(r: R, dot: bool) -> Input<R> {
        Input {
            r,
            buf: vec![0; 65536],
            start: 0,
            end: 0,
            eof: false,
            bol: true,
            dot,
            done: false,
        }
    }

    /// Whether nothing is left to read.
    pub fn at_end(&self) -> bool {
        self.done || (self.eof && self.start == self.end)
    }

    /// The next piece, at most `max` bytes (`max` >= 3): a line with its LF
    /// (a CR before it removed), or part of a longer line. None at the end.
    pub fn next(&mut self, max: usize) -> io::Result<Option<&[u8]>> {
        let max = max.max(3); // a `.` CR LF line must fit in one look
        loop {
            if self.done {
                return Ok(None);
            }
            let avail = &self.buf[self.start..self.end];
            if let Some(i) = memchr::memchr(b'\n', &avail[..avail.len().min(max)]) {
                let s = self.start;
                self.start += i + 1;
                let was_bol = self.bol;
                self.bol = true;
                let mut e = s + i + 1;
                if i > 0 && self.buf[s + i - 1] == b'\r' {
                    self.buf[s + i - 1] = b'\n';
                    e -= 1;
                }
                if self.dot && was_bol && &self.buf[s..e] == b".\n" {
                    self.done = true;
                    return Ok(None);
                }
                return Ok(Some(&self.buf[s..e]));
            }
            if avail.len() >= max || (self.eof && !avail.is_empty()) {
                let mut n = avail.len().min(max);
                if n == avail.len() && self.eof {
                    if self.dot && self.bol && (avail == b"." || avail == b".\r") {
                        self.done = true;
                        return Ok(None);
                    }
                } else if avail[n - 1] == b'\r' {
                    n -= 1;
                }
                let s = self.start;
                self.start += n;
                self.bol = false;
                return Ok(Some(&self.buf[s..s + n]));
            }
            if self.eof {
                self.done = true;
                return Ok(None);
            }
            if self.start > 0 {
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            }
            if self.end == self.buf.len() {
                let l = self.buf.len() * 2;
                self.buf.resize(l, 0);
            }
            match self.r.read(&mut self.buf[self.end..]) {
                Ok(0) => self.eof = true,
                Ok(n) => self.end += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reader that hands out at most `n` bytes per read.
    pub struct Trickle<'a>(pub &'a [u8], pub usize);
    impl Read for Trickle<'_> {
        fn read(&mut self, b: &mut [u8]) -> io::Result<usize> {
            let n = self.0.len().min(self.1).min(b.len());
            b[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    fn all(input: &[u8], chunk: usize, dot: bool, max: usize) -> Vec<Vec<u8>> {
        let mut i = Input::new(Trickle(input, chunk), dot);
        let mut v = Vec::new();
        while let Some(p) = i.next(max).unwrap() {
            v.push(p.to_vec());
        }
        v
    }

    #[test]
    fn lines_crlf_and_dot() {
        for chunk in 1..8 {
            assert_eq!(
                all(b"a\r\nb\n.\nc\n", chunk, true, 100),
                vec![b"a\n".to_vec(), b"b\n".to_vec()]
            );
            assert_eq!(all(b"a\r\n.\r\nc", chunk, true, 100), vec![b"a\n".to_vec()]);
            assert_eq!(
                all(b"a\n.\nc", chunk, false, 100),
                vec![b"a\n".to_vec(), b".\n".to_vec(), b"c".to_vec()]
            );
            assert_eq!(
                all(b"a\n..\n.", chunk, true, 100),
                vec![b"a\n".to_vec(), b"..\n".to_vec()]
            );
            assert_eq!(
                all(b"abcdef\r\n", chunk, true, 4),
                vec![b"abcd".to_vec(), b"ef\n".to_vec()]
            );
            assert_eq!(
                all(b"abc\r\r\n", chunk, true, 4),
                vec![b"abc".to_vec(), b"\r\n".to_vec()]
            );
            // A dot after a cut is not at the start of a line.
            assert_eq!(
                all(b"abcd.\nx", chunk, true, 4),
                vec![b"abcd".to_vec(), b".\n".to_vec(), b"x".to_vec()]
            );
            assert_eq!(all(b"", chunk, true, 4), Vec::<Vec<u8>>::new());
        }
    }
}

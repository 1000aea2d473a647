//! Line ends of a stored message: as stored (LF, as deliveries write
//! mail) and as sent (CRLF, as POP3 and IMAP send it), and its size both
//! ways. One rule for every size: every line end CRLF, and a last line
//! without its line end completed, so POP3 LIST equals what RETR sends,
//! IMAP RFC822.SIZE equals BODY[]'s length, and deliveries write that
//! size into `,W=`.

use std::io;

/// Sizes of the stored file: bytes, and bytes with every LF as CRLF.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Sizes {
    pub size: u64,
    pub crlf: u64,
    /// The last byte counted (meaningful when size > 0).
    pub tail: u8,
}

impl Sizes {
    /// Counts `b`: an LF not after a CR costs one more byte when sent.
    pub fn add(&mut self, b: &[u8]) {
        let Some(&last) = b.last() else { return };
        let prev = self.last();
        self.size += b.len() as u64;
        self.crlf += b.len() as u64;
        for i in memchr::memchr_iter(b'\n', b) {
            if (if i == 0 { prev } else { b[i - 1] }) != b'\r' {
                self.crlf += 1;
            }
        }
        self.tail = last;
    }

    fn last(&self) -> u8 {
        if self.size == 0 {
            b'\n'
        } else {
            self.tail
        }
    }

    /// The size as POP3 and IMAP send it: every line end CRLF, and a last
    /// line without one completed.
    pub fn sent(&self) -> u64 {
        match self.last() {
            b'\n' => self.crlf,
            b'\r' => self.crlf + 1,
            _ => self.crlf + 2,
        }
    }
}

/// The size as sent of the message `d` ([`to_crlf`]'s length).
pub fn sent_size(d: &[u8]) -> u64 {
    let mut s = Sizes::default();
    s.add(d);
    s.sent()
}

/// The size as sent of a whole message read from `r`.
pub fn read_sent_size(r: &mut impl io::Read) -> io::Result<u64> {
    let mut buf = vec![0u8; 65536];
    let mut s = Sizes::default();
    loop {
        let k = r.read(&mut buf)?;
        if k == 0 {
            return Ok(s.sent());
        }
        s.add(&buf[..k]);
    }
}

/// The message as sent: every bare LF made CRLF, and a last line without
/// its line end completed, so that its length is [`sent_size`].
pub fn to_crlf(d: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(d.len() + d.len() / 30 + 2);
    let mut last = 0;
    for i in memchr::memchr_iter(b'\n', d) {
        if i == 0 || d[i - 1] != b'\r' {
            out.extend_from_slice(&d[last..i]);
            out.extend_from_slice(b"\r\n");
        } else {
            out.extend_from_slice(&d[last..=i]);
        }
        last = i + 1;
    }
    out.extend_from_slice(&d[last..]);
    match out.last() {
        None | Some(b'\n') => {}
        Some(b'\r') => out.push(b'\n'),
        Some(_) => out.extend_from_slice(b"\r\n"),
    }
    out
}

/// The message with CRLF made LF (how deliveries store mail).
pub fn to_lf(d: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(d.len());
    let mut i = 0;
    while i < d.len() {
        if d[i] == b'\r' && d.get(i + 1) == Some(&b'\n') {
            i += 1;
            continue;
        }
        out.push(d[i]);
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn sizes_and_line_ends() {
        let mut s = Sizes::default();
        s.add(b"a\nbc\n");
        assert_eq!((s.size, s.crlf, s.sent()), (5, 7, 7));
        let mut t = Sizes::default();
        t.add(b"a\r");
        t.add(b"\nb");
        assert_eq!(
            (t.size, t.sent()),
            (4, 6),
            "CRLF split across writes; last line completed"
        );
        // A last line without its line end is completed, in the size too.
        for (d, sent) in [
            (&b"a\nb\r\nc"[..], &b"a\r\nb\r\nc\r\n"[..]),
            (b"a\nb\r\n", b"a\r\nb\r\n"),
            (b"x\r", b"x\r\n"),
            (b"", b""),
        ] {
            assert_eq!(to_crlf(d), sent);
            assert_eq!(sent_size(d), sent.len() as u64);
            assert_eq!(read_sent_size(&mut &d[..]).unwrap(), sent.len() as u64);
        }
        assert_eq!(to_lf(b"a\r\nb\rc"), b"a\nb\rc");
    }
}

//! The DATA byte state machine (qmail's blast(), made strict): no line
//! buffer; only CR LF . CR LF ends the data; a bare CR or a bare LF marks
//! the message as refused but never ends it, so every byte up to the real
//! terminator is data and nothing after a fake terminator is ever read as
//! a command (no SMTP smuggling). Leading dots are removed, CR LF is stored
//! as LF, stored bytes are counted against databytes, and Received: and
//! Delivered-To: header lines are counted as hops.
//!
//! BDAT (RFC 3030) content goes through the same machine in chunked mode:
//! the command counts the bytes, so nothing ends the data and a leading
//! dot is content; CR LF is still stored as LF and a bare CR or LF still
//! refuses the message (smtp-recv(8), CHUNKING).

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum St {
    /// At the start of a line (after a real CR LF, or the first byte).
    Bol,
    /// A line that started with `.`.
    Dot,
    /// `.` CR at the start of a line.
    DotCr,
    /// Inside a line.
    Mid,
    /// CR inside a line (or a CR that started one).
    Cr,
}

pub struct Data {
    st: St,
    /// A bare CR or bare LF was seen: the message is refused.
    pub bare: bool,
    /// Bytes as stored (LF line ends, dots removed).
    pub stored: u64,
    limit: u64,
    /// More than `limit` bytes: the message is refused.
    pub over: bool,
    /// Received: and Delivered-To: lines in the header.
    pub hops: crate::header::Hops,
    /// BDAT content: no terminator, no dot-stuffing.
    chunked: bool,
}

impl Data {
    /// `limit` is databytes; 0 means no limit.
    pub fn new(limit: u64) -> Data {
        Data {
            st: St::Bol,
            bare: false,
            stored: 0,
            limit,
            over: false,
            hops: Default::default(),
            chunked: false,
        }
    }

    /// For BDAT content (RFC 3030): byte counts frame it, so `.` is
    /// content and [`Data::feed`] never finds an end; [`Data::last`]
    /// ends it.
    pub fn chunked(limit: u64) -> Data {
        Data {
            chunked: true,
            ..Data::new(limit)
        }
    }

    /// The end of BDAT content: a CR left waiting for its LF is a bare
    /// CR; a last line without a line end gets its LF (the stored message
    /// is made of whole lines, as after DATA).
    pub fn last(&mut self, out: &mut Vec<u8>) {
        if !self.chunked {
            return;
        }
        match self.st {
            St::Cr => self.bare = true,
            St::Mid => self.emit(b'\n', out),
            _ => {}
        }
        self.st = St::Bol;
    }

    /// Whether the message can still be queued (nothing refused it yet).
    pub fn good(&self) -> bool {
        !self.bare && !self.over
    }

    /// Why the message is refused so far: the reply and the log's reason.
    pub fn refusal(&self) -> Option<(&'static [u8], &'static [u8])> {
        if self.bare {
            Some((
                b"550 5.6.2 message refused: bare CR or LF in data (lines must end in CRLF)",
                b"bare-cr-lf",
            ))
        } else if self.over {
            Some((
                b"552 5.3.4 message size exceeds fixed maximum message size",
                b"size",
            ))
        } else if self.hops.looping() {
            Some((b"554 5.4.6 too many hops, this message is looping", b"hops"))
        } else {
            None
        }
    }

    fn emit(&mut self, c: u8, out: &mut Vec<u8>) {
        self.hops.byte(c);
        if self.bare || self.over {
            return;
        }
        self.stored += 1;
        if self.limit > 0 && self.stored > self.limit {
            self.over = true;
            return;
        }
        out.push(c);
    }

    /// Feeds input; stored bytes are appended to `out`. Returns
    /// Some(n) when the terminator ends within `input` after n bytes
    /// (the rest belongs to the command stream), None when all was used.
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) -> Option<usize> {
        let mut i = 0;
        while i < input.len() {
            // Fast path: the middle of a line past the header prefix.
            if self.st == St::Mid && self.hops.idle() && self.good() {
                let rest = &input[i..];
                let run = memchr::memchr2(b'\r', b'\n', rest).unwrap_or(rest.len());
                if run > 0 {
                    let take = if self.limit > 0 {
                        let room = self.limit.saturating_sub(self.stored);
                        (run as u64).min(room) as usize
                    } else {
                        run
                    };
                    out.extend_from_slice(&rest[..take]);
                    self.stored += take as u64;
                    self.hops.skip(run);
                    if take < run {
                        self.over = true;
                        self.stored += 1;
                    }
                    i += run;
                    continue;
                }
            }
            let c = input[i];
            i += 1;
            match self.st {
                St::Bol => match c {
                    b'.' if !self.chunked => self.st = St::Dot,
                    b'\r' => self.st = St::Cr,
                    b'\n' => {
                        self.bare = true;
                        self.st = St::Mid;
                    }
                    _ => {
                        self.emit(c, out);
                        self.st = St::Mid;
                    }
                },
                St::Dot => match c {
                    b'\r' => self.st = St::DotCr,
                    b'\n' => {
                        self.bare = true;
                        self.st = St::Mid;
                    }
                    _ => {
                        self.emit(c, out);
                        self.st = St::Mid;
                    }
                },
                St::DotCr => {
                    if c == b'\n' {
                        return Some(i);
                    }
                    // "." CR then not LF: bare CR; the byte is read again inside a line.
                    self.bare = true;
                    self.st = St::Mid;
                    i -= 1;
                }
                St::Mid => match c {
                    b'\r' => self.st = St::Cr,
                    b'\n' => self.bare = true,
                    _ => self.emit(c, out),
                },
                St::Cr => {
                    if c == b'\n' {
                        self.emit(b'\n', out);
                        self.st = St::Bol;
                    } else {
                        self.bare = true;
                        self.st = St::Mid;
                        i -= 1;
                    }
                }
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(input: &[u8], limit: u64) -> (Option<usize>, Vec<u8>, Data) {
        let mut d = Data::new(limit);
        let mut out = Vec::new();
        let r = d.feed(input, &mut out);
        (r, out, d)
    }

    /// The same input fed one byte at a time gives the same result.
    fn bytewise(input: &[u8], limit: u64) -> (Option<usize>, Vec<u8>, bool) {
        let mut d = Data::new(limit);
        let mut out = Vec::new();
        for (i, b) in input.iter().enumerate() {
            if d.feed(std::slice::from_ref(b), &mut out).is_some() {
                return (Some(i + 1), out, d.good());
            }
        }
        (None, out, d.good())
    }

    #[test]
    fn ends_only_at_crlf_dot_crlf() {
        let (r, out, d) = run(b"a\r\n..b\r\n.c\r\n\r\nx\r\n.\r\nQUIT\r\n", 0);
        assert_eq!(r, Some(20));
        assert_eq!(out, b"a\n.b\nc\n\nx\n");
        assert!(d.good());
        assert_eq!(run(b".\r\n", 0).0, Some(3));
        for fake in [
            &b"a\n.\nb"[..],
            b"a\n.\r\nb",
            b"a\r\n.\nb",
            b"a\r.\rb",
            b"a\r\n.\rb",
            b"a\r\n.\0\r\nb",
        ] {
            let mut v = fake.to_vec();
            v.extend_from_slice(b"\r\n.\r\n");
            let (r, _, d) = run(&v, 0);
            assert_eq!(r, Some(v.len()), "{:?}", fake);
            let nul = fake.contains(&0);
            assert_eq!(d.good(), nul, "{:?}", fake);
            assert_eq!(bytewise(&v, 0).0, Some(v.len()));
        }
        // A fake terminator never ends the data.
        assert_eq!(run(b"a\n.\nMAIL FROM:<x@y>\n", 0).0, None);
    }

    #[test]
    fn limits_and_hops() {
        let (r, out, d) = run(b"12345\r\n6789\r\n.\r\n", 10);
        assert!(r.is_some());
        assert!(d.over);
        assert_eq!(out.len(), 10);
        let (_, _, d) = run(b"12345\r\n678\r\n.\r\n", 10);
        assert!(!d.over);
        let (_, _, d) = bytewise_data(b"12345\r\n6789\r\n.\r\n", 10);
        assert!(d.over);
        let mut m = Vec::new();
        for _ in 0..3 {
            m.extend_from_slice(b"Received: x\r\nDELIVERED-TO: y\r\n");
        }
        m.extend_from_slice(b"Subject: s\r\n\r\nReceived: body\r\n.\r\n");
        assert_eq!(run(&m, 0).2.hops.count, 6);
    }

    fn bytewise_data(input: &[u8], limit: u64) -> (Option<usize>, Vec<u8>, Data) {
        let mut d = Data::new(limit);
        let mut out = Vec::new();
        for (i, b) in input.iter().enumerate() {
            if d.feed(std::slice::from_ref(b), &mut out).is_some() {
                return (Some(i + 1), out, d);
            }
        }
        (None, out, d)
    }

    #[test]
    fn bdat_content_is_counted_not_framed() {
        let mut d = Data::chunked(0);
        let mut out = Vec::new();
        // A dot line and a terminator are content; CR LF split over two
        // feeds is one line end; the last line gets its LF.
        assert_eq!(d.feed(b".a\r\n.\r\nx\r", &mut out), None);
        assert_eq!(d.feed(b"\nend", &mut out), None);
        d.last(&mut out);
        assert!(d.good());
        assert_eq!(out, b".a\n.\nx\nend\n");
        for bare in [&b"a\nb"[..], b"a\rb", b"a\r"] {
            let mut d = Data::chunked(0);
            let mut out = Vec::new();
            d.feed(bare, &mut out);
            d.last(&mut out);
            assert_eq!(
                d.refusal().map(|r| r.1),
                Some(&b"bare-cr-lf"[..]),
                "{:?}",
                bare
            );
        }
        // DATA's machine ignores last().
        let mut d = Data::new(0);
        let mut out = Vec::new();
        d.feed(b"abc", &mut out);
        d.last(&mut out);
        assert_eq!(out, b"abc");
    }

    #[test]
    fn chunking_does_not_matter() {
        let msg = b"Received: a\r\nSubject: x\r\n\r\n.hello\r\nline two\r\n..\r\n.\r\n";
        let whole = run(msg, 0);
        let bw = bytewise(msg, 0);
        assert_eq!(whole.0, bw.0);
        assert_eq!(whole.1, bw.1);
        assert_eq!(whole.1, b"Received: a\nSubject: x\n\nhello\nline two\n.\n");
    }
}

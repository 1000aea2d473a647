//! The message as it goes over SMTP: canonical CRLF line ends and
//! dot-stuffing, ended by `.` CRLF (DATA); or canonical CRLF line ends
//! alone, cut into BDAT chunks (CHUNKING, RFC 3030).
//!
//! The queue stores LF line ends. An LF becomes CRLF; a CRLF already in the
//! file stays one CRLF; a bare CR (not followed by LF) becomes CRLF, as in
//! notqmail, so no bare CR or LF ever reaches the peer (no SMTP smuggling).
//! A message that does not end in a line end gets one (documented in
//! remote-send(8)); a line starting with `.` gets another `.`.

/// Octets in one BDAT chunk (the last one has the rest).
pub const CHUNK: usize = 1 << 20;

/// The DATA bytes for `msg`, ending with `.\r\n`.
pub fn encode(msg: &[u8]) -> Vec<u8> {
    let mut out = canonical(msg, true);
    out.extend_from_slice(b".\r\n");
    out
}

/// A BDAT command line and the chunk that follows it.
pub type Chunk<'a> = (Vec<u8>, &'a [u8]);

/// The BDAT commands and their chunks for `content` (the message in
/// [`canonical`] form, not dot-stuffed): chunks of [`CHUNK`] octets, the
/// last one `BDAT n LAST` (`BDAT 0 LAST` for an empty message).
pub fn chunks(content: &[u8]) -> Vec<Chunk<'_>> {
    let mut out = Vec::new();
    let mut rest = content;
    loop {
        let n = rest.len().min(CHUNK);
        let last = if n == rest.len() { " LAST" } else { "" };
        out.push((format!("BDAT {}{}\r\n", n, last).into_bytes(), &rest[..n]));
        rest = &rest[n..];
        if !last.is_empty() {
            return out;
        }
    }
}

/// `msg` with every line end CR LF (and one after a last line without
/// it); with `stuff`, a `.` more at the start of each line that has one.
pub fn canonical(msg: &[u8], stuff: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(msg.len() + msg.len() / 32 + 8);
    let mut bol = true;
    let mut i = 0;
    while i < msg.len() {
        if stuff && bol && msg[i] == b'.' {
            out.push(b'.');
        }
        match memchr::memchr2(b'\r', b'\n', &msg[i..]) {
            None => {
                out.extend_from_slice(&msg[i..]);
                out.extend_from_slice(b"\r\n");
                break;
            }
            Some(n) => {
                out.extend_from_slice(&msg[i..i + n]);
                out.extend_from_slice(b"\r\n");
                i += n;
                // CRLF counts as one line end; CR or LF alone too.
                i += if msg[i] == b'\r' && msg.get(i + 1) == Some(&b'\n') {
                    2
                } else {
                    1
                };
                bol = true;
            }
        }
    }
    out
}

/// Whether the message has bytes above 127 (needs BODY=8BITMIME).
pub fn is_8bit(msg: &[u8]) -> bool {
    msg.iter().any(|&c| c >= 0x80)
}

#[cfg(test)]
mod tests {
    use super::encode;
    #[test]
    fn converts_line_ends_and_stuffs_dots() {
        assert_eq!(encode(b""), b".\r\n");
        assert_eq!(encode(b"a\n"), b"a\r\n.\r\n");
        assert_eq!(encode(b"a"), b"a\r\n.\r\n");
        assert_eq!(encode(b".\n..x\n"), b"..\r\n...x\r\n.\r\n");
        assert_eq!(
            encode(b"a\r\nb\rc\r\r\nd\n\n"),
            b"a\r\nb\r\nc\r\n\r\nd\r\n\r\n.\r\n"
        );
        assert_eq!(encode(b"x\n.\r\n"), b"x\r\n..\r\n.\r\n");
        assert_eq!(encode(b"x\r.\r"), b"x\r\n..\r\n.\r\n");
        assert_eq!(encode(b"a.b\n"), b"a.b\r\n.\r\n");
    }
    #[test]
    fn bdat_chunks() {
        use super::{canonical, CHUNK};
        let chunks = |m: &[u8]| -> Vec<Vec<u8>> {
            let c = canonical(m, false);
            super::chunks(&c)
                .iter()
                .map(|(h, b)| [&h[..], b].concat())
                .collect()
        };
        assert_eq!(chunks(b""), [b"BDAT 0 LAST\r\n".to_vec()]);
        assert_eq!(
            chunks(b".\nx\ry"),
            [b"BDAT 9 LAST\r\n.\r\nx\r\ny\r\n".to_vec()]
        );
        let big = vec![b'a'; CHUNK * 2 - 2];
        let c = chunks(&big);
        assert_eq!(c.len(), 2);
        assert!(c[0].starts_with(format!("BDAT {}\r\naaa", CHUNK).as_bytes()));
        assert_eq!(c[0].len(), CHUNK + 14);
        assert_eq!(
            c[1],
            [
                format!("BDAT {} LAST\r\n", CHUNK).as_bytes(),
                &big[..CHUNK - 2],
                b"\r\n"
            ]
            .concat()
        );
    }

    #[test]
    fn never_emits_bare_cr_or_lf() {
        let msg = b"\r\n\n\r\r.\r\n.\n\r.\rx\n\r";
        for out in [encode(msg), super::canonical(msg, false)] {
            for (i, &c) in out.iter().enumerate() {
                if c == b'\r' {
                    assert_eq!(out[i + 1], b'\n');
                }
                if c == b'\n' {
                    assert_eq!(out[i - 1], b'\r');
                }
            }
        }
    }
}

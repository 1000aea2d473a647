//! The message as it goes over SMTP: canonical CRLF line ends and
//! dot-stuffing, ended by `.` CRLF.
//!
//! The queue stores LF line ends. An LF becomes CRLF; a CRLF already in the
//! file stays one CRLF; a bare CR (not followed by LF) becomes CRLF, as in
//! notqmail, so no bare CR or LF ever reaches the peer (no SMTP smuggling).
//! A message that does not end in a line end gets one (documented in
//! remote-send(8)); a line starting with `.` gets another `.`.

/// The DATA bytes for `msg`, ending with `.\r\n`.
pub fn encode(msg: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(msg.len() + msg.len() / 32 + 8);
    let mut bol = true;
    let mut i = 0;
    while i < msg.len() {
        if bol && msg[i] == b'.' {
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
    out.extend_from_slice(b".\r\n");
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
    fn never_emits_bare_cr_or_lf() {
        let msg = b"\r\n\n\r\r.\r\n.\n\r.\rx\n";
        let out = encode(msg);
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

//! Making a message fit the peer before it is sent: no line longer than
//! 998 octets (RFC 5321 4.5.3.1.6) and, for a peer that offers neither
//! 8BITMIME nor SMTPUTF8, no 8-bit byte (RFC 6152 §3).
//!
//! The choice (remote-send(8)): a body part (a MIME leaf) with a longer
//! line, or with 8-bit bytes for such a peer, is re-encoded
//! quoted-printable, which keeps every byte: its Content-Transfer-Encoding
//! field is replaced, its content decoded first when it was
//! quoted-printable; a base64 part with long lines is only wrapped again
//! at 76. A message without MIME-Version gets `MIME-Version: 1.0` and,
//! when it has no Content-Type, `text/plain` with charset us-ascii, utf-8
//! (when the text is UTF-8) or unknown-8bit. Multipart and message
//! entities labelled 8bit or binary are labelled 7bit. Header lines and
//! the text around multipart delimiters are folded: before the last blank
//! under the limit, else with an inserted LF and space (as Postfix does).
//! What cannot be made 7-bit (8-bit bytes in a header field or around the
//! delimiters) is an error: the delivery fails (#5.6.3).

use crate::mime::{self, Part};
use std::borrow::Cow;

/// Longest line on the wire, without its CR LF.
pub const MAX_LINE: usize = 998;
/// Longest quoted-printable line, with its soft break `=`.
const QP_LINE: usize = 76;

/// Whether `b` has a line (between CR or LF) longer than [`MAX_LINE`].
fn long_line(b: &[u8]) -> bool {
    let mut start = 0;
    for i in memchr::memchr2_iter(b'\r', b'\n', b) {
        if i - start > MAX_LINE {
            return true;
        }
        start = i + 1;
    }
    b.len() - start > MAX_LINE
}

fn has_8bit(b: &[u8]) -> bool {
    b.iter().any(|&c| c >= 0x80)
}

fn needs_work(b: &[u8], eightbit: bool) -> bool {
    (!eightbit && has_8bit(b)) || long_line(b)
}

/// `msg` (LF line ends, as stored) made fit for a peer that takes 8-bit
/// bytes (`eightbit`) or not. Borrowed when nothing had to change.
/// Err: why it cannot be sent to that peer.
pub fn fit(msg: &[u8], eightbit: bool) -> Result<Cow<'_, [u8]>, &'static str> {
    if !needs_work(msg, eightbit) {
        return Ok(Cow::Borrowed(msg));
    }
    let top = mime::parse(msg);
    let mut out = Vec::with_capacity(msg.len() + msg.len() / 8);
    emit(msg, &top, eightbit, true, &mut out);
    if !eightbit && has_8bit(&out) {
        return Err("it has 8-bit bytes that cannot be re-encoded (in a header field or beside multipart delimiters)");
    }
    Ok(Cow::Owned(out))
}

fn emit(m: &[u8], p: &Part, eightbit: bool, top: bool, out: &mut Vec<u8>) {
    let header = &m[p.start..p.body];
    if p.parts.is_empty() {
        let body = &m[p.body..p.end];
        if !needs_work(body, eightbit) {
            fold(header, true, out);
            out.extend_from_slice(body);
            return;
        }
        if p.encoding.as_deref() == Some(b"base64") {
            fold(header, true, out);
            return rewrap_base64(body, out);
        }
        let data: Cow<[u8]> = match p.encoding.as_deref() {
            Some(b"quoted-printable") => {
                Cow::Owned(mime::decode_body(body, Some(b"quoted-printable")))
            }
            _ => Cow::Borrowed(body),
        };
        let mut extra: Vec<Vec<u8>> = Vec::new();
        if top && crate::header::value(header, b"mime-version").is_none() {
            extra.push(b"MIME-Version: 1.0\n".to_vec());
            if crate::header::value(header, b"content-type").is_none() {
                let cs: &[u8] = if data.is_ascii() {
                    b"us-ascii"
                } else if std::str::from_utf8(&data).is_ok() {
                    b"utf-8"
                } else {
                    b"unknown-8bit"
                };
                extra.push([&b"Content-Type: text/plain; charset="[..], cs, b"\n"].concat());
            }
        }
        extra.push(b"Content-Transfer-Encoding: quoted-printable\n".to_vec());
        fold(&set_fields(header, &extra), true, out);
        return qp_encode(&data, out);
    }
    let relabel = !eightbit && matches!(p.encoding.as_deref(), Some(b"8bit" | b"binary"));
    if relabel {
        fold(
            &set_fields(header, &[b"Content-Transfer-Encoding: 7bit\n".to_vec()]),
            true,
            out,
        );
    } else {
        fold(header, true, out);
    }
    let mut pos = p.body;
    for c in &p.parts {
        fold(&m[pos..c.start], false, out);
        emit(m, c, eightbit, false, out);
        pos = c.end;
    }
    fold(&m[pos..p.end], false, out);
}

/// The header without its Content-Transfer-Encoding field(s), with
/// `extra` fields added before the blank line that ends it.
fn set_fields(header: &[u8], extra: &[Vec<u8>]) -> Vec<u8> {
    let blank = if header == b"\n" || header.ends_with(b"\n\n") {
        1
    } else if header == b"\r\n" || header.ends_with(b"\n\r\n") {
        2
    } else {
        0
    };
    let (fields, end) = header.split_at(header.len() - blank);
    let mut out = Vec::with_capacity(header.len() + 64);
    let mut skipping = false;
    for line in fields.split_inclusive(|&c| c == b'\n') {
        if !(skipping && matches!(line[0], b' ' | b'\t')) {
            skipping = crate::header::field_name(line)
                .is_some_and(|n| n.eq_ignore_ascii_case(b"content-transfer-encoding"));
        }
        if !skipping {
            out.extend_from_slice(line);
        }
    }
    if !out.is_empty() && !out.ends_with(b"\n") {
        out.push(b'\n');
    }
    for e in extra {
        out.extend_from_slice(e);
    }
    out.extend_from_slice(if end.is_empty() { b"\n" } else { end });
    out
}

/// Copies `b`, breaking lines longer than [`MAX_LINE`]: in a header
/// before the last blank of the line (so it goes on as a continuation),
/// else with LF and a space; elsewhere with a plain LF.
fn fold(b: &[u8], header: bool, out: &mut Vec<u8>) {
    let mut start = out.len();
    let mut blank: Option<usize> = None;
    for &c in b {
        if c == b'\r' || c == b'\n' {
            out.push(c);
            start = out.len();
            blank = None;
            continue;
        }
        if out.len() - start >= MAX_LINE {
            match blank.filter(|&w| header && w > start) {
                Some(w) => {
                    out.insert(w, b'\n');
                    start = w + 1;
                }
                None => {
                    out.push(b'\n');
                    start = out.len();
                    if header {
                        out.push(b' ');
                    }
                }
            }
            blank = None;
        }
        if header && (c == b' ' || c == b'\t') {
            blank = Some(out.len());
        }
        out.push(c);
    }
}

/// Quoted-printable (RFC 2045 6.7): LF (or CR LF) is a line break, every
/// other byte outside printable ASCII, `=`, and a blank at a line's end
/// is `=XX`; lines are broken softly at 76.
fn qp_encode(data: &[u8], out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut lines = data.split(|&c| c == b'\n').peekable();
    while let Some(line) = lines.next() {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let mut col = 0;
        for (i, &c) in line.iter().enumerate() {
            let blank = c == b' ' || c == b'\t';
            let plain = (blank && i + 1 < line.len()) || ((33..=126).contains(&c) && c != b'=');
            let w = if plain { 1 } else { 3 };
            if col + w > QP_LINE - 1 {
                out.extend_from_slice(b"=\n");
                col = 0;
            }
            if plain {
                out.push(c);
            } else {
                out.extend_from_slice(&[b'=', HEX[(c >> 4) as usize], HEX[(c & 15) as usize]]);
            }
            col += w;
        }
        if lines.peek().is_some() {
            out.push(b'\n');
        }
    }
}

/// A base64 body in lines of 76, ending with a line end when it had one.
fn rewrap_base64(body: &[u8], out: &mut Vec<u8>) {
    let chars: Vec<u8> = body
        .iter()
        .copied()
        .filter(|c| !c.is_ascii_whitespace())
        .collect();
    let mut chunks = chars.chunks(QP_LINE).peekable();
    while let Some(c) = chunks.next() {
        out.extend_from_slice(c);
        if chunks.peek().is_some() || body.ends_with(b"\n") {
            out.push(b'\n');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fits(m: &[u8], eightbit: bool) -> Vec<u8> {
        let out = fit(m, eightbit).unwrap().into_owned();
        for l in out.split(|&c| c == b'\n' || c == b'\r') {
            assert!(l.len() <= MAX_LINE, "line of {}", l.len());
        }
        assert!(eightbit || !has_8bit(&out));
        out
    }

    #[test]
    fn untouched_when_it_fits() {
        let m = b"Subject: x\n\ncaf\xc3\xa9\n";
        assert!(matches!(fit(m, true), Ok(Cow::Borrowed(_))));
        assert!(matches!(fit(b"a\n\nb\n", false), Ok(Cow::Borrowed(_))));
    }

    #[test]
    fn plain_8bit_message_becomes_qp_with_mime_fields() {
        let out = fits(b"Subject: x\n\ncaf\xc3\xa9 = ok \n.dot\n", false);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "Subject: x\nMIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\n\
Content-Transfer-Encoding: quoted-printable\n\ncaf=C3=A9 =3D ok=20\n.dot\n"
        );
        let out = fits(b"A: b\n\n\xe9t\xe9\n", false);
        assert!(out.starts_with(
            b"A: b\nMIME-Version: 1.0\nContent-Type: text/plain; charset=unknown-8bit\n"
        ));
    }

    #[test]
    fn long_lines_are_encoded_softly_and_decode_back() {
        let mut m =
            b"MIME-Version: 1.0\nContent-Type: text/plain\nContent-Transfer-Encoding: 8bit\n\n"
                .to_vec();
        let long: Vec<u8> = (0..3000).map(|i| b"abc d\xc3\xa9"[i % 7]).collect();
        m.extend_from_slice(&long);
        m.extend_from_slice(b"\nend\n");
        let out = fits(&m, true);
        let (h, b) = out.split_at(crate::header::body_start(&out, 0, out.len()));
        assert_eq!(h, b"MIME-Version: 1.0\nContent-Type: text/plain\nContent-Transfer-Encoding: quoted-printable\n\n");
        let mut want = long.clone();
        want.extend_from_slice(b"\nend\n");
        assert_eq!(mime::qp_decode(b), want);
        assert!(b.split(|&c| c == b'\n').all(|l| l.len() <= QP_LINE));
    }

    #[test]
    fn multipart_parts_one_by_one() {
        let m = b"MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"b\"\nContent-Transfer-Encoding: 8bit\n\n\
pre\n--b\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n\xc3\xa9\n--b\n\
Content-Type: text/plain\n\nascii\n--b--\nepi\n";
        let out = fits(m, false);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"b\"\nContent-Transfer-Encoding: 7bit\n\n\
pre\n--b\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: quoted-printable\n\n=C3=A9\n--b\n\
Content-Type: text/plain\n\nascii\n--b--\nepi\n"
        );
    }

    #[test]
    fn headers_fold_and_8bit_headers_fail() {
        let mut m = b"Subject: ".to_vec();
        for _ in 0..300 {
            m.extend_from_slice(b"word ");
        }
        m.extend_from_slice(b"\nX-Long: ");
        m.extend_from_slice(&[b'x'; 2000]);
        m.extend_from_slice(b"\n\nbody\n");
        let out = fits(&m, true);
        let h = &out[..crate::header::body_start(&out, 0, out.len())];
        let unfolded: Vec<u8> =
            crate::header::unfold(&crate::header::value(h, b"subject").unwrap());
        assert_eq!(unfolded, crate::parse::trim(&m[9..9 + 1500]));
        assert_eq!(
            crate::header::value(h, b"x-long")
                .unwrap()
                .iter()
                .filter(|&&c| c == b'x')
                .count(),
            2000
        );
        assert_eq!(
            fit(b"Subject: caf\xc3\xa9\n\nx\n", false).unwrap_err(),
            "it has 8-bit bytes that cannot be re-encoded (in a header field or beside multipart delimiters)"
        );
    }

    #[test]
    fn base64_rewrapped_and_qp_reencoded() {
        let mut m =
            b"Content-Type: application/pdf\nContent-Transfer-Encoding: base64\n\n".to_vec();
        m.extend_from_slice(&[b'A'; 2000]);
        m.push(b'\n');
        let out = fits(&m, true);
        let b = &out[crate::header::body_start(&out, 0, out.len())..];
        let lens: Vec<usize> = b.split(|&c| c == b'\n').map(|l| l.len()).collect();
        assert_eq!(lens, [vec![76; 26], vec![24, 0]].concat());
        assert_eq!(out.iter().filter(|&&c| c == b'A').count(), 2000);
        let mut m = b"Content-Transfer-Encoding: Quoted-Printable\n\n".to_vec();
        m.extend_from_slice(&[b'q'; 1200]);
        m.extend_from_slice(b"=3D\n");
        let out = fits(&m, true);
        let b = &out[crate::header::body_start(&out, 0, out.len())..];
        assert_eq!(mime::qp_decode(b), [&[b'q'; 1200][..], b"=\n"].concat());
    }
}

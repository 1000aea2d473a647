//! MIME structure (RFC 2045/2046): the part tree (multipart nesting,
//! message/rfc822) with limits on depth and parts, and transfer encodings.
//! Header fields, parameters (RFC 2231), encoded words (RFC 2047) and
//! address lists are the header layer's ([`crate::header`]).
//! Malformed input never fails: every message yields a tree.

/// Deepest nesting followed; deeper parts are treated as opaque data.
pub const MAX_DEPTH: usize = 20;
/// Most parts in one message; the rest are folded into their parent.
pub const MAX_PARTS: usize = 1000;

use crate::header::{content_type, disposition, param, unfolded, Params};

/// One MIME entity: byte offsets into the message, and what its header says.
#[derive(Clone, Debug, Default)]
pub struct Part {
    /// Start of the header.
    pub start: usize,
    /// Start of the body (after the blank line).
    pub body: usize,
    /// End of the body.
    pub end: usize,
    /// Lower-case type and subtype (`text`, `plain`).
    pub ctype: Vec<u8>,
    pub subtype: Vec<u8>,
    /// Content-Type parameters, names lower-cased, values raw.
    pub params: Params,
    pub id: Option<Vec<u8>>,
    pub description: Option<Vec<u8>>,
    pub encoding: Option<Vec<u8>>,
    pub md5: Option<Vec<u8>>,
    pub disposition: Option<(Vec<u8>, Params)>,
    pub language: Option<Vec<u8>>,
    pub location: Option<Vec<u8>>,
    /// Children of a multipart; for message/rfc822 the embedded message.
    pub parts: Vec<Part>,
}

impl Part {
    pub fn is_multipart(&self) -> bool {
        self.ctype == b"multipart"
    }
    pub fn is_message(&self) -> bool {
        self.ctype == b"message" && self.subtype == b"rfc822" && !self.parts.is_empty()
    }
    pub fn header<'a>(&self, msg: &'a [u8]) -> &'a [u8] {
        &msg[self.start..self.body]
    }
    pub fn text<'a>(&self, msg: &'a [u8]) -> &'a [u8] {
        &msg[self.body..self.end]
    }
    pub fn param(&self, name: &[u8]) -> Option<Vec<u8>> {
        param(&self.params, name)
    }
}

use crate::header::hex;

pub fn qp_decode(v: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(v.len());
    let mut i = 0;
    while i < v.len() {
        let c = v[i];
        if c == b'=' {
            if v[i + 1..].starts_with(b"\r\n") {
                i += 3;
                continue;
            }
            if v[i + 1..].starts_with(b"\n") {
                i += 2;
                continue;
            }
            if i + 2 < v.len() {
                if let (Some(a), Some(b)) = (hex(v[i + 1]), hex(v[i + 2])) {
                    out.push(a * 16 + b);
                    i += 3;
                    continue;
                }
            }
        }
        out.push(c);
        i += 1;
    }
    out
}

/// A body decoded from its Content-Transfer-Encoding.
pub fn decode_body(b: &[u8], encoding: Option<&[u8]>) -> Vec<u8> {
    match encoding.map(|e| e.to_ascii_lowercase()) {
        Some(e) if e == b"base64" => crate::base64::decode_lenient(b),
        Some(e) if e == b"quoted-printable" => qp_decode(b),
        _ => b.to_vec(),
    }
}

/// Parses a whole message.
///
/// Multipart bodies are read as Dovecot reads them: a line that starts
/// with `--` and a boundary is a delimiter (RFC 2046 §5.1.1: the whole
/// line need not match), the boundaries of every enclosing multipart are
/// looked for at once, innermost first, so a nested multipart that reuses
/// its parent's boundary takes the delimiters until its close delimiter,
/// and a delimiter of an outer multipart ends every part inside it.
pub fn parse(m: &[u8]) -> Part {
    let mut count = 0;
    parse_entity(m, 0, m.len(), false, 0, &mut count, &mut Vec::new()).0
}

/// Which boundary of `stack` (innermost first) the line at `i` is a
/// delimiter of, and whether it is the close delimiter (`--b--`).
fn delimiter(m: &[u8], i: usize, end: usize, stack: &[Vec<u8>]) -> Option<(usize, bool)> {
    let l = m[i..end].strip_prefix(b"--")?;
    let k = stack.iter().rposition(|b| l.starts_with(b))?;
    Some((k, l[stack[k].len()..].starts_with(b"--")))
}

/// The start of the line after the one at `i`.
fn next_line(m: &[u8], i: usize, end: usize) -> usize {
    memchr::memchr(b'\n', &m[i..end]).map_or(end, |n| i + n + 1)
}

/// The first delimiter line of `stack` at or after the line start `i`:
/// where it starts (`end` when there is none) and what it is.
fn next_delimiter(
    m: &[u8],
    mut i: usize,
    end: usize,
    stack: &[Vec<u8>],
) -> (usize, Option<(usize, bool)>) {
    if stack.is_empty() {
        return (end, None);
    }
    while i < end {
        if m[i] == b'-' {
            if let Some(d) = delimiter(m, i, end, stack) {
                return (i, Some(d));
            }
        }
        i = next_line(m, i, end);
    }
    (end, None)
}

/// Where the header at `start` ends (after its blank line): at the end of
/// input or at a delimiter line of `stack`, the header ends without one.
fn header_end_in(m: &[u8], start: usize, end: usize, stack: &[Vec<u8>]) -> usize {
    let mut i = start;
    while i < end {
        let n = next_line(m, i, end);
        if matches!(&m[i..n], b"\n" | b"\r\n") {
            return n;
        }
        if m[i] == b'-' && delimiter(m, i, end, stack).is_some() {
            return i;
        }
        i = n;
    }
    end
}

/// The end of a part's content that stops at the delimiter line at `at`:
/// the line end before the delimiter belongs to the delimiter.
fn before_delimiter(m: &[u8], body: usize, at: usize, end: usize) -> usize {
    let mut e = at;
    if e < end && e > body && m[e - 1] == b'\n' {
        e -= 1;
        if e > body && m[e - 1] == b'\r' {
            e -= 1;
        }
    }
    e
}

/// Parses the entity at `start` inside the multiparts whose boundaries are
/// `stack`: the part, where it stopped (a delimiter line of `stack`, or
/// `end`) and that delimiter.
fn parse_entity(
    m: &[u8],
    start: usize,
    end: usize,
    digest: bool,
    depth: usize,
    count: &mut usize,
    stack: &mut Vec<Vec<u8>>,
) -> (Part, usize, Option<(usize, bool)>) {
    *count += 1;
    let body = header_end_in(m, start, end, stack);
    let mut p = Part {
        start,
        body,
        end,
        ..Default::default()
    };
    let h = &m[start..body];
    for (n, v) in unfolded(h) {
        let n = n.to_ascii_lowercase();
        match &n[..] {
            // The first valid Content-Type counts, as in Dovecot.
            b"content-type" if p.ctype.is_empty() => {
                let (t, st, ps) = content_type(&v);
                if !t.is_empty() && !st.is_empty() {
                    p.ctype = t;
                    p.subtype = st;
                    p.params = ps;
                }
            }
            b"content-transfer-encoding" => {
                let t = crate::parse::trim(&v);
                let e = t
                    .split(|&c| c == b' ' || c == b';' || c == b'(')
                    .next()
                    .unwrap_or(b"");
                if !e.is_empty() {
                    p.encoding = Some(e.to_ascii_lowercase());
                }
            }
            b"content-id" => p.id = Some(crate::parse::trim(&v).to_vec()),
            b"content-description" => p.description = Some(crate::parse::trim(&v).to_vec()),
            b"content-md5" => p.md5 = Some(crate::parse::trim(&v).to_vec()),
            b"content-disposition" => {
                let (t, ps) = disposition(&v);
                if !t.is_empty() {
                    p.disposition = Some((t, ps));
                }
            }
            b"content-language" => p.language = Some(crate::parse::trim(&v).to_vec()),
            b"content-location" => p.location = Some(crate::parse::trim(&v).to_vec()),
            _ => {}
        }
    }
    if p.ctype == b"text" && !p.params.iter().any(|(n, _)| n == b"charset") {
        p.params.push((b"charset".to_vec(), b"us-ascii".to_vec()));
    }
    if p.ctype.is_empty() {
        if digest {
            p.ctype = b"message".to_vec();
            p.subtype = b"rfc822".to_vec();
        } else {
            p.ctype = b"text".to_vec();
            p.subtype = b"plain".to_vec();
            p.params = vec![(b"charset".to_vec(), b"us-ascii".to_vec())];
        }
    }
    let deep = depth >= MAX_DEPTH || *count >= MAX_PARTS;
    let boundary = p
        .param(b"boundary")
        .filter(|b| !b.is_empty() && b.len() <= 200);
    if p.is_multipart() && deep {
        p.ctype = b"application".to_vec();
        p.subtype = b"octet-stream".to_vec();
    }
    if p.is_multipart() {
        let b = match boundary {
            Some(b) => b,
            None => {
                // Without a boundary a multipart keeps its type and gets
                // one empty part, as in Dovecot.
                let (at, d) = next_delimiter(m, body, end, stack);
                p.end = before_delimiter(m, body, at, end);
                p.parts.push(empty_part(p.end));
                return (p, at, d);
            }
        };
        let dig = p.subtype == b"digest";
        stack.push(b);
        let k = stack.len() - 1;
        let (mut at, mut d) = next_delimiter(m, body, end, stack);
        loop {
            match d {
                Some((j, false)) if j == k => {
                    let cs = next_line(m, at, end);
                    let (c, a2, d2) = parse_entity(m, cs, end, dig, depth + 1, count, stack);
                    p.parts.push(c);
                    (at, d) = (a2, d2);
                }
                Some((j, true)) if j == k => {
                    // The close delimiter; the epilogue runs to a delimiter
                    // of an enclosing multipart.
                    stack.pop();
                    let (a2, d2) = next_delimiter(m, next_line(m, at, end), end, stack);
                    p.end = before_delimiter(m, body, a2, end);
                    (at, d) = (a2, d2);
                    break;
                }
                _ => {
                    // An enclosing multipart's delimiter, or the end.
                    stack.pop();
                    p.end = before_delimiter(m, body, at, end);
                    break;
                }
            }
        }
        match p.parts.last() {
            // An empty last part may sit on the line end before the
            // delimiter that ends us: keep it inside.
            Some(c) => p.end = p.end.max(c.end),
            // No delimiter found: one empty text part keeps the structure
            // valid.
            None => p.parts.push(empty_part(p.end)),
        }
        return (p, at, d);
    }
    let enc = p.encoding.as_deref().unwrap_or(b"7bit");
    if p.ctype == b"message"
        && p.subtype == b"rfc822"
        && (deep || !matches!(enc, b"7bit" | b"8bit" | b"binary"))
    {
        p.ctype = b"application".to_vec();
        p.subtype = b"octet-stream".to_vec();
    }
    if p.ctype == b"message" && p.subtype == b"rfc822" {
        let (c, at, d) = parse_entity(m, body, end, false, depth + 1, count, stack);
        p.end = c.end;
        p.parts.push(c);
        return (p, at, d);
    }
    let (at, d) = next_delimiter(m, body, end, stack);
    p.end = before_delimiter(m, body, at, end);
    (p, at, d)
}

/// An empty text/plain part at `at`.
fn empty_part(at: usize) -> Part {
    Part {
        start: at,
        body: at,
        end: at,
        ctype: b"text".to_vec(),
        subtype: b"plain".to_vec(),
        params: vec![(b"charset".to_vec(), b"us-ascii".to_vec())],
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types() {
        let (t, s, p) = content_type(b"Multipart/Mixed; boundary=\"a b\"; (c) charset=utf-8");
        assert_eq!(
            (t.as_slice(), s.as_slice()),
            (&b"multipart"[..], &b"mixed"[..])
        );
        assert_eq!(param(&p, b"boundary").unwrap(), b"a b");
        assert_eq!(param(&p, b"charset").unwrap(), b"utf-8");
    }

    #[test]
    fn rfc2231_and_2047() {
        let (_, p) = disposition(b"attachment; filename*0*=utf-8''%C3%BC; filename*1=.txt");
        assert_eq!(param(&p, b"filename").unwrap(), "ü.txt".as_bytes());
        let (_, p) = disposition(b"attachment; filename*=iso-8859-1'en'%FC");
        assert_eq!(param(&p, b"filename").unwrap(), "ü".as_bytes());
        assert_eq!(
            crate::header::decode(b"=?utf-8?q?caf=C3=A9?= =?UTF-8?B?w7w=?= x"),
            "caféü x".as_bytes()
        );
        assert_eq!(
            crate::header::decode(b"=?iso-8859-1?q?a_=FC?="),
            "a ü".as_bytes()
        );
        assert_eq!(crate::header::decode(b"=?broken"), b"=?broken");
    }

    #[test]
    fn nested_multipart() {
        let m = b"Content-Type: multipart/mixed; boundary=X\r\n\r\npre\r\n--X\r\n\r\none\r\n--X\r\nContent-Type: message/rfc822\r\n\r\nSubject: in\r\nContent-Type: multipart/alternative; boundary=Y\r\n\r\n--Y\r\n\r\na\r\n--Y\r\nContent-Type: text/html\r\n\r\n<b>\r\n--Y--\r\n\r\n--X--\r\nepilogue\r\n";
        let p = parse(m);
        assert_eq!(p.parts.len(), 2);
        assert_eq!(p.parts[0].text(m), b"one");
        let inner = &p.parts[1].parts[0];
        assert_eq!(inner.subtype, b"alternative");
        assert_eq!(inner.parts[1].subtype, b"html");
        assert_eq!(inner.parts[1].text(m), b"<b>");
    }

    #[test]
    fn malformed_never_fails() {
        for m in [
            &b""[..],
            b"\r\n",
            b"Content-Type: multipart/mixed\r\n\r\nx",
            b"Content-Type: multipart/mixed; boundary=q\r\n\r\n--q\r\n",
            b"Content-Type: message/rfc822\r\n\r\n",
            b"a:\n b\nc",
        ] {
            let p = parse(m);
            if p.is_multipart() {
                assert!(!p.parts.is_empty());
            }
        }
        let mut deep = Vec::new();
        for i in 0..100 {
            deep.extend_from_slice(
                format!(
                    "Content-Type: multipart/mixed; boundary=b{}\r\n\r\n--b{}\r\n",
                    i, i
                )
                .as_bytes(),
            );
        }
        let _ = parse(&deep);
        let nul = vec![0u8; 200_000];
        assert!(crate::header::address_list(&nul).is_empty());
        let _ = content_type(&nul);
    }

    #[test]
    fn address_lists() {
        let a = crate::header::address_list(
            b"\"Doe, J\" <j@x.org>, k@y (Kay), undisclosed:;, G: a@b, c@d;",
        );
        assert_eq!(
            a[0],
            crate::header::Address::Mailbox {
                name: Some(b"Doe, J".to_vec()),
                route: None,
                mailbox: b"j".to_vec(),
                host: b"x.org".to_vec(),
                spec: (10, 17),
                has_at: true,
            }
        );
        assert_eq!(
            a[1],
            crate::header::Address::Mailbox {
                name: Some(b"Kay".to_vec()),
                route: None,
                mailbox: b"k".to_vec(),
                host: b"y".to_vec(),
                spec: (20, 23),
                has_at: true,
            }
        );
        assert_eq!(
            a[2],
            crate::header::Address::GroupStart(b"undisclosed".to_vec())
        );
        assert_eq!(a[3], crate::header::Address::GroupEnd);
        assert_eq!(a.len(), 8);
    }

    #[test]
    fn transfer_encodings() {
        assert_eq!(qp_decode(b"a=3Db=\r\nc"), b"a=bc");
    }
}

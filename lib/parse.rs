//! Small byte parsers shared by every program.

/// A decimal number made only of ASCII digits, without overflow.
pub fn number(b: &[u8]) -> Option<u64> {
    if b.is_empty() || b.len() > 19 {
        return None;
    }
    let mut n: u64 = 0;
    for &c in b {
        if !c.is_ascii_digit() {
            return None;
        }
        n = n.checked_mul(10)?.checked_add((c - b'0') as u64)?;
    }
    Some(n)
}

/// Strips leading and trailing spaces, tabs, CR and LF.
pub fn trim(mut b: &[u8]) -> &[u8] {
    while let [f, rest @ ..] = b {
        if matches!(f, b' ' | b'\t' | b'\r' | b'\n') {
            b = rest;
        } else {
            break;
        }
    }
    while let [rest @ .., l] = b {
        if matches!(l, b' ' | b'\t' | b'\r' | b'\n') {
            b = rest;
        } else {
            break;
        }
    }
    b
}

/// Splits an address at its last `@`: (local, domain). No `@`: domain empty.
pub fn split_addr(a: &[u8]) -> (&[u8], &[u8]) {
    match memchr::memrchr(b'@', a) {
        Some(i) => (&a[..i], &a[i + 1..]),
        None => (a, b""),
    }
}

/// Appends `s` as a quoted string: in `"`, with `"` and `\` escaped by
/// `\` (RFC 5321 Quoted-string, IMAP quoted).
pub fn push_quoted(out: &mut Vec<u8>, s: &[u8]) {
    out.push(b'"');
    for &c in s {
        if c == b'"' || c == b'\\' {
            out.push(b'\\');
        }
        out.push(c);
    }
    out.push(b'"');
}

/// Lower-cases ASCII letters.
pub fn lower(b: &[u8]) -> Vec<u8> {
    b.to_ascii_lowercase()
}

/// Decimal text of a number, as bytes.
pub fn fmt(n: u64) -> Vec<u8> {
    n.to_string().into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn numbers() {
        assert_eq!(number(b"0"), Some(0));
        assert_eq!(number(b"10240000"), Some(10240000));
        assert_eq!(number(b""), None);
        assert_eq!(number(b"1x"), None);
        assert_eq!(number(b"99999999999999999999"), None);
    }
    #[test]
    fn trims_and_splits() {
        assert_eq!(trim(b" \tab c\r\n"), b"ab c");
        assert_eq!(split_addr(b"a@b@c"), (&b"a@b"[..], &b"c"[..]));
        assert_eq!(split_addr(b"postmaster"), (&b"postmaster"[..], &b""[..]));
    }
}

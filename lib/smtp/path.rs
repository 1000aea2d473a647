//! RFC 5321 paths and ESMTP parameters, parsed strictly:
//! `<` [source route `:`] local-part `@` domain `>` [SP params].
//! Source routes are dropped (RFC 5321 §3.3), quoted local parts are
//! unquoted as qmail stores them in the envelope, `<>` is the null sender.
//! Bytes above 0x7f are allowed (SMTPUTF8); the caller has already checked
//! the line is UTF-8 and free of control bytes.

/// Longest address accepted (local@domain), as qmail-smtpd.
pub const MAX_ADDR: usize = 900;
/// Longest domain (RFC 5321 §4.5.3.1.2).
pub const MAX_DOMAIN: usize = 255;

#[derive(Debug, PartialEq, Eq)]
pub enum PathError {
    /// Not a path at all.
    Syntax,
    /// A mailbox without `@domain`: the local part is returned.
    NoDomain(Vec<u8>),
    /// Longer than [`MAX_ADDR`] or a domain longer than [`MAX_DOMAIN`].
    TooLong,
}

/// A parsed path: the envelope address ("" for `<>`) and the parameters.
#[derive(Debug, PartialEq, Eq)]
pub struct Path<'a> {
    pub addr: Vec<u8>,
    pub params: Vec<&'a [u8]>,
}

fn is_atext(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`{|}~".contains(&c) || c >= 0x80
}

fn is_letdig(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c >= 0x80
}

/// A domain (sub-domain *("." sub-domain)) or an address literal at the
/// start of `s`; returns its length.
fn domain(s: &[u8]) -> Option<usize> {
    if s.first() == Some(&b'[') {
        let end = memchr::memchr(b']', s)?;
        let inner = &s[1..end];
        return address_literal(inner).then_some(end + 1);
    }
    let mut i = 0;
    loop {
        // One label: let-dig [ldh-str], not ending in '-'.
        let start = i;
        if i >= s.len() || !is_letdig(s[i]) {
            return None;
        }
        while i < s.len() && (is_letdig(s[i]) || s[i] == b'-') {
            i += 1;
        }
        if s[i - 1] == b'-' || i - start > 63 {
            return None;
        }
        if i < s.len() && s[i] == b'.' {
            i += 1;
            continue;
        }
        return Some(i);
    }
}

/// Whether `inner` (between the brackets) is an IPv4 address or
/// `IPv6:` and an IPv6 address (RFC 5321 4.1.3); other tags are refused.
fn address_literal(inner: &[u8]) -> bool {
    let Ok(t) = std::str::from_utf8(inner) else {
        return false;
    };
    match t.get(..5) {
        Some(tag) if tag.eq_ignore_ascii_case("IPv6:") => {
            t[5..].parse::<std::net::Ipv6Addr>().is_ok()
        }
        _ => t.parse::<std::net::Ipv4Addr>().is_ok(),
    }
}

/// Whether all of `s` is one ASCII domain or address literal (ETRN's
/// argument).
pub fn is_domain(s: &[u8]) -> bool {
    s.is_ascii() && s.len() <= 255 && domain(s) == Some(s.len())
}

/// The local part at the start of `s`, unquoted: (value, length used).
fn local_part(s: &[u8]) -> Option<(Vec<u8>, usize)> {
    let mut v = Vec::new();
    if s.first() == Some(&b'"') {
        let mut i = 1;
        loop {
            let c = *s.get(i)?;
            match c {
                b'"' => return Some((v, i + 1)),
                b'\\' => {
                    let n = *s.get(i + 1)?;
                    if !(32..=126).contains(&n) {
                        return None;
                    }
                    v.push(n);
                    i += 2;
                }
                32..=126 | 0x80..=0xff => {
                    v.push(c);
                    i += 1;
                }
                _ => return None,
            }
        }
    }
    let mut i = 0;
    loop {
        let start = i;
        while i < s.len() && is_atext(s[i]) {
            i += 1;
        }
        if i == start {
            return None;
        }
        if i < s.len() && s[i] == b'.' {
            i += 1;
            continue;
        }
        v.extend_from_slice(&s[..i]);
        return Some((v, i));
    }
}

/// Whether `l` is a Dot-string (RFC 5321 4.1.2): atoms joined by single
/// dots; otherwise a local part must be quoted on the wire.
fn is_dot_string(l: &[u8]) -> bool {
    !l.is_empty()
        && l.split(|&c| c == b'.')
            .all(|a| !a.is_empty() && a.iter().all(|&c| is_atext(c)))
}

/// The wire form of an envelope address as stored (local part unquoted,
/// as [`parse`] leaves it): the local part, everything before the last
/// `@`, becomes a Quoted-string with `"` and `\` escaped when it is not a
/// Dot-string (RFC 5321 4.1.2). `x y@b` gives `"x y"@b`.
pub fn quote(addr: &[u8]) -> Vec<u8> {
    let (local, _) = crate::parse::split_addr(addr);
    if local.is_empty() || is_dot_string(local) {
        return addr.to_vec();
    }
    let mut q = Vec::with_capacity(addr.len() + 4);
    crate::parse::push_quoted(&mut q, local);
    q.extend_from_slice(&addr[local.len()..]);
    q
}

/// Parses `<path> [params]` (the text after `FROM:` or `TO:`). Spaces
/// between the colon and `<` are allowed, as most servers do.
pub fn parse(s: &[u8]) -> Result<Path<'_>, PathError> {
    let mut s = s;
    while s.first() == Some(&b' ') {
        s = &s[1..];
    }
    let s = s.strip_prefix(b"<").ok_or(PathError::Syntax)?;
    let mut i = 0;
    let addr;
    if s.first() == Some(&b'>') {
        addr = Vec::new();
        i = 1;
    } else {
        // A-d-l ":" — the source route, dropped.
        if s.first() == Some(&b'@') {
            loop {
                i += 1; // '@'
                i += domain(&s[i..]).ok_or(PathError::Syntax)?;
                match s.get(i) {
                    Some(b',') if s.get(i + 1) == Some(&b'@') => i += 1,
                    Some(b':') => {
                        i += 1;
                        break;
                    }
                    _ => return Err(PathError::Syntax),
                }
            }
        }
        let (local, n) = local_part(&s[i..]).ok_or(PathError::Syntax)?;
        i += n;
        match s.get(i) {
            Some(b'@') => {
                i += 1;
                let n = domain(&s[i..]).ok_or(PathError::Syntax)?;
                let dom = &s[i..i + n];
                i += n;
                if s.get(i) != Some(&b'>') {
                    return Err(PathError::Syntax);
                }
                i += 1;
                if dom.len() > MAX_DOMAIN || local.len() + 1 + dom.len() > MAX_ADDR {
                    return Err(PathError::TooLong);
                }
                let mut a = local;
                a.push(b'@');
                a.extend_from_slice(dom);
                addr = a;
            }
            Some(b'>') => {
                if local.len() > MAX_ADDR {
                    return Err(PathError::TooLong);
                }
                return match s.get(i + 1) {
                    None | Some(b' ') => Err(PathError::NoDomain(local)),
                    _ => Err(PathError::Syntax),
                };
            }
            _ => return Err(PathError::Syntax),
        }
    }
    let rest = &s[i..];
    if rest.is_empty() {
        return Ok(Path {
            addr,
            params: Vec::new(),
        });
    }
    if rest[0] != b' ' {
        return Err(PathError::Syntax);
    }
    let params = rest
        .split(|&c| c == b' ')
        .filter(|p| !p.is_empty())
        .collect();
    Ok(Path { addr, params })
}

/// Splits `KEYWORD[=value]`; None when the keyword is not
/// (ALPHA / DIGIT) *(ALPHA / DIGIT / "-") or the value is empty.
pub fn param(p: &[u8]) -> Option<(Vec<u8>, Option<&[u8]>)> {
    let (k, v) = match memchr::memchr(b'=', p) {
        Some(i) => (&p[..i], Some(&p[i + 1..])),
        None => (p, None),
    };
    if k.is_empty()
        || !k[0].is_ascii_alphanumeric()
        || !k.iter().all(|&c| c.is_ascii_alphanumeric() || c == b'-')
    {
        return None;
    }
    if let Some(v) = v {
        if v.is_empty() || v.contains(&b'=') {
            return None;
        }
    }
    Some((k.to_ascii_uppercase(), v))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_what_is_not_a_dot_string() {
        for (stored, wire) in [
            (&b"a.b@x"[..], &b"a.b@x"[..]),
            (b"x y@b.example", b"\"x y\"@b.example"),
            (b"a\"b@x", b"\"a\\\"b\"@x"),
            (b"a\\b@x", b"\"a\\\\b\"@x"),
            (b".a@x", b"\".a\"@x"),
            (b"a..b@x", b"\"a..b\"@x"),
            (b"a.@x", b"\"a.\"@x"),
            (b"y@z@x", b"\"y@z\"@x"),
            (b"j\xc3\xbcrgen@x", b"j\xc3\xbcrgen@x"),
            (b"", b""),
            (b"@x", b"@x"),
        ] {
            let q = quote(stored);
            assert_eq!(q, wire, "{:?}", String::from_utf8_lossy(stored));
            // and it parses back to what was stored
            if !stored.is_empty() && stored[0] != b'@' {
                let mut p = b"<".to_vec();
                p.extend_from_slice(&q);
                p.push(b'>');
                assert_eq!(parse(&p).unwrap().addr, stored);
            }
        }
    }

    fn addr(s: &[u8]) -> Result<Vec<u8>, PathError> {
        parse(s).map(|p| p.addr)
    }

    #[test]
    fn domains() {
        assert!(super::is_domain(b"mail.example.org"));
        assert!(super::is_domain(b"[192.0.2.1]"));
        assert!(super::is_domain(b"[IPv6:2001:db8::1]"));
        assert!(super::is_domain(b"[ipv6:::1]"));
        for bad in [
            &b""[..],
            b"[300.1.1.1]",
            b"[1.2.3]",
            b"[IPv6:zz]",
            b"[IPv6:192.0.2.1x]",
            b"[x:y]",
            b"[]",
            b"@example.org",
            b"#queue",
            b"a..b",
            b"-a.b",
            b"a b",
            b"a.b.",
            b"caf\xc3\xa9.example",
        ] {
            assert!(!super::is_domain(bad), "{:?}", bad);
        }
    }

    #[test]
    fn paths() {
        assert_eq!(addr(b"<a@b.example>").unwrap(), b"a@b.example");
        assert_eq!(addr(b" <a.b+c@[127.0.0.1]>").unwrap(), b"a.b+c@[127.0.0.1]");
        assert_eq!(addr(b"<>").unwrap(), b"");
        assert_eq!(
            addr(b"<@x.example,@y.example:u@z.example>").unwrap(),
            b"u@z.example"
        );
        assert_eq!(
            addr(b"<\"a b\\\"c\"@d.example>").unwrap(),
            b"a b\"c@d.example"
        );
        assert_eq!(addr(b"<\"a@b\"@d.example>").unwrap(), b"a@b@d.example");
        assert_eq!(
            addr(b"<postmaster>"),
            Err(PathError::NoDomain(b"postmaster".to_vec()))
        );
        assert_eq!(
            addr("<jörg@bücher.example>".as_bytes()).unwrap(),
            "jörg@bücher.example".as_bytes()
        );
        for bad in [
            &b"a@b"[..],
            b"<a@b",
            b"<a@@b>",
            b"<a..b@c>",
            b"<.a@c>",
            b"<a.@c>",
            b"<a@b.>",
            b"<a@-b>",
            b"<a@b->",
            b"<a@b>x",
            b"<a b@c>",
            b"<@x:>",
            b"<@x,y:a@b>",
            b"<\"a@b>",
            b"<a@[]>",
            b"<>x",
        ] {
            assert_eq!(
                addr(bad),
                Err(PathError::Syntax),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        let mut long = b"<".to_vec();
        long.extend(std::iter::repeat_n(b'a', 900));
        long.extend_from_slice(b"@b>");
        assert_eq!(addr(&long), Err(PathError::TooLong));
    }

    #[test]
    fn params() {
        let p = parse(b"<a@b> SIZE=100 BODY=8BITMIME  SMTPUTF8").unwrap();
        assert_eq!(
            p.params,
            vec![&b"SIZE=100"[..], b"BODY=8BITMIME", b"SMTPUTF8"]
        );
        assert_eq!(
            param(b"size=100"),
            Some((b"SIZE".to_vec(), Some(&b"100"[..])))
        );
        assert_eq!(param(b"SMTPUTF8"), Some((b"SMTPUTF8".to_vec(), None)));
        assert_eq!(param(b"-X"), None);
        assert_eq!(param(b"X="), None);
    }
}

//! RFC 3461 (SMTP DSN) parameters: xtext and the values of NOTIFY,
//! ORCPT, RET and ENVID, parsed strictly. Only the parsers so far:
//! smtp-recv does not offer DSN yet (issue 16).

/// Longest ORCPT value, as sent (RFC 3461 4.2).
pub const MAX_ORCPT: usize = 500;
/// Longest ENVID value, as sent (RFC 3461 4.4).
pub const MAX_ENVID: usize = 100;

/// Whether `c` stands for itself in xtext (`!`..`~` but `+` and `=`).
fn is_xchar(c: u8) -> bool {
    (33..=126).contains(&c) && c != b'+' && c != b'='
}

fn hex(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Decodes xtext (RFC 3461 4): xchars, and `+` with two upper-case hex
/// digits for any other byte. None for anything else.
pub fn xtext_decode(s: &[u8]) -> Option<Vec<u8>> {
    let mut v = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        match s[i] {
            b'+' => {
                let h = hex(*s.get(i + 1)?)?;
                let l = hex(*s.get(i + 2)?)?;
                v.push(h << 4 | l);
                i += 3;
            }
            c if is_xchar(c) => {
                v.push(c);
                i += 1;
            }
            _ => return None,
        }
    }
    Some(v)
}

/// Encodes bytes as xtext: `+XX` for `+`, `=`, and bytes outside `!`..`~`.
pub fn xtext_encode(b: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(b.len());
    for &c in b {
        if is_xchar(c) {
            v.push(c);
        } else {
            v.extend_from_slice(format!("+{:02X}", c).as_bytes());
        }
    }
    v
}

/// A NOTIFY value: NEVER, or a set of SUCCESS, FAILURE and DELAY.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Notify {
    pub success: bool,
    pub failure: bool,
    pub delay: bool,
}

impl Notify {
    /// The default when NOTIFY is absent (RFC 3461 4.1): failures and delays.
    pub const DEFAULT: Notify = Notify {
        success: false,
        failure: true,
        delay: true,
    };

    /// Parses `NEVER` or a comma list of SUCCESS, FAILURE, DELAY (any
    /// case, each at most once; NEVER alone).
    pub fn parse(v: &[u8]) -> Option<Notify> {
        if v.eq_ignore_ascii_case(b"NEVER") {
            return Some(Notify::default());
        }
        let mut n = Notify::default();
        for w in v.split(|&c| c == b',') {
            let slot = if w.eq_ignore_ascii_case(b"SUCCESS") {
                &mut n.success
            } else if w.eq_ignore_ascii_case(b"FAILURE") {
                &mut n.failure
            } else if w.eq_ignore_ascii_case(b"DELAY") {
                &mut n.delay
            } else {
                return None;
            };
            if *slot {
                return None;
            }
            *slot = true;
        }
        Some(n)
    }

    /// The wire form: `NEVER` or e.g. `SUCCESS,FAILURE`.
    pub fn encode(&self) -> Vec<u8> {
        let mut w: Vec<&[u8]> = Vec::new();
        for (on, name) in [
            (self.success, &b"SUCCESS"[..]),
            (self.failure, b"FAILURE"),
            (self.delay, b"DELAY"),
        ] {
            if on {
                w.push(name);
            }
        }
        if w.is_empty() {
            b"NEVER".to_vec()
        } else {
            w.join(&b',')
        }
    }
}

/// RET: what a failure DSN carries of the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ret {
    Full,
    Hdrs,
}

impl Ret {
    pub fn parse(v: &[u8]) -> Option<Ret> {
        if v.eq_ignore_ascii_case(b"FULL") {
            Some(Ret::Full)
        } else if v.eq_ignore_ascii_case(b"HDRS") {
            Some(Ret::Hdrs)
        } else {
            None
        }
    }
}

/// An ORCPT value `addr-type ; xtext`: (addr-type, decoded address).
/// The type is an atom (`rfc822`, `utf-8`...); the decoded address must
/// be printable ASCII or UTF-8 without control bytes.
pub fn parse_orcpt(v: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
    if v.len() > MAX_ORCPT {
        return None;
    }
    let semi = memchr::memchr(b';', v)?;
    let (ty, x) = (&v[..semi], &v[semi + 1..]);
    let atom = |c: &u8| c.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`{|}~".contains(c);
    if ty.is_empty() || !ty.iter().all(atom) {
        return None;
    }
    let a = xtext_decode(x)?;
    if a.is_empty() || std::str::from_utf8(&a).is_err() || a.iter().any(|&c| c < 32 || c == 127) {
        return None;
    }
    Some((ty.to_ascii_lowercase(), a))
}

/// An ENVID value: xtext of at most [`MAX_ENVID`] bytes, decoded to
/// printable ASCII.
pub fn parse_envid(v: &[u8]) -> Option<Vec<u8>> {
    if v.is_empty() || v.len() > MAX_ENVID {
        return None;
    }
    let d = xtext_decode(v)?;
    d.iter().all(|&c| (32..=126).contains(&c)).then_some(d)
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn xtext() {
        assert_eq!(xtext_decode(b"a+2Bb+3Dc").unwrap(), b"a+b=c");
        assert_eq!(xtext_decode(b"").unwrap(), b"");
        for bad in [
            &b"+2b"[..],
            b"+2",
            b"+",
            b"a b",
            b"a=b",
            b"\xc3\xa9",
            b"+G0",
        ] {
            assert_eq!(xtext_decode(bad), None, "{:?}", bad);
        }
        assert_eq!(xtext_encode(b"a+b=c d\xc3\xa9"), b"a+2Bb+3Dc+20d+C3+A9");
    }
    #[test]
    fn params() {
        assert_eq!(Notify::parse(b"never").unwrap().encode(), b"NEVER");
        assert_eq!(
            Notify::parse(b"delay,Success").unwrap().encode(),
            b"SUCCESS,DELAY"
        );
        for bad in [
            &b""[..],
            b"NEVER,SUCCESS",
            b"SUCCESS,SUCCESS",
            b"SUCCESS,",
            b"X",
        ] {
            assert_eq!(Notify::parse(bad), None, "{:?}", bad);
        }
        assert_eq!(Ret::parse(b"hdrs"), Some(Ret::Hdrs));
        assert_eq!(Ret::parse(b"ALL"), None);
        assert_eq!(
            parse_orcpt(b"rfc822;john+2Bdoe@x.example").unwrap(),
            (b"rfc822".to_vec(), b"john+doe@x.example".to_vec())
        );
        assert_eq!(parse_orcpt(b"rfc822;"), None);
        assert_eq!(parse_orcpt(b";a@b"), None);
        assert_eq!(parse_orcpt(b"rfc822;a+0Ab"), None);
        assert_eq!(
            parse_orcpt(&[b"rfc822;".as_slice(), &[b'a'; 500]].concat()),
            None
        );
        assert_eq!(parse_envid(b"QQ314159+2B").unwrap(), b"QQ314159+");
        assert_eq!(parse_envid(&[b'a'; 101]), None);
        assert_eq!(parse_envid(b"+00"), None);
    }
}

//! Access rules in tcprules' text format, read by `tcp-serve -x` (tcp-serve(1)).
//!
//! One rule per line: `address:instructions`; `#` starts a comment line;
//! blank lines are skipped. Instructions are `allow` or `deny`, followed by
//! any number of `,VAR=QvalueQ` (Q is any byte: the first byte after `=`
//! opens the value, its next occurrence closes it) or `,VAR` (unset VAR).
//! The address and the instructions are split at the first `:` that is
//! followed by `allow` or `deny`, so IPv6 addresses need no escaping.
//!
//! Address forms: empty (the default), an exact IPv4 or IPv6 address, an
//! IPv4 prefix ending in `.` (`10.0.`), a range in the last number
//! (`1.2.3.4-20`, `10.0-5.`), CIDR (`127.0.0.0/8`, `127.0/8`,
//! `2001:db8::/32`). Host-name and ident forms (`=host`, `=.suffix`, `=`,
//! `info@...`) are accepted and never match (no PTR or ident lookups, as
//! tcpserver -H -R). Lookup order: exact address, then IPv4 prefixes longest
//! first, then CIDR longest first, then the default; within one form the
//! first line wins. No match at all means allow.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// What one rule says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub allow: bool,
    /// Variables in file order: Some(value) sets, None unsets.
    pub vars: Vec<(Vec<u8>, Option<Vec<u8>>)>,
    /// The line the rule came from (1-based).
    pub line: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Key {
    Default,
    Exact(IpAddr),
    Prefix(Vec<u8>),
    Cidr(IpAddr, u8),
    Never,
}

/// A parsed rules file.
#[derive(Debug, Default)]
pub struct Rules {
    entries: Vec<(Key, usize)>,
    rules: Vec<Rule>,
}

/// A malformed line: its number and what is wrong.
#[derive(Debug, PartialEq, Eq)]
pub struct RuleError {
    pub line: usize,
    pub what: &'static str,
}

/// The canonical form of an address: IPv4-mapped IPv6 becomes IPv4.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => ip,
        },
        v4 => v4,
    }
}

/// Parses the whole text of a rules file.
pub fn parse(text: &[u8]) -> Result<Rules, RuleError> {
    let mut r = Rules::default();
    for (i, raw) in text.split(|&c| c == b'\n').enumerate() {
        let line = i + 1;
        let l = crate::parse::trim(raw);
        if l.is_empty() || l[0] == b'#' {
            continue;
        }
        let err = |what| RuleError { line, what };
        let sep = find_sep(l).ok_or(err("no :allow or :deny"))?;
        let keys = parse_addr(&l[..sep]).ok_or(err("bad address"))?;
        let rule = parse_instr(&l[sep + 1..], line).ok_or(err("bad instructions"))?;
        r.rules.push(rule);
        let n = r.rules.len() - 1;
        r.entries.extend(keys.into_iter().map(|k| (k, n)));
    }
    Ok(r)
}

fn find_sep(l: &[u8]) -> Option<usize> {
    let mut at = 0;
    while let Some(i) = memchr::memchr(b':', &l[at..]) {
        let c = at + i;
        let rest = &l[c + 1..];
        for w in [&b"allow"[..], b"deny"] {
            if rest.starts_with(w) && matches!(rest.get(w.len()), None | Some(b',')) {
                return Some(c);
            }
        }
        at = c + 1;
    }
    None
}

fn parse_instr(s: &[u8], line: usize) -> Option<Rule> {
    let (allow, mut rest) = if let Some(r) = s.strip_prefix(b"allow") {
        (true, r)
    } else {
        (false, s.strip_prefix(b"deny")?)
    };
    let mut vars = Vec::new();
    while !rest.is_empty() {
        rest = rest.strip_prefix(b",")?;
        let end = rest
            .iter()
            .position(|&c| c == b'=' || c == b',')
            .unwrap_or(rest.len());
        let name = &rest[..end];
        if name.is_empty() || name.contains(&0) {
            return None;
        }
        rest = &rest[end..];
        match rest.first() {
            Some(b'=') => {
                let q = *rest.get(1)?;
                let body = &rest[2..];
                let close = memchr::memchr(q, body)?;
                let value = &body[..close];
                if value.contains(&0) {
                    return None;
                }
                vars.push((name.to_vec(), Some(value.to_vec())));
                rest = &body[close + 1..];
            }
            _ => vars.push((name.to_vec(), None)),
        }
    }
    Some(Rule { allow, vars, line })
}

/// An IPv4 number component: decimal, no leading zero, at most 255.
fn octet(b: &[u8]) -> Option<u8> {
    if b.is_empty() || b.len() > 3 || (b.len() > 1 && b[0] == b'0') {
        return None;
    }
    crate::parse::number(b)
        .filter(|&n| n <= 255)
        .map(|n| n as u8)
}

fn parse_addr(a: &[u8]) -> Option<Vec<Key>> {
    if a.is_empty() {
        return Some(vec![Key::Default]);
    }
    if a[0] == b'=' || a.contains(&b'@') {
        return Some(vec![Key::Never]);
    }
    let s = std::str::from_utf8(a).ok()?;
    if let Some((ip, bits)) = s.split_once('/') {
        let n = octet_bits(bits)?;
        return if ip.contains(':') {
            let v6: Ipv6Addr = ip.parse().ok()?;
            if n > 128 {
                return None;
            }
            Some(vec![cidr_key(IpAddr::V6(v6), n)])
        } else {
            let parts: Vec<&str> = ip.split('.').collect();
            if parts.len() > 4 || n > 32 {
                return None;
            }
            let mut o = [0u8; 4];
            for (i, p) in parts.iter().enumerate() {
                o[i] = octet(p.as_bytes())?;
            }
            Some(vec![cidr_key(IpAddr::V4(Ipv4Addr::from(o)), n)])
        };
    }
    if s.contains(':') {
        let v6: Ipv6Addr = s.parse().ok()?;
        return Some(vec![Key::Exact(canonical(IpAddr::V6(v6)))]);
    }
    // IPv4: exact, prefix ending in '.', or either with a range in the last number.
    let dot = s.ends_with('.');
    let body = if dot { &s[..s.len() - 1] } else { s };
    let parts: Vec<&str> = body.split('.').collect();
    if parts.len() > 4 || (dot && parts.len() > 3) || (!dot && parts.len() != 4) {
        return None;
    }
    let mut head = Vec::new();
    for p in &parts[..parts.len() - 1] {
        head.push(octet(p.as_bytes())?);
    }
    let last = parts[parts.len() - 1];
    let (lo, hi) = match last.split_once('-') {
        Some((l, h)) => (octet(l.as_bytes())?, octet(h.as_bytes())?),
        None => (octet(last.as_bytes())?, octet(last.as_bytes())?),
    };
    if lo > hi {
        return None;
    }
    let mut keys = Vec::new();
    for n in lo..=hi {
        let mut o = head.clone();
        o.push(n);
        if dot {
            let mut t: Vec<u8> = o
                .iter()
                .map(|x| x.to_string())
                .collect::<Vec<_>>()
                .join(".")
                .into_bytes();
            t.push(b'.');
            keys.push(Key::Prefix(t));
        } else {
            keys.push(Key::Exact(IpAddr::V4(Ipv4Addr::new(
                o[0], o[1], o[2], o[3],
            ))));
        }
    }
    Some(keys)
}

fn octet_bits(b: &str) -> Option<u8> {
    if b.is_empty() || b.len() > 3 || (b.len() > 1 && b.starts_with('0')) {
        return None;
    }
    crate::parse::number(b.as_bytes())
        .filter(|&n| n <= 128)
        .map(|n| n as u8)
}

fn mask(ip: IpAddr, n: u8) -> IpAddr {
    match ip {
        IpAddr::V4(v) => {
            let m = if n == 0 {
                0
            } else {
                u32::MAX << (32 - n as u32)
            };
            IpAddr::V4(Ipv4Addr::from(u32::from(v) & m))
        }
        IpAddr::V6(v) => {
            let m = if n == 0 {
                0
            } else {
                u128::MAX << (128 - n as u32)
            };
            IpAddr::V6(Ipv6Addr::from(u128::from(v) & m))
        }
    }
}

fn cidr_key(ip: IpAddr, n: u8) -> Key {
    Key::Cidr(mask(ip, n), n)
}

impl Rules {
    /// The rule for a client address; None when no rule matches (allow).
    pub fn lookup(&self, ip: IpAddr) -> Option<&Rule> {
        let ip = canonical(ip);
        let first = |want: &dyn Fn(&Key) -> bool| {
            self.entries.iter().find(|(k, _)| want(k)).map(|(_, n)| *n)
        };
        if let Some(n) = first(&|k| *k == Key::Exact(ip)) {
            return Some(&self.rules[n]);
        }
        if let IpAddr::V4(v4) = ip {
            let text = v4.to_string().into_bytes();
            for end in (0..text.len()).rev().filter(|&i| text[i] == b'.') {
                let p = &text[..=end];
                if let Some(n) = first(&|k| matches!(k, Key::Prefix(x) if x.as_slice() == p)) {
                    return Some(&self.rules[n]);
                }
            }
        }
        let mut best: Option<(u8, usize)> = None;
        for (k, n) in &self.entries {
            if let Key::Cidr(net, bits) = k {
                let same = net.is_ipv4() == ip.is_ipv4();
                if same && mask(ip, *bits) == *net && best.is_none_or(|(b, _)| *bits > b) {
                    best = Some((*bits, *n));
                }
            }
        }
        if let Some((_, n)) = best {
            return Some(&self.rules[n]);
        }
        first(&|k| *k == Key::Default).map(|n| &self.rules[n])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn line_of(r: &Rules, a: &str) -> Option<usize> {
        r.lookup(ip(a)).map(|x| x.line)
    }

    #[test]
    fn instructions_and_quotes() {
        let r = parse(b"127.0.0.1:allow,RELAYCLIENT=\"\",X=/a,b/,Y='q\"',GONE\n").unwrap();
        let x = r.lookup(ip("127.0.0.1")).unwrap();
        assert!(x.allow);
        assert_eq!(
            x.vars,
            vec![
                (b"RELAYCLIENT".to_vec(), Some(b"".to_vec())),
                (b"X".to_vec(), Some(b"a,b".to_vec())),
                (b"Y".to_vec(), Some(b"q\"".to_vec())),
                (b"GONE".to_vec(), None),
            ]
        );
        assert!(
            !parse(b"1.2.3.4:deny\n")
                .unwrap()
                .lookup(ip("1.2.3.4"))
                .unwrap()
                .allow
        );
    }

    #[test]
    fn lookup_order_longest_first() {
        let text = b"# comment\n\n:deny\n127.:allow,A=\"1\"\n127.0.:allow,A=\"2\"\n127.0.0.1:allow,A=\"3\"\n\
10.0.0.0/8:allow\n10.1.0.0/16:deny\n10.1.:allow\n1.2.3.4-20:allow\n192.168.0-1.:allow\n::1:allow\n\
2001:db8::/32:allow\n2001:db8:1::/48:deny\n=host.example:deny\ninfo@1.2.3.4:deny\n";
        let r = parse(text).unwrap();
        assert_eq!(line_of(&r, "127.0.0.1"), Some(6));
        assert_eq!(line_of(&r, "127.0.0.2"), Some(5));
        assert_eq!(line_of(&r, "127.1.0.2"), Some(4));
        assert_eq!(line_of(&r, "128.0.0.1"), Some(3));
        assert_eq!(line_of(&r, "10.2.3.4"), Some(7));
        // The dotted prefix comes before CIDR, as in tcprules' lookup order.
        assert_eq!(line_of(&r, "10.1.3.4"), Some(9));
        assert_eq!(line_of(&r, "1.2.3.4"), Some(10));
        assert_eq!(line_of(&r, "1.2.3.20"), Some(10));
        assert_eq!(line_of(&r, "1.2.3.21"), Some(3));
        assert_eq!(line_of(&r, "192.168.1.9"), Some(11));
        assert_eq!(line_of(&r, "192.168.2.9"), Some(3));
        assert_eq!(line_of(&r, "::1"), Some(12));
        assert_eq!(line_of(&r, "::ffff:127.0.0.1"), Some(6));
        assert_eq!(line_of(&r, "2001:db8:2::1"), Some(13));
        assert_eq!(line_of(&r, "2001:db8:1::1"), Some(14));
        assert_eq!(line_of(&r, "2002::1"), Some(3));
    }

    #[test]
    fn no_rule_means_none() {
        let r = parse(b"10.:deny\n").unwrap();
        assert!(r.lookup(ip("127.0.0.1")).is_none());
    }

    #[test]
    fn first_line_wins_for_same_address() {
        let r = parse(b"1.2.3.4:deny\n1.2.3.4:allow\n").unwrap();
        assert_eq!(line_of(&r, "1.2.3.4"), Some(1));
    }

    #[test]
    fn malformed_lines_name_the_line() {
        for (text, line) in [
            (&b"1.2.3.4:allow\n1.2.3.4 allow\n"[..], 2),
            (b"1.2.3.4:permit\n", 1),
            (b"1.2.3.400:allow\n", 1),
            (b"1.2.3:allow\n", 1),
            (b"1.2.3.4.:allow\n", 1),
            (b"1.2.3.9-4:allow\n", 1),
            (b"01.2.3.4:allow\n", 1),
            (b"1.2.3.4:allow,X=\"open\n", 1),
            (b"1.2.3.4:allow,=\"x\"\n", 1),
            (b"1.2.3.4:allow,X=\n", 1),
            (b"1.2.3.4:allow,X=\"a\"junk\n", 1),
            (b"1.2.3.4:allow,\n", 1),
            (b"127.0.0.0/33:allow\n", 1),
            (b"::1/129:allow\n", 1),
            (b"zz::1:allow\n", 1),
            (b"\n\nfoo:deny\n", 3),
            (b"1.2.3.4:allowed\n", 1),
        ] {
            assert_eq!(
                parse(text).unwrap_err().line,
                line,
                "{:?}",
                String::from_utf8_lossy(text)
            );
        }
    }

    #[test]
    fn cidr_short_forms_and_host_bits() {
        let r = parse(b"127.0/8:allow\n10.9.9.9/8:deny\n").unwrap();
        assert_eq!(line_of(&r, "127.3.4.5"), Some(1));
        assert_eq!(line_of(&r, "10.1.1.1"), Some(2));
        let r = parse(b"0.0.0.0/0:deny\n").unwrap();
        assert_eq!(line_of(&r, "8.8.8.8"), Some(1));
        assert!(r.lookup(ip("::1")).is_none());
    }
}

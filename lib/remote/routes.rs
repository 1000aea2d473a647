//! control/smtproutes: qmail's `domain:relay[:port]` lines.
//!
//! `example.org:relay.example.net` sends mail for example.org to that
//! relay; `.example.org:...` matches every subdomain; `:relay` (empty
//! domain) matches everything; an empty relay (`example.org:`) means the
//! normal MX lookup, which lets an exception stand before a wildcard. The
//! relay may be `[1.2.3.4]` or `[IPv6]`; the port defaults to 25 (or
//! `$SMTPPORT`). The first line whose domain matches wins, trying the exact
//! domain, then each `.suffix` from the longest, then the empty domain.

/// Where a matching line sends the mail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// The relay host (name or `[ip]`); None = normal MX lookup.
    pub relay: Option<Vec<u8>>,
    pub port: Option<u16>,
}

/// Parses one line into (domain, route).
pub fn parse_line(line: &[u8]) -> Result<(Vec<u8>, Route), &'static str> {
    let colon = memchr::memchr(b':', line).ok_or("missing colon")?;
    let domain = line[..colon].to_ascii_lowercase();
    let rest = &line[colon + 1..];
    let (relay, port) = if rest.first() == Some(&b'[') {
        let end = memchr::memchr(b']', rest).ok_or("missing ] in relay")?;
        let tail = &rest[end + 1..];
        let port = match tail {
            [] => None,
            [b':', p @ ..] => Some(p),
            _ => return Err("junk after ]"),
        };
        (&rest[..=end], port)
    } else {
        match memchr::memchr(b':', rest) {
            Some(i) => (&rest[..i], Some(&rest[i + 1..])),
            None => (rest, None),
        }
    };
    let port = match port {
        None | Some([]) => None,
        Some(p) => match crate::parse::number(p) {
            Some(n) if (1..=65535).contains(&n) => Some(n as u16),
            _ => return Err("bad port"),
        },
    };
    let relay = if relay.is_empty() {
        None
    } else {
        Some(relay.to_ascii_lowercase())
    };
    Ok((domain, Route { relay, port }))
}

/// The route for `host`, if a line matches. A malformed line is an error
/// (line number, reason).
pub fn find(lines: &[Vec<u8>], host: &[u8]) -> Result<Option<Route>, (usize, &'static str)> {
    let mut table = Vec::with_capacity(lines.len());
    for (n, l) in lines.iter().enumerate() {
        table.push(parse_line(l).map_err(|e| (n + 1, e))?);
    }
    for k in keys(host) {
        if let Some((_, r)) = table.iter().find(|(d, _)| *d == k) {
            return Ok(Some(r.clone()));
        }
    }
    Ok(None)
}

/// The keys a per-domain control line may have, best first: the domain,
/// each `.suffix` from the longest, then the empty domain.
pub fn keys(host: &[u8]) -> Vec<Vec<u8>> {
    let host = host.to_ascii_lowercase();
    let mut keys = vec![host.clone()];
    for (i, &c) in host.iter().enumerate() {
        if c == b'.' {
            keys.push(host[i..].to_vec());
        }
    }
    keys.push(Vec::new());
    keys
}

#[cfg(test)]
mod tests {
    use super::*;
    fn r(relay: Option<&str>, port: Option<u16>) -> Option<Route> {
        Some(Route {
            relay: relay.map(|s| s.as_bytes().to_vec()),
            port,
        })
    }
    #[test]
    fn parses_and_matches() {
        let t: Vec<Vec<u8>> = [
            "example.org:relay.example.net",
            ".sub.example.org:[10.0.0.1]:2525",
            "no.example.org:",
            ":smart.host:587",
            "v6.test:[::1]:26",
        ]
        .iter()
        .map(|s| s.as_bytes().to_vec())
        .collect();
        assert_eq!(
            find(&t, b"Example.ORG").unwrap(),
            r(Some("relay.example.net"), None)
        );
        assert_eq!(
            find(&t, b"a.b.sub.example.org").unwrap(),
            r(Some("[10.0.0.1]"), Some(2525))
        );
        assert_eq!(find(&t, b"no.example.org").unwrap(), r(None, None));
        assert_eq!(
            find(&t, b"other.net").unwrap(),
            r(Some("smart.host"), Some(587))
        );
        assert_eq!(find(&t, b"v6.test").unwrap(), r(Some("[::1]"), Some(26)));
        assert_eq!(find(&t[..1], b"other.net").unwrap(), None);
        assert_eq!(
            find(&[b":127.0.0.1:2525".to_vec()], b"x.y").unwrap(),
            r(Some("127.0.0.1"), Some(2525))
        );
        assert!(find(&[b"x".to_vec()], b"x").is_err());
        assert!(find(&[b"x:h:99999".to_vec()], b"x").is_err());
        assert!(find(&[b"x:[1.2.3.4]junk".to_vec()], b"x").is_err());
    }
}

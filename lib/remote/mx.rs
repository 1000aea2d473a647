//! Which addresses to try, in which order, for a host.
//!
//! control/smtproutes first: a relay named there is looked up by A/AAAA and
//! tried as given (no MX, no loop check: the administrator asked for it;
//! a bare IP works as `[ip]` does;
//! e.g. a content filter on 127.0.0.1:10025). Otherwise `[ip]` literals
//! are used as they are and domains by MX: lowest preference first, random
//! order among equal preferences, A then AAAA records of each exchanger;
//! no MX → the domain's own A/AAAA; a null MX (RFC 7505) → permanent.
//! Then the loop check: exchangers whose preference is not lower than the
//! best one that is this host are dropped.

use super::Config;
use crate::dns::{Fail, Resolver};
use std::net::IpAddr;

/// A final report (letter, text) instead of addresses.
pub type Stop = (u8, Vec<u8>);

/// `[1.2.3.4]`, `[IPv6:...]` or `[::1]`: the address.
pub fn literal(host: &[u8]) -> Option<IpAddr> {
    let inner = host.strip_prefix(b"[")?.strip_suffix(b"]")?;
    let inner = if inner.len() > 5 && inner[..5].eq_ignore_ascii_case(b"ipv6:") {
        &inner[5..]
    } else {
        inner
    };
    std::str::from_utf8(inner).ok()?.parse().ok()
}

/// Random order among equal preferences, then sorted by preference.
pub fn order(mut mxs: Vec<(u16, Vec<u8>)>) -> Vec<(u16, Vec<u8>)> {
    let mut keys = vec![0u8; mxs.len() * 4];
    crate::sys::random(&mut keys);
    let mut k: Vec<(u16, u32, Vec<u8>)> = mxs
        .drain(..)
        .enumerate()
        .map(|(i, (p, h))| {
            (
                p,
                u32::from_le_bytes(keys[i * 4..i * 4 + 4].try_into().unwrap_or([0; 4])),
                h,
            )
        })
        .collect();
    k.sort();
    k.into_iter().map(|(p, _, h)| (p, h)).collect()
}

/// The addresses of `name`: A first (a broken IPv6 route costs a connect
/// timeout; IPv4 rarely does), then AAAA. When nothing is found: the
/// temporary failure if a lookup had one, else the permanent one.
fn addrs(r: &Resolver, name: &[u8]) -> Result<Vec<IpAddr>, Fail> {
    let mut v = Vec::new();
    let mut soft = None;
    let mut hard = None;
    match r.a(name) {
        Ok(a) => v.extend(a.into_iter().map(IpAddr::V4)),
        Err(f @ Fail::Temp(_)) => soft = Some(f),
        Err(f) => hard = Some(f),
    }
    match r.aaaa(name) {
        Ok(a) => v.extend(a.into_iter().map(IpAddr::V6)),
        Err(f @ Fail::Temp(_)) => soft = Some(f),
        Err(f) => hard = hard.or(Some(f)),
    }
    if !v.is_empty() {
        return Ok(v);
    }
    Err(soft.or(hard).unwrap_or(Fail::NoData))
}

fn temp_dns(f: &Fail) -> Stop {
    (
        b'Z',
        [
            &b"Sorry, I couldn't find any host by that name. (#4.1.2)\nDNS: "[..],
            f.text().as_bytes(),
            b"\n",
        ]
        .concat(),
    )
}

/// The addresses to try for `host` and the port.
pub fn targets(cfg: &Config, r: &Resolver, host: &[u8]) -> Result<(Vec<IpAddr>, u16), Stop> {
    let route = match super::routes::find(&cfg.routes, host) {
        Ok(r) => r,
        Err(_) => {
            return Err((
                b'Z',
                b"Unable to read control/smtproutes. (#4.3.0)\n".to_vec(),
            ))
        }
    };
    let port = route.as_ref().and_then(|r| r.port).unwrap_or(cfg.port);
    if let Some(relay) = route.and_then(|r| r.relay) {
        let bare = std::str::from_utf8(&relay)
            .ok()
            .and_then(|s| s.parse::<IpAddr>().ok());
        if let Some(ip) = literal(&relay).or(bare) {
            return Ok((vec![ip], port));
        }
        return match addrs(r, &relay) {
            Ok(v) => Ok((v, port)),
            Err(f @ Fail::Temp(_)) => Err(temp_dns(&f)),
            Err(_) => Err((
                b'Z',
                [
                    &b"Sorry, I couldn't find the smtproutes relay "[..],
                    &relay,
                    b". (#4.4.3)\n",
                ]
                .concat(),
            )),
        };
    }
    let mut list: Vec<(u16, IpAddr)> = Vec::new();
    if let Some(ip) = literal(host) {
        list.push((0, ip));
    } else if host.first() == Some(&b'[') {
        return Err((
            b'D',
            b"Sorry, I couldn't understand that address literal. (#5.1.2)\n".to_vec(),
        ));
    } else {
        let mxs = match r.mx(host) {
            Ok(m) => m,
            Err(Fail::NoData) => vec![(0, host.to_vec())],
            Err(Fail::NxDomain) | Err(Fail::BadName) => {
                return Err((
                    b'D',
                    [
                        &b"Sorry, I couldn't find any host named "[..],
                        host,
                        b". (#5.1.2)\n",
                    ]
                    .concat(),
                ))
            }
            Err(f) => return Err(temp_dns(&f)),
        };
        if mxs.iter().any(|(_, h)| h.is_empty()) {
            return Err((
                b'D',
                [
                    &b"Sorry, "[..],
                    host,
                    b" does not accept mail: it publishes a null MX (RFC 7505). (#5.1.10)\n",
                ]
                .concat(),
            ));
        }
        let mut soft = None;
        for (pref, name) in order(mxs) {
            match addrs(r, &name) {
                Ok(v) => list.extend(v.into_iter().map(|ip| (pref, ip))),
                Err(f @ Fail::Temp(_)) => soft = Some(f),
                Err(_) => {}
            }
        }
        if list.is_empty() {
            return Err(match soft {
                Some(f) => temp_dns(&f),
                None => (
                    b'D',
                    b"Sorry, I couldn't find a mail exchanger or IP address. (#5.4.4)\n".to_vec(),
                ),
            });
        }
    }
    if let Some(best) = list
        .iter()
        .filter(|(_, ip)| cfg.ipme.is_me(*ip))
        .map(|(p, _)| *p)
        .min()
    {
        list.retain(|(p, _)| *p < best);
        if list.is_empty() {
            return Err((
                b'D',
                b"Sorry. Although I'm listed as a best-preference MX or A for that host,\nit isn't in my control/locals file, so I don't treat it as local. (#5.4.6)\n".to_vec(),
            ));
        }
    }
    let mut ips: Vec<IpAddr> = Vec::new();
    for (_, ip) in list {
        if !ips.contains(&ip) {
            ips.push(ip);
        }
    }
    Ok((ips, port))
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn literals() {
        assert_eq!(literal(b"[127.0.0.1]"), Some("127.0.0.1".parse().unwrap()));
        assert_eq!(literal(b"[IPv6:::1]"), Some("::1".parse().unwrap()));
        assert_eq!(literal(b"[::1]"), Some("::1".parse().unwrap()));
        assert_eq!(literal(b"[1.2.3]"), None);
        assert_eq!(literal(b"example.org"), None);
    }
    #[test]
    fn orders_by_preference_and_shuffles_equals() {
        let mut seen_first = std::collections::HashSet::new();
        for _ in 0..64 {
            let o = order(vec![
                (20, b"c".to_vec()),
                (10, b"a".to_vec()),
                (10, b"b".to_vec()),
                (5, b"z".to_vec()),
            ]);
            assert_eq!(o[0].1, b"z");
            assert_eq!(o[3].1, b"c");
            seen_first.insert(o[1].1.clone());
        }
        assert_eq!(seen_first.len(), 2);
    }
}

//! A small stub resolver: asks the recursive servers of /etc/resolv.conf
//! (or `$DNSCACHEIP`) and follows CNAME chains.
//!
//! UDP with an EDNS0 buffer of [`packet::EDNS_SIZE`], TCP when the answer is
//! truncated; random ids, a fresh socket (random source port) per try;
//! `attempts` rounds over all servers with `timeout` seconds per try
//! (resolv.conf's `options timeout:N attempts:N`, overridden by
//! `$RES_OPTIONS` as in the C library). Answers that are not for our
//! question (id, name, type, class), or too short or garbled to tell, are
//! ignored; broken ones whose question matched count as a
//! failed server. Results: records, [`Fail::NxDomain`] and [`Fail::NoData`]
//! (permanent), [`Fail::Temp`] (SERVFAIL, timeouts, broken answers).

pub mod packet;

use packet::{Malformed, Record};
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

/// How many CNAMEs a lookup follows.
pub const MAX_CNAME: usize = 8;

/// Why a lookup found nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fail {
    /// The name does not exist (permanent).
    NxDomain,
    /// The name exists but has no record of that type (permanent).
    NoData,
    /// No usable answer now: timeout, SERVFAIL, broken answers (temporary).
    Temp(String),
    /// The name cannot be asked for (empty label, too long).
    BadName,
}

impl Fail {
    pub fn text(&self) -> String {
        match self {
            Fail::NxDomain => "no such domain".into(),
            Fail::NoData => "no record of that type".into(),
            Fail::Temp(t) => t.clone(),
            Fail::BadName => "malformed domain name".into(),
        }
    }
}

pub struct Resolver {
    pub servers: Vec<SocketAddr>,
    pub timeout: u64,
    pub attempts: u32,
}

/// Parses one server: `IP`, `IP:port`, `[IPv6]:port` or a bare IPv6.
pub fn parse_server(s: &str) -> Option<SocketAddr> {
    let s = s.trim();
    if let Some(rest) = s.strip_prefix('[') {
        let (ip, tail) = rest.split_once(']')?;
        let ip: Ipv6Addr = ip.split('%').next()?.parse().ok()?;
        let port = match tail {
            "" => 53,
            t => t.strip_prefix(':')?.parse().ok()?,
        };
        return Some(SocketAddr::new(IpAddr::V6(ip), port));
    }
    if let Ok(ip) = s.split('%').next()?.parse::<IpAddr>() {
        return Some(SocketAddr::new(ip, 53));
    }
    let (ip, port) = s.rsplit_once(':')?;
    Some(SocketAddr::new(
        IpAddr::V4(ip.parse().ok()?),
        port.parse().ok()?,
    ))
}

fn apply_options(r: &mut Resolver, words: &str) {
    for w in words.split_whitespace() {
        if let Some(n) = w
            .strip_prefix("timeout:")
            .and_then(|n| n.parse::<u64>().ok())
        {
            r.timeout = n.clamp(1, 30);
        } else if let Some(n) = w
            .strip_prefix("attempts:")
            .and_then(|n| n.parse::<u32>().ok())
        {
            r.attempts = n.clamp(1, 5);
        }
    }
}

impl Resolver {
    /// Servers from `$DNSCACHEIP` (whitespace or comma separated) or
    /// /etc/resolv.conf (127.0.0.1 when it names none).
    pub fn from_env() -> Resolver {
        let mut r = Resolver {
            servers: Vec::new(),
            timeout: 5,
            attempts: 2,
        };
        let conf = std::fs::read("/etc/resolv.conf").unwrap_or_default();
        for line in String::from_utf8_lossy(&conf).lines() {
            let mut w = line.split_whitespace();
            match w.next() {
                Some("nameserver") => {
                    if let Some(s) = w.next().and_then(parse_server) {
                        r.servers.push(s);
                    }
                }
                Some("options") => apply_options(&mut r, &w.collect::<Vec<_>>().join(" ")),
                _ => {}
            }
        }
        if let Ok(v) = std::env::var("DNSCACHEIP") {
            let s: Vec<SocketAddr> = v
                .split(|c: char| c == ',' || c.is_whitespace())
                .filter_map(parse_server)
                .collect();
            if !s.is_empty() {
                r.servers = s;
            }
        }
        if r.servers.is_empty() {
            r.servers
                .push(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 53));
        }
        if let Ok(o) = std::env::var("RES_OPTIONS") {
            apply_options(&mut r, &o);
        }
        r
    }

    /// One question to the servers until one answers: the packet and its
    /// parsed form (rcode OK or NXDOMAIN).
    fn exchange(&self, name: &[u8], qtype: u16) -> Result<(Vec<u8>, packet::Answer), Fail> {
        let mut last = String::from("no name server answered");
        for _ in 0..self.attempts {
            for &server in &self.servers {
                let mut id = [0u8; 2];
                crate::sys::random(&mut id);
                let q = packet::query(u16::from_be_bytes(id), name, qtype).ok_or(Fail::BadName)?;
                match self.ask(server, &q) {
                    Ok((p, a)) => match a.rcode {
                        packet::RCODE_OK | packet::RCODE_NXDOMAIN => return Ok((p, a)),
                        packet::RCODE_SERVFAIL => last = format!("{} said SERVFAIL", server),
                        c => last = format!("{} said rcode {}", server, c),
                    },
                    Err(e) => last = format!("{}: {}", server, e),
                }
            }
        }
        Err(Fail::Temp(last))
    }

    fn ask(&self, server: SocketAddr, q: &[u8]) -> Result<(Vec<u8>, packet::Answer), String> {
        let (p, a) = self.ask_udp(server, q)?;
        if a.truncated {
            return self.ask_tcp(server, q);
        }
        Ok((p, a))
    }

    fn ask_udp(&self, server: SocketAddr, q: &[u8]) -> Result<(Vec<u8>, packet::Answer), String> {
        let local: SocketAddr = match server {
            SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
            SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
        };
        let err = |e: std::io::Error| crate::exit::errtext(&e);
        let sock = UdpSocket::bind(local).map_err(err)?;
        sock.connect(server).map_err(err)?;
        sock.send(q).map_err(err)?;
        let deadline = Instant::now() + Duration::from_secs(self.timeout);
        let mut buf = vec![0u8; 65536];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err("timed out".into());
            }
            sock.set_read_timeout(Some(left)).map_err(err)?;
            let n = match sock.recv(&mut buf) {
                Ok(n) => n,
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    return Err("timed out".into())
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(err(e)),
            };
            let p = buf[..n].to_vec();
            match packet::parse(&p, q) {
                Ok(a) => return Ok((p, a)),
                Err(Malformed::NotOurs) => continue, // spoofed or stale: keep waiting
                Err(Malformed::Bad(why)) => return Err(format!("malformed answer: {}", why)),
            }
        }
    }

    fn ask_tcp(&self, server: SocketAddr, q: &[u8]) -> Result<(Vec<u8>, packet::Answer), String> {
        let err = |e: std::io::Error| crate::exit::errtext(&e);
        let t = Duration::from_secs(self.timeout);
        let deadline = Instant::now() + t;
        let mut s = TcpStream::connect_timeout(&server, t).map_err(err)?;
        s.set_write_timeout(Some(t)).map_err(err)?;
        let mut out = (q.len() as u16).to_be_bytes().to_vec();
        out.extend_from_slice(q);
        s.write_all(&out).map_err(err)?;
        let mut read_exact = |buf: &mut [u8]| -> Result<(), String> {
            let mut got = 0;
            while got < buf.len() {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err("timed out".into());
                }
                s.set_read_timeout(Some(left)).map_err(err)?;
                match s.read(&mut buf[got..]) {
                    Ok(0) => return Err("connection closed".into()),
                    Ok(n) => got += n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e)
                        if matches!(
                            e.kind(),
                            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                        ) =>
                    {
                        return Err("timed out".into())
                    }
                    Err(e) => return Err(err(e)),
                }
            }
            Ok(())
        };
        let mut len = [0u8; 2];
        read_exact(&mut len)?;
        let mut p = vec![0u8; u16::from_be_bytes(len) as usize];
        read_exact(&mut p)?;
        match packet::parse(&p, q) {
            Ok(a) => Ok((p, a)),
            Err(Malformed::NotOurs) => Err("answer over TCP is not for our question".into()),
            Err(Malformed::Bad(why)) => Err(format!("malformed answer: {}", why)),
        }
    }

    /// Records of `qtype` for `name`, following CNAMEs (in the answer, then
    /// by asking again), at most [`MAX_CNAME`] of them.
    pub fn lookup(&self, name: &[u8], qtype: u16) -> Result<(Vec<u8>, Vec<Record>), Fail> {
        let mut cur = name.strip_suffix(b".").unwrap_or(name).to_ascii_lowercase();
        let mut hops = 0;
        loop {
            let (p, a) = self.exchange(&cur, qtype)?;
            if a.rcode == packet::RCODE_NXDOMAIN {
                return Err(Fail::NxDomain);
            }
            let asked = cur.clone();
            loop {
                let found: Vec<Record> = a
                    .answers
                    .iter()
                    .filter(|r| r.name == cur && r.rtype == qtype && r.class == packet::CLASS_IN)
                    .cloned()
                    .collect();
                if !found.is_empty() {
                    return Ok((p, found));
                }
                let cname = a
                    .answers
                    .iter()
                    .find(|r| r.name == cur && r.rtype == packet::TYPE_CNAME);
                match cname {
                    Some(r) => {
                        hops += 1;
                        if hops > MAX_CNAME {
                            return Err(Fail::Temp(format!("more than {} CNAMEs", MAX_CNAME)));
                        }
                        cur = packet::rdata_name(&p, r)
                            .map_err(|_| Fail::Temp("malformed CNAME record".into()))?;
                    }
                    None => break,
                }
            }
            if cur == asked {
                return Err(Fail::NoData);
            }
        }
    }

    fn decode<T>(
        &self,
        name: &[u8],
        qtype: u16,
        f: impl Fn(&[u8], &Record) -> Result<T, Malformed>,
    ) -> Result<Vec<T>, Fail> {
        let (p, recs) = self.lookup(name, qtype)?;
        recs.iter()
            .map(|r| f(&p, r).map_err(|_| Fail::Temp("malformed record in the answer".into())))
            .collect()
    }

    /// MX records: (preference, exchange), in the order received.
    pub fn mx(&self, name: &[u8]) -> Result<Vec<(u16, Vec<u8>)>, Fail> {
        self.decode(name, packet::TYPE_MX, packet::rdata_mx)
    }

    pub fn a(&self, name: &[u8]) -> Result<Vec<Ipv4Addr>, Fail> {
        self.decode(name, packet::TYPE_A, |p, r| match packet::rdata(p, r) {
            [a, b, c, d] => Ok(Ipv4Addr::new(*a, *b, *c, *d)),
            _ => Err(Malformed::Bad("A record is not 4 bytes")),
        })
    }

    pub fn aaaa(&self, name: &[u8]) -> Result<Vec<Ipv6Addr>, Fail> {
        self.decode(name, packet::TYPE_AAAA, |p, r| {
            let b: [u8; 16] = packet::rdata(p, r)
                .try_into()
                .map_err(|_| Malformed::Bad("AAAA record is not 16 bytes"))?;
            Ok(Ipv6Addr::from(b))
        })
    }

    pub fn txt(&self, name: &[u8]) -> Result<Vec<Vec<u8>>, Fail> {
        self.decode(name, packet::TYPE_TXT, packet::rdata_txt)
    }

    pub fn ptr(&self, ip: IpAddr) -> Result<Vec<Vec<u8>>, Fail> {
        self.decode(&reverse_name(ip), packet::TYPE_PTR, packet::rdata_name)
    }
}

/// The in-addr.arpa / ip6.arpa name of an address.
pub fn reverse_name(ip: IpAddr) -> Vec<u8> {
    let zone: &[u8] = if ip.is_ipv4() {
        b".in-addr.arpa"
    } else {
        b".ip6.arpa"
    };
    [reverse_labels(ip), zone.to_vec()].concat()
}

/// The address's labels in reverse order: `1.2.0.192` for 192.0.2.1,
/// nibbles for IPv6 (the prefix of a reverse or DNSBL name, RFC 5782).
pub fn reverse_labels(ip: IpAddr) -> Vec<u8> {
    match ip {
        IpAddr::V4(v) => {
            let o = v.octets();
            format!("{}.{}.{}.{}", o[3], o[2], o[1], o[0]).into_bytes()
        }
        IpAddr::V6(v) => {
            let mut s = String::new();
            for b in v.octets().iter().rev() {
                s.push_str(&format!("{:x}.{:x}.", b & 0x0f, b >> 4));
            }
            s.pop();
            s.into_bytes()
        }
    }
}

/// The lines `dns-query KIND NAME` prints: mx `PREF HOST` (sorted by
/// preference), a and aaaa one address, txt the text (bytes outside
/// printable ASCII, and `\\`, as `\ooo` octal), ptr one name.
/// None when `kind` is not known.
pub fn query_lines(r: &Resolver, kind: &[u8], name: &[u8]) -> Option<Result<Vec<Vec<u8>>, Fail>> {
    let kind = kind.to_ascii_lowercase();
    let lines = match &kind[..] {
        b"mx" => r.mx(name).map(|mut v| {
            v.sort();
            v.into_iter()
                .map(|(p, h)| {
                    let h = if h.is_empty() { b".".to_vec() } else { h };
                    [p.to_string().into_bytes(), b" ".to_vec(), h].concat()
                })
                .collect()
        }),
        b"a" => r
            .a(name)
            .map(|v| v.iter().map(|i| i.to_string().into_bytes()).collect()),
        b"aaaa" => r
            .aaaa(name)
            .map(|v| v.iter().map(|i| i.to_string().into_bytes()).collect()),
        b"txt" => r
            .txt(name)
            .map(|v| v.iter().map(|t| escape_txt(t)).collect()),
        b"ptr" => {
            let ip = std::str::from_utf8(name)
                .ok()
                .and_then(|s| s.parse::<IpAddr>().ok());
            match ip {
                Some(ip) => r.ptr(ip),
                None => Err(Fail::BadName),
            }
        }
        _ => return None,
    };
    Some(lines)
}

fn escape_txt(t: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(t.len());
    for &c in t {
        if (0x20..0x7f).contains(&c) && c != b'\\' {
            out.push(c);
        } else {
            out.extend_from_slice(format!("\\{:03o}", c).as_bytes());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn parses_servers() {
        assert_eq!(
            parse_server("10.0.0.1"),
            Some("10.0.0.1:53".parse().unwrap())
        );
        assert_eq!(
            parse_server("127.0.0.1:5353"),
            Some("127.0.0.1:5353".parse().unwrap())
        );
        assert_eq!(
            parse_server("[::1]:5353"),
            Some("[::1]:5353".parse().unwrap())
        );
        assert_eq!(parse_server("::1"), Some("[::1]:53".parse().unwrap()));
        assert_eq!(
            parse_server("fe80::1%eth0"),
            Some("[fe80::1]:53".parse().unwrap())
        );
        assert_eq!(parse_server("nonsense"), None);
        assert_eq!(parse_server("1.2.3.4:x"), None);
    }
    #[test]
    fn reverse_names() {
        assert_eq!(
            reverse_name("192.0.2.1".parse().unwrap()),
            b"1.2.0.192.in-addr.arpa"
        );
        let n = reverse_name("2001:db8::1".parse().unwrap());
        assert!(n.starts_with(b"1.0.0.0.0.0.0.0"));
        assert!(n.ends_with(b"8.b.d.0.1.0.0.2.ip6.arpa"));
    }
}

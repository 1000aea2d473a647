//! Outbound STARTTLS (RFC 3207) and AUTH to a smarthost (RFC 4954).
//!
//! control/remotetls, one `domain:policy` line per destination, matched
//! as smtproutes is (domain, `.suffix`, then the empty domain):
//! `may` (the default: STARTTLS whenever the peer offers it, clear text
//! only when it does not), `none` (never), `encrypt` (TLS or defer),
//! `verify` or `verify=NAME` (TLS with a certificate valid for NAME, else
//! for the relay named in smtproutes, else for the domain; or defer).
//! control/remoteauth, `relay:user:password` lines: AUTH PLAIN or LOGIN
//! to that smarthost (the relay as smtproutes names it, or the domain),
//! only ever over TLS. The handshake itself is crate::tls (OpenSSL).

use super::routes;
use super::smtp::{Conn, Ext, Reply};
use super::Config;

/// A final report (letter, text).
pub type Stop = (u8, Vec<u8>);

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Need {
    Never,
    May,
    Encrypt,
    Verify,
}

/// What this delivery does about TLS and AUTH.
#[derive(Debug, Clone)]
pub struct Plan {
    pub need: Need,
    /// The name sent as SNI and, with Verify, checked in the certificate.
    pub name: Vec<u8>,
    pub auth: Option<(Vec<u8>, Vec<u8>)>,
}

fn bad(file: &str, n: usize, what: &str) -> Stop {
    (
        b'Z',
        format!("Unable to read control files: control/{file} line {n}: {what}. (#4.3.0)\n")
            .into_bytes(),
    )
}

/// The policy line for `host` in control/remotetls.
fn policy(lines: &[Vec<u8>], host: &[u8]) -> Result<(Need, Option<Vec<u8>>), Stop> {
    let mut table = Vec::new();
    for (n, l) in lines.iter().enumerate() {
        let c = memchr::memchr(b':', l).ok_or_else(|| bad("remotetls", n + 1, "missing colon"))?;
        let (p, name) = match memchr::memchr(b'=', &l[c + 1..]) {
            Some(i) => (
                &l[c + 1..c + 1 + i],
                Some(l[c + 2 + i..].to_ascii_lowercase()),
            ),
            None => (&l[c + 1..], None),
        };
        let need = match p {
            b"none" => Need::Never,
            b"may" => Need::May,
            b"encrypt" => Need::Encrypt,
            b"verify" => Need::Verify,
            _ => return Err(bad("remotetls", n + 1, "unknown policy")),
        };
        if name.is_some() && need != Need::Verify || name.as_ref().is_some_and(|n| n.is_empty()) {
            return Err(bad("remotetls", n + 1, "a name goes only with verify="));
        }
        table.push((l[..c].to_ascii_lowercase(), (need, name)));
    }
    for k in routes::keys(host) {
        if let Some((_, p)) = table.iter().find(|(d, _)| *d == k) {
            return Ok(p.clone());
        }
    }
    Ok((Need::May, None))
}

impl Plan {
    pub fn for_host(cfg: &Config, host: &[u8]) -> Result<Plan, Stop> {
        let (need, name) = policy(&cfg.tls, host)?;
        let relay = routes::find(&cfg.routes, host)
            .ok()
            .flatten()
            .and_then(|r| r.relay)
            .unwrap_or_else(|| host.to_vec());
        let mut auth = None;
        for (n, l) in cfg.auth.iter().enumerate() {
            let mut f = l.splitn(3, |&c| c == b':');
            let (Some(h), Some(u), Some(p)) = (f.next(), f.next(), f.next()) else {
                return Err(bad("remoteauth", n + 1, "want relay:user:password"));
            };
            if h.eq_ignore_ascii_case(&relay) {
                auth = Some((u.to_vec(), p.to_vec()));
                break;
            }
        }
        let name = name.unwrap_or_else(|| {
            relay
                .strip_prefix(b"[")
                .and_then(|r| r.strip_suffix(b"]"))
                .unwrap_or(&relay)
                .to_vec()
        });
        Ok(Plan { need, name, auth })
    }
}

fn stop(letter: u8, parts: &[&[u8]]) -> Stop {
    (letter, parts.concat())
}

fn io_stop(ip: &[u8], what: &[u8], e: std::io::Error) -> Stop {
    stop(
        b'Z',
        &[
            b"Connected to ",
            ip,
            b" but connection died. (#4.4.2)\n",
            what,
            b": ",
            crate::exit::errtext(&e).as_bytes(),
            b"\n",
        ],
    )
}

/// After a 2xx EHLO reply: STARTTLS when the plan and the peer allow it
/// (then EHLO again), then AUTH when the plan has credentials. Returns
/// what the (new) EHLO offered.
pub fn upgrade(plan: &Plan, c: &mut Conn, ext: Ext, helo: &[u8], ip: &[u8]) -> Result<Ext, Stop> {
    let mut ext = ext;
    let mut tls = false;
    // Without OpenSSL on this host, opportunistic TLS is simply not tried.
    let can = plan.need != Need::May || crate::tls::ffi::lib().is_ok();
    if plan.need != Need::Never && ext.starttls && can {
        c.send(b"STARTTLS\r\n")
            .map_err(|e| io_stop(ip, b"sending STARTTLS", e))?;
        let r = c
            .reply()
            .map_err(|e| io_stop(ip, b"reading the reply to STARTTLS", e))?;
        if r.class() == 2 {
            let verify = plan.need == Need::Verify;
            if let Err(e) = c.starttls(&plan.name, verify) {
                return Err(stop(
                    b'Z',
                    &[
                        b"TLS with ",
                        ip,
                        b" failed: ",
                        e.as_bytes(),
                        b". (#4.7.5)\n",
                    ],
                ));
            }
            tls = true;
            c.send(&[b"EHLO ", helo, b"\r\n"].concat())
                .map_err(|e| io_stop(ip, b"sending EHLO", e))?;
            let r = c
                .reply()
                .map_err(|e| io_stop(ip, b"reading the reply to EHLO", e))?;
            if r.class() != 2 {
                return Err(refused(ip, b"EHLO after STARTTLS", &r));
            }
            ext = Ext::parse(&r);
        } else if plan.need != Need::May {
            return Err(refused(ip, b"STARTTLS", &r));
        }
    }
    if !tls && matches!(plan.need, Need::Encrypt | Need::Verify) {
        return Err(stop(
            b'Z',
            &[
                b"Connected to ",
                ip,
                b" but it does not offer STARTTLS, and control/remotetls requires TLS. (#4.7.5)\n",
            ],
        ));
    }
    if let Some((user, pass)) = &plan.auth {
        if !tls {
            return Err(stop(
                b'Z',
                &[
                    b"Connected to ",
                    ip,
                    b" but I will not send a password without TLS. (#4.7.5)\n",
                ],
            ));
        }
        login(c, &ext, user, pass, ip)?;
    }
    Ok(ext)
}

fn refused(ip: &[u8], what: &[u8], r: &Reply) -> Stop {
    stop(
        b'Z',
        &[
            b"Connected to ",
            ip,
            b" but it refused ",
            what,
            b". (#4.7.5)\n",
            &r.said(),
        ],
    )
}

/// AUTH PLAIN, or LOGIN when the peer offers only that.
fn login(c: &mut Conn, ext: &Ext, user: &[u8], pass: &[u8], ip: &[u8]) -> Result<(), Stop> {
    let b64 = crate::base64::encode;
    let io = |what: &'static [u8]| move |e| io_stop(ip, what, e);
    let r = if ext.auth.iter().any(|m| m == b"PLAIN") {
        let resp = b64(&[b"\0", user, b"\0", pass].concat());
        c.send(&[b"AUTH PLAIN ", &resp[..], b"\r\n"].concat())
            .map_err(io(b"sending AUTH"))?;
        c.reply().map_err(io(b"reading the reply to AUTH"))?
    } else if ext.auth.iter().any(|m| m == b"LOGIN") {
        let mut r = Reply {
            code: 334,
            lines: Vec::new(),
        };
        for step in [
            b"AUTH LOGIN\r\n".to_vec(),
            [&b64(user)[..], b"\r\n"].concat(),
            [&b64(pass)[..], b"\r\n"].concat(),
        ] {
            if r.code != 334 {
                break;
            }
            c.send(&step).map_err(io(b"sending AUTH"))?;
            r = c.reply().map_err(io(b"reading the reply to AUTH"))?;
        }
        r
    } else {
        return Err(stop(
            b'Z',
            &[
                b"Connected to ",
                ip,
                b" but it offers neither AUTH PLAIN nor LOGIN. (#4.7.0)\n",
            ],
        ));
    };
    if r.class() != 2 {
        return Err(refused(ip, b"my AUTH", &r));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(v: &[&str]) -> Vec<Vec<u8>> {
        v.iter().map(|s| s.as_bytes().to_vec()).collect()
    }

    #[test]
    fn policies() {
        let t = lines(&[
            "secure.example:encrypt",
            ".bank.example:verify=mx.bank.example",
            "plain.example:none",
            ":may",
        ]);
        assert_eq!(
            policy(&t, b"Secure.Example").unwrap(),
            (Need::Encrypt, None)
        );
        assert_eq!(
            policy(&t, b"a.bank.example").unwrap(),
            (Need::Verify, Some(b"mx.bank.example".to_vec()))
        );
        assert_eq!(policy(&t, b"plain.example").unwrap(), (Need::Never, None));
        assert_eq!(policy(&t, b"other.example").unwrap(), (Need::May, None));
        assert_eq!(policy(&[], b"x").unwrap(), (Need::May, None));
        assert!(policy(&lines(&["x:sometimes"]), b"x").is_err());
        assert!(policy(&lines(&["x:encrypt=name"]), b"x").is_err());
        assert!(policy(&lines(&["x"]), b"x").is_err());
    }
}

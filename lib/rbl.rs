//! rbl-gate(8): DNS block lists (RFC 5782) in front of an SMTP server,
//! rblsmtpd's job.
//!
//! `$RBLSMTPD` decides first, as rblsmtpd users know it: set and empty,
//! the client passes; `-text`, it is refused with 554 text; any other text,
//! 451 text. Otherwise each list is asked, all at once and within one time
//! budget, and the first list in order that lists (block list) or
//! anti-lists (allow list) the client decides. A client is listed when
//! REVERSED.BASE has an A record in 127.0.0.0/8 (other addresses are an
//! ISP's redirection, not a listing), or, as rblsmtpd reads old lists, no A
//! record but a TXT record; the TXT text is the reply's text. A lookup that
//! fails or does not answer in time lets the client through (fail open),
//! unless fail-closed is asked for; after such a failure a block is only
//! ever temporary (451), as in rblsmtpd.

use crate::dns::{Fail, Resolver};
use crate::smtp::conn::{Conn, Fatal, Line};
use std::net::IpAddr;
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

/// Longest text of a reply, as in rblsmtpd.
pub const MAX_TEXT: usize = 200;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct List {
    pub base: Vec<u8>,
    /// An allow (anti-RBL) list: being listed there means passing.
    pub allow: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Pass,
    /// Refuse every transaction with `code text`; `why` names the list.
    Block {
        code: u16,
        text: Vec<u8>,
        why: Vec<u8>,
    },
}

pub struct Opts {
    /// 554 instead of 451 for a listed client (rblsmtpd's -b).
    pub permanent: bool,
    /// A failed lookup counts as listed (block list) or not anti-listed.
    pub fail_closed: bool,
    /// Seconds for all the lookups together.
    pub budget: u64,
}

/// What one list said about the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    Listed(Vec<u8>),
    NotListed,
    Temp(String),
}

/// `$RBLSMTPD`'s decision, when it is set.
pub fn from_env(v: Option<&[u8]>) -> Option<Decision> {
    let v = v?;
    if v.is_empty() {
        return Some(Decision::Pass);
    }
    let (code, text) = match v.strip_prefix(b"-") {
        Some(t) => (554, t),
        None => (451, v),
    };
    Some(Decision::Block {
        code,
        text: text.to_vec(),
        why: b"$RBLSMTPD".to_vec(),
    })
}

/// Lists from control/rbllists lines: `base` a block list, `+base` an
/// allow list.
pub fn parse_lists(lines: &[Vec<u8>]) -> Result<Vec<List>, Vec<u8>> {
    lines
        .iter()
        .map(|l| {
            let (allow, base) = match l.strip_prefix(b"+") {
                Some(b) => (true, b),
                None => (false, &l[..]),
            };
            list(base, allow).ok_or_else(|| l.clone())
        })
        .collect()
}

/// control/me and the lists of control/rbllists (none when it is missing).
pub fn controls() -> Result<(Vec<u8>, Vec<List>), crate::control::ControlError> {
    use crate::control;
    let me = control::me()?;
    let lists = match control::lines("rbllists")? {
        Some(l) => parse_lists(&l).map_err(|bad| control::ControlError {
            file: control::path("control/rbllists"),
            line: 0,
            what: format!("not a domain: {}", String::from_utf8_lossy(&bad)),
        })?,
        None => Vec::new(),
    };
    Ok((me, lists))
}

/// A list named `base`, when it is a domain name.
pub fn list(base: &[u8], allow: bool) -> Option<List> {
    let base = base.strip_suffix(b".").unwrap_or(base).to_ascii_lowercase();
    crate::smtp::path::is_domain(&base).then_some(List { base, allow })
}

/// The name to ask: the reversed address (nibbles for IPv6) then base.
pub fn query_name(ip: IpAddr, base: &[u8]) -> Vec<u8> {
    [&crate::dns::reverse_labels(ip)[..], b".", base].concat()
}

/// Asks one list about `ip`.
pub fn ask(r: &Resolver, ip: IpAddr, l: &List) -> Answer {
    let name = query_name(ip, &l.base);
    let txt = || match r.txt(&name) {
        Ok(t) => t.into_iter().next(),
        Err(_) => None,
    };
    match r.a(&name) {
        Ok(a) if a.iter().any(|a| a.octets()[0] == 127) => {
            if l.allow {
                return Answer::Listed(Vec::new());
            }
            let base = String::from_utf8_lossy(&l.base);
            Answer::Listed(
                txt().unwrap_or_else(|| format!("{} is listed in {}", ip, base).into_bytes()),
            )
        }
        Ok(_) => Answer::NotListed,
        Err(Fail::NoData) if !l.allow => match r.txt(&name) {
            Ok(t) => Answer::Listed(t.into_iter().next().unwrap_or_default()),
            Err(Fail::Temp(t)) => Answer::Temp(t),
            Err(_) => Answer::NotListed,
        },
        Err(Fail::Temp(t)) => Answer::Temp(t),
        Err(_) => Answer::NotListed,
    }
}

/// Asks every list at once; lists without an answer within `budget`
/// seconds count as Temp("timed out").
pub fn ask_all(r: Resolver, ip: IpAddr, lists: &[List], budget: u64) -> Vec<Answer> {
    let r = Arc::new(r);
    let (tx, rx) = mpsc::channel();
    for (i, l) in lists.iter().enumerate() {
        let (r, tx, l) = (r.clone(), tx.clone(), l.clone());
        std::thread::spawn(move || {
            let _ = tx.send((i, ask(&r, ip, &l)));
        });
    }
    drop(tx);
    let mut out = vec![Answer::Temp("timed out".into()); lists.len()];
    let deadline = Instant::now() + Duration::from_secs(budget);
    for _ in 0..lists.len() {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok((i, a)) => out[i] = a,
            Err(_) => break,
        }
    }
    out
}

/// The whole decision: `$RBLSMTPD` (`env`) when set, else the lists asked
/// about the client `ip` (relay::remote_addr's result: an unknown client
/// passes, with a warning). Failed lookups are logged.
pub fn decision(
    env: Option<&[u8]>,
    ip: &Result<String, Vec<u8>>,
    lists: &[List],
    o: &Opts,
) -> Decision {
    if let Some(d) = from_env(env) {
        return d;
    }
    let ip: IpAddr = match ip.as_ref().map(|s| s.parse()) {
        Ok(Ok(ip)) => ip,
        Ok(Err(_)) => return Decision::Pass,
        Err(m) => {
            crate::exit::warn(&[m]);
            return Decision::Pass;
        }
    };
    let answers = ask_all(Resolver::from_env(), ip, lists, o.budget);
    for (l, a) in lists.iter().zip(&answers) {
        if let Answer::Temp(t) = a {
            crate::exit::warn(&[b"lookup in ", &l.base, b" failed: ", t.as_bytes()]);
        }
    }
    decide(lists, &answers, o)
}

/// rblsmtpd's rule over the answers, in the lists' order.
pub fn decide(lists: &[List], answers: &[Answer], o: &Opts) -> Decision {
    let mut failed = false;
    for (l, a) in lists.iter().zip(answers) {
        match (a, l.allow) {
            (Answer::Listed(_), true) => return Decision::Pass,
            (Answer::Listed(t), false) => {
                let code = if o.permanent && !failed { 554 } else { 451 };
                return Decision::Block {
                    code,
                    text: t.clone(),
                    why: l.base.clone(),
                };
            }
            (Answer::NotListed, _) => {}
            (Answer::Temp(_), allow) => {
                failed = true;
                if o.fail_closed && !allow {
                    return Decision::Block {
                        code: 451,
                        text: b"temporary RBL lookup error".to_vec(),
                        why: l.base.clone(),
                    };
                }
                if !o.fail_closed && allow {
                    return Decision::Pass;
                }
            }
        }
    }
    Decision::Pass
}

/// The reply line: `code text`, the text cut to [`MAX_TEXT`] and every
/// byte outside printable ASCII made `?`.
pub fn reply(code: u16, text: &[u8]) -> Vec<u8> {
    let mut m = format!("{} ", code).into_bytes();
    m.extend(
        text.iter()
            .take(MAX_TEXT)
            .map(|&c| if (0x20..0x7f).contains(&c) { c } else { b'?' }),
    );
    m
}

/// The SMTP dialogue with a blocked client, as rblsmtpd holds it: a 220
/// greeting; 250 to HELO, EHLO, MAIL, RSET and NOOP; `msg` to every other
/// command; 221 to QUIT. The session ends after `secs` seconds in all;
/// with 0 the client gets `msg` at once instead of a greeting.
pub fn refuse_session(rfd: i32, wfd: i32, me: &[u8], msg: &[u8], secs: u64) {
    let mut c = Conn::new(rfd, wfd, secs.max(1));
    let line = |c: &mut Conn, parts: &[&[u8]]| {
        for p in parts {
            c.put(p);
        }
        c.put(b"\r\n");
    };
    if secs == 0 {
        line(&mut c, &[msg]);
        let _ = c.flush();
        return;
    }
    let deadline = Instant::now() + Duration::from_secs(secs);
    line(&mut c, &[b"220 ", me]);
    loop {
        let left = deadline.saturating_duration_since(Instant::now()).as_secs();
        if left == 0 {
            return;
        }
        c.timeout = left;
        let l = match c.line(crate::smtp::MAX_LINE) {
            Ok(Line::Ok(l)) => l,
            Ok(Line::TooLong) => Vec::new(),
            Err(Fatal::Eof | Fatal::Timeout | Fatal::Io(_)) => return,
        };
        let verb = l.split(|&b| b == b' ').next().unwrap_or(b"");
        let is = |v: &[u8]| verb.eq_ignore_ascii_case(v);
        if is(b"QUIT") {
            line(&mut c, &[b"221 ", me]);
            let _ = c.flush();
            return;
        } else if [&b"HELO"[..], b"EHLO", b"MAIL", b"RSET", b"NOOP"]
            .iter()
            .any(|v| is(v))
        {
            line(&mut c, &[b"250 ", me]);
        } else {
            line(&mut c, &[msg]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bl(b: &str) -> List {
        list(b.as_bytes(), false).unwrap()
    }
    fn al(b: &str) -> List {
        list(b.as_bytes(), true).unwrap()
    }
    const OPEN: Opts = Opts {
        permanent: false,
        fail_closed: false,
        budget: 5,
    };

    #[test]
    fn rblsmtpd_variable() {
        assert_eq!(from_env(None), None);
        assert_eq!(from_env(Some(b"")), Some(Decision::Pass));
        let d = |code: u16, t: &[u8]| Decision::Block {
            code,
            text: t.to_vec(),
            why: b"$RBLSMTPD".to_vec(),
        };
        assert_eq!(from_env(Some(b"-go away")), Some(d(554, b"go away")));
        assert_eq!(from_env(Some(b"later")), Some(d(451, b"later")));
    }

    #[test]
    fn names_and_lists() {
        let v4: IpAddr = "192.0.2.99".parse().unwrap();
        assert_eq!(query_name(v4, b"bl.test"), b"99.2.0.192.bl.test");
        let v6: IpAddr = "2001:db8:1:2:3:4:567:89ab".parse().unwrap();
        assert_eq!(
            query_name(v6, b"bl.test"),
            b"b.a.9.8.7.6.5.0.4.0.0.0.3.0.0.0.2.0.0.0.1.0.0.0.8.b.d.0.1.0.0.2.bl.test"
        );
        let ls = parse_lists(&[b"bl.test".to_vec(), b"+ok.test.".to_vec()]).unwrap();
        assert_eq!(ls, vec![bl("bl.test"), al("ok.test")]);
        assert_eq!(
            parse_lists(&[b"bad name".to_vec()]),
            Err(b"bad name".to_vec())
        );
    }

    #[test]
    fn decisions_follow_rblsmtpd() {
        let listed = Answer::Listed(b"spam".to_vec());
        let temp = Answer::Temp("x".into());
        let ls = [al("ok.test"), bl("a.test"), bl("b.test")];
        let block = |code: u16, why: &str| Decision::Block {
            code,
            text: b"spam".to_vec(),
            why: why.as_bytes().to_vec(),
        };
        let nl = Answer::NotListed;
        // an allow list first wins
        let a = [Answer::Listed(vec![]), listed.clone(), nl.clone()];
        assert_eq!(decide(&ls, &a, &OPEN), Decision::Pass);
        let a = [nl.clone(), nl.clone(), listed.clone()];
        assert_eq!(decide(&ls, &a, &OPEN), block(451, "b.test"));
        let perm = Opts {
            permanent: true,
            ..OPEN
        };
        assert_eq!(decide(&ls, &a, &perm), block(554, "b.test"));
        // a failed lookup before: temporary only; fail open passes
        let a = [nl.clone(), temp.clone(), listed.clone()];
        assert_eq!(decide(&ls, &a, &perm), block(451, "b.test"));
        let a = [nl.clone(), temp.clone(), nl.clone()];
        assert_eq!(decide(&ls, &a, &OPEN), Decision::Pass);
        // an allow list that fails: anti-listed when open
        let a = [temp.clone(), listed.clone(), nl.clone()];
        assert_eq!(decide(&ls, &a, &OPEN), Decision::Pass);
        let closed = Opts {
            fail_closed: true,
            ..OPEN
        };
        assert_eq!(decide(&ls, &a, &closed), block(451, "a.test"));
        let a = [nl.clone(), temp, nl];
        assert_eq!(
            decide(&ls, &a, &closed),
            Decision::Block {
                code: 451,
                text: b"temporary RBL lookup error".to_vec(),
                why: b"a.test".to_vec()
            }
        );
    }

    #[test]
    fn reply_text_is_cleaned() {
        assert_eq!(reply(451, b"a\r\nb\xff"), b"451 a??b?");
        assert_eq!(reply(554, &[b'x'; 300]).len(), 4 + MAX_TEXT);
    }
}

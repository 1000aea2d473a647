//! Remote delivery: remote-send's logic (remote-send(8)).
//!
//! [`deliver`] takes the host, the envelope and the stored message and
//! returns qmail-remote's report: one `r`/`h`/`s` record per recipient it
//! got to, then one `K`/`Z`/`D` record for the message, each ending in NUL.
//! It never fails: every problem is a `Z` or `D` record.

pub mod downgrade;
pub mod ipme;
pub mod message;
pub mod mx;
pub mod routes;
pub mod smtp;
pub mod tcpto;
pub mod tls;

use crate::control;
use smtp::{Conn, Deadlines, Ext, Reply};
use std::net::IpAddr;

/// The text of an `r` record when the peer offers DSN and took the
/// message's DSN parameters: it, not we, reports success (remote-send(8)).
pub const DSN_PASSED: &[u8] = b"DSN parameters passed on";

/// The report being built.
#[derive(Debug, Default)]
pub struct Report {
    pub recips: Vec<(u8, Vec<u8>)>,
    pub message: (u8, Vec<u8>),
}

impl Report {
    fn done(letter: u8, text: Vec<u8>) -> Report {
        Report {
            recips: Vec::new(),
            message: (letter, text),
        }
    }

    /// The bytes written to fd 1.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for (l, t) in self.recips.iter().chain(std::iter::once(&self.message)) {
            out.push(*l);
            out.extend(t.iter().map(|&c| if c == 0 { b'?' } else { c }));
            out.push(0);
        }
        out
    }
}

/// The settings remote-send reads (pipemail-control(5)).
pub struct Config {
    pub helo: Vec<u8>,
    pub timeout_connect: u64,
    pub timeout_remote: u64,
    /// Seconds one whole reply may take (however slowly it trickles in).
    pub timeout_reply: u64,
    /// Seconds from the first connection attempt to the last byte.
    pub timeout_session: u64,
    pub outgoing_ip: Option<IpAddr>,
    pub routes: Vec<Vec<u8>>,
    /// The port when smtproutes names none: `$SMTPPORT`, else 25.
    pub port: u16,
    pub ipme: ipme::IpMe,
    /// control/remotetls and control/remoteauth lines (remote/tls.rs).
    pub tls: Vec<Vec<u8>>,
    pub auth: Vec<Vec<u8>>,
}

impl Config {
    pub fn load() -> Result<Config, control::ControlError> {
        let me = control::me()?;
        let ip = control::line("outgoingip", b"")?;
        let outgoing_ip = if ip.is_empty() {
            None
        } else {
            Some(
                std::str::from_utf8(&ip)
                    .ok()
                    .and_then(|s| s.parse().ok())
                    .ok_or_else(|| control::ControlError {
                        file: control::path("control/outgoingip"),
                        line: 1,
                        what: "not an IP address".into(),
                    })?,
            )
        };
        let routes = control::lines("smtproutes")?.unwrap_or_default();
        if let Err((n, why)) = routes::find(&routes, b"") {
            return Err(control::ControlError {
                file: control::path("control/smtproutes"),
                line: n,
                what: why.into(),
            });
        }
        let port = std::env::var("SMTPPORT")
            .ok()
            .and_then(|p| p.parse::<u16>().ok())
            .filter(|&p| p > 0)
            .unwrap_or(25);
        Ok(Config {
            helo: control::line("helohost", &me)?,
            timeout_connect: control::number("timeoutconnect", 60)?.max(1),
            timeout_remote: control::number("timeoutremote", 1200)?.max(1),
            timeout_reply: control::number("timeoutremotereply", 1200)?.max(1),
            timeout_session: control::number("timeoutremotesession", 3600)?.max(1),
            outgoing_ip,
            routes,
            port,
            ipme: ipme::IpMe::load()?,
            tls: control::lines("remotetls")?.unwrap_or_default(),
            auth: control::lines("remoteauth")?.unwrap_or_default(),
        })
    }
}

fn text(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

/// `(#x.y.z)`: the peer's enhanced code when it gave one, else `default`.
fn status(r: &Reply, default: &[u8]) -> Vec<u8> {
    let code = r.enhanced().unwrap_or_else(|| default.to_vec());
    text(&[b" (#", &code, b")"])
}

/// Bytes an envelope address may not carry into an SMTP command.
fn bad_addr(a: &[u8]) -> bool {
    a.len() > crate::queue::MAX_ADDR
        || a.iter()
            .any(|&c| c < 0x20 || c == 0x7f || c == b'<' || c == b'>')
}

/// remote-send's whole job: the message from fd 0, the control files,
/// the delivery. Problems before the delivery are `Z` reports.
pub fn run(host: &[u8], sender: &[u8], recips: &[Vec<u8>]) -> Report {
    let mut msg = Vec::new();
    if let Err(e) = std::io::Read::read_to_end(&mut std::io::stdin().lock(), &mut msg) {
        let t = format!(
            "Unable to read the message: {}. (#4.3.0)\n",
            crate::exit::errtext(&e)
        );
        return Report {
            recips: Vec::new(),
            message: (b'Z', t.into_bytes()),
        };
    }
    let cfg = match Config::load() {
        Ok(c) => c,
        Err(e) => {
            let t = [
                &b"Unable to read control files: "[..],
                &e.text(),
                b". (#4.3.0)\n",
            ]
            .concat();
            return Report {
                recips: Vec::new(),
                message: (b'Z', t),
            };
        }
    };
    // $PIPEMAIL_DSN (queue-run's): one that does not parse is ignored, a
    // recipient list of another length too (the peer decides then).
    let dsn = crate::smtp::dsn::Dsn::from_env()
        .unwrap_or_default()
        .fit(recips.len());
    deliver(
        &cfg,
        &crate::dns::Resolver::from_env(),
        &host.to_ascii_lowercase(),
        sender,
        recips,
        &msg,
        &dsn,
    )
}

/// Delivers `msg` (LF line ends, as stored) for `recips` to `host`, with
/// their DSN parameters for a peer that offers DSN.
pub fn deliver(
    cfg: &Config,
    resolver: &crate::dns::Resolver,
    host: &[u8],
    sender: &[u8],
    recips: &[Vec<u8>],
    msg: &[u8],
    dsn: &crate::smtp::dsn::Dsn,
) -> Report {
    if bad_addr(sender) {
        return Report::done(
            b'D',
            b"Sorry, the sender address has bytes SMTP cannot carry. (#5.1.7)\n".to_vec(),
        );
    }
    let plan = match tls::Plan::for_host(cfg, host) {
        Ok(p) => p,
        Err((letter, t)) => return Report::done(letter, t),
    };
    let (targets, port) = match mx::targets(cfg, resolver, host) {
        Ok(t) => t,
        Err((letter, t)) => return Report::done(letter, t),
    };
    let tcpto = tcpto::Tcpto::open();
    let data = message::encode(msg);
    let mut tried: Vec<u8> = Vec::new();
    let mut greeting_failed = None;
    let mut skipped = 0;
    let dl = Deadlines::start(cfg.timeout_remote, cfg.timeout_reply, cfg.timeout_session);
    for ip in &targets {
        let ip = *ip;
        let ipt = ip.to_string().into_bytes();
        if tcpto.skip(ip) {
            skipped += 1;
            continue;
        }
        if dl.over() {
            tried.extend(text(&[
                &ipt,
                b" and after: not tried: ",
                crate::exit::errtext(&dl.over_error()).as_bytes(),
                b"\n",
            ]));
            break;
        }
        let mut c = match Conn::connect(ip, port, cfg.outgoing_ip, cfg.timeout_connect, dl) {
            Ok(c) => c,
            Err(e) => {
                if e.kind() == std::io::ErrorKind::TimedOut {
                    tcpto.record(ip, true);
                }
                tried.extend(text(&[
                    &ipt,
                    b": ",
                    crate::exit::errtext(&e).as_bytes(),
                    b"\n",
                ]));
                continue;
            }
        };
        match c.reply() {
            Ok(r) if r.class() == 2 => {
                tcpto.record(ip, false);
                return session(cfg, &plan, c, &ipt, sender, recips, msg, &data, dsn);
            }
            Ok(r) => {
                c.quit(true);
                greeting_failed = Some(text(&[
                    b"Connected to ",
                    &ipt,
                    b" but greeting failed.",
                    &status(&r, b"4.4.2"),
                    b"\n",
                    &r.said(),
                ]));
            }
            Err(e) => {
                if e.kind() == std::io::ErrorKind::TimedOut {
                    tcpto.record(ip, true);
                }
                tried.extend(text(&[
                    &ipt,
                    b": no greeting: ",
                    crate::exit::errtext(&e).as_bytes(),
                    b"\n",
                ]));
            }
        }
    }
    if let Some(t) = greeting_failed {
        return Report::done(b'Z', t);
    }
    let mut t = b"Sorry, I wasn't able to establish an SMTP connection. (#4.4.1)\n".to_vec();
    t.extend_from_slice(&tried);
    if skipped > 0 {
        t.extend(text(&[
            &crate::parse::fmt(skipped),
            b" address(es) skipped: they timed out recently (queue/tcpto).\n",
        ]));
    }
    Report::done(b'Z', t)
}

/// Reads the replies to `rcpts` pipelined RCPTs and to DATA (or to
/// `chunks` BDATs), after a refused MAIL.
fn drain(c: &mut Conn, rcpts: usize, chunks: usize) -> std::io::Result<()> {
    for _ in 0..rcpts {
        c.reply()?;
    }
    if chunks > 0 {
        return bdat_replies(c, chunks).map(drop);
    }
    let r = c.reply()?;
    end_empty_data(c, &r)
}

/// Reads the replies to `n` pipelined BDATs: the first that is not 2xx,
/// else the last.
fn bdat_replies(c: &mut Conn, n: usize) -> std::io::Result<Reply> {
    let mut first_bad: Option<Reply> = None;
    let mut last = None;
    for _ in 0..n {
        let r = c.reply()?;
        if r.class() != 2 && first_bad.is_none() {
            first_bad = Some(r.clone());
        }
        last = Some(r);
    }
    first_bad
        .or(last)
        .ok_or_else(|| std::io::Error::other("no BDAT sent"))
}

/// Sends one BDAT command and its chunk.
fn send_chunk(c: &mut Conn, ch: &message::Chunk) -> std::io::Result<()> {
    c.send(&ch.0)?;
    c.send(ch.1)
}

/// Sends the BDAT chunks one by one, each after the reply to the one
/// before (a peer without PIPELINING); stops at the first refusal (RFC
/// 3030: no more BDAT after a 4xx or 5xx). Err: the error, whether the
/// LAST chunk had gone, and what was being done.
type BdatError = (std::io::Error, bool, &'static [u8]);
fn bdat_one_by_one(c: &mut Conn, chunks: &[message::Chunk]) -> Result<Reply, BdatError> {
    let mut r = None;
    for (i, ch) in chunks.iter().enumerate() {
        let last = i + 1 == chunks.len();
        send_chunk(c, ch).map_err(|e| (e, false, &b"sending BDAT"[..]))?;
        let rep = c
            .reply()
            .map_err(|e| (e, last, &b"reading the reply to BDAT"[..]))?;
        if rep.class() != 2 {
            return Ok(rep);
        }
        r = Some(rep);
    }
    r.ok_or_else(|| (std::io::Error::other("no BDAT sent"), false, &b"BDAT"[..]))
}

/// A server that answered 354 to a DATA with no recipient gets an empty
/// message (just the dot), whose reply is read.
fn end_empty_data(c: &mut Conn, data_reply: &Reply) -> std::io::Result<()> {
    if data_reply.class() == 3 {
        c.send(b".\r\n")?;
        c.reply()?;
    }
    Ok(())
}

/// The report for the reply to the end of the message (the dot or BDAT
/// LAST, or the first refused chunk).
fn message_result(r: &Reply, ip: &[u8]) -> Result<(u8, Vec<u8>), (u8, Vec<u8>)> {
    match r.class() {
        2 => Ok((b'K', text(&[ip, b" accepted message.\n", &r.said()]))),
        5 => Err((
            b'D',
            text(&[
                ip,
                b" failed after I sent the message.",
                &status(r, b"5.0.0"),
                b"\n",
                &r.said(),
            ]),
        )),
        _ => Err((
            b'Z',
            text(&[
                ip,
                b" failed after I sent the message.",
                &status(r, b"4.0.0"),
                b"\n",
                &r.said(),
            ]),
        )),
    }
}

/// The rest of a BDAT transaction after the RCPT replies: the chunks'
/// replies (pipelined: the chunks went with MAIL and RCPT; else they go
/// one by one, none when no recipient was accepted) and the result.
fn bdat_result<F>(
    c: &mut Conn,
    chunks: &[message::Chunk],
    pipelined: bool,
    accepted: usize,
    ip: &[u8],
    died: &F,
) -> Result<(u8, Vec<u8>), (u8, Vec<u8>)>
where
    F: Fn(bool, &[u8], &std::io::Error) -> (u8, Vec<u8>),
{
    let give_up = || (b'D', text(&[b"Giving up on ", ip, b".\n"]));
    let r = if pipelined {
        bdat_replies(c, chunks.len()).map_err(|e| died(true, b"reading the replies to BDAT", &e))?
    } else if accepted == 0 {
        return Err(give_up());
    } else {
        bdat_one_by_one(c, chunks).map_err(|(e, last, what)| died(last, what, &e))?
    };
    if accepted == 0 {
        return Err(give_up());
    }
    message_result(&r, ip)
}

/// After a 2xx greeting: EHLO/HELO, the transaction, QUIT.
#[allow(clippy::too_many_arguments)]
fn session(
    cfg: &Config,
    plan: &tls::Plan,
    mut c: Conn,
    ip: &[u8],
    sender: &[u8],
    recips: &[Vec<u8>],
    msg: &[u8],
    data: &[u8],
    dsn: &crate::smtp::dsn::Dsn,
) -> Report {
    let mut rep = Report::default();
    // Whether the connection broke (then QUIT is not waited for).
    let broken = std::cell::Cell::new(false);
    let died = |dot: bool, what: &[u8], e: &std::io::Error| {
        broken.set(true);
        let dup: &[u8] = if dot { b" Possible duplicate!" } else { b"" };
        let why = crate::exit::errtext(e);
        (
            b'Z',
            text(&[
                b"Connected to ",
                ip,
                b" but connection died.",
                dup,
                b" (#4.4.2)\n",
                what,
                b": ",
                why.as_bytes(),
                b"\n",
            ]),
        )
    };
    let result = (|| -> Result<(u8, Vec<u8>), (u8, Vec<u8>)> {
        let io = |what: &'static [u8]| move |e: std::io::Error| died(false, what, &e);
        c.send(&text(&[b"EHLO ", &cfg.helo, b"\r\n"]))
            .map_err(io(b"sending EHLO"))?;
        let r = c.reply().map_err(io(b"reading the reply to EHLO"))?;
        let ext = if r.class() == 2 {
            tls::upgrade(plan, &mut c, Ext::parse(&r), &cfg.helo, ip)?
        } else if r.code == 421 {
            // The server is closing the connection (RFC 5321 4.2.2): no HELO.
            return Err((
                b'Z',
                text(&[
                    b"Connected to ",
                    ip,
                    b" but it is closing the connection.",
                    &status(&r, b"4.3.2"),
                    b"\n",
                    &r.said(),
                ]),
            ));
        } else if plan.need == tls::Need::Encrypt
            || plan.need == tls::Need::Verify
            || plan.auth.is_some()
        {
            return Err((
                b'Z',
                text(&[
                    b"Connected to ",
                    ip,
                    b" but it refused EHLO, and TLS or AUTH is required. (#4.7.5)\n",
                ]),
            ));
        } else {
            c.send(&text(&[b"HELO ", &cfg.helo, b"\r\n"]))
                .map_err(io(b"sending HELO"))?;
            let r = c.reply().map_err(io(b"reading the reply to HELO"))?;
            if r.class() != 2 {
                return Err((
                    b'Z',
                    text(&[
                        b"Connected to ",
                        ip,
                        b" but my name was rejected.",
                        &status(&r, b"4.3.0"),
                        b"\n",
                        &r.said(),
                    ]),
                ));
            }
            Ext::default()
        };
        let utf8 = !sender.is_ascii() || recips.iter().any(|r| !r.is_ascii());
        if utf8 && !ext.smtputf8 {
            return Err((
                b'D',
                text(&[
                    b"Connected to ",
                    ip,
                    b" but it does not offer SMTPUTF8, which the addresses need. (#5.6.7)\n",
                ]),
            ));
        }
        // Lines of at most 998 octets; 7 bits for a peer without 8BITMIME.
        let eightbit = ext.eightbit || ext.smtputf8;
        let msg = downgrade::fit(msg, eightbit).map_err(|why| {
            let no8: &[u8] = if eightbit {
                b""
            } else {
                b" does not offer 8BITMIME and"
            };
            (
                b'D',
                text(&[
                    b"Connected to ",
                    ip,
                    b" but it",
                    no8,
                    b" cannot take the message: ",
                    why.as_bytes(),
                    b". (#5.6.3)\n",
                ]),
            )
        })?;
        // CHUNKING: the content (CR LF, no dot-stuffing) and its BDAT
        // chunks; else the DATA bytes.
        let data: std::borrow::Cow<[u8]> = match &msg {
            _ if ext.chunking => message::canonical(&msg, false).into(),
            std::borrow::Cow::Borrowed(_) => data.into(),
            std::borrow::Cow::Owned(m) => message::encode(m).into(),
        };
        let chunks = if ext.chunking {
            message::chunks(&data)
        } else {
            Vec::new()
        };
        // RFC 1870: CR LF counted, the final dot not.
        let size = if ext.chunking {
            data.len()
        } else {
            data.len() - 3
        } as u64;
        if let Some(max) = ext.size.filter(|&m| m > 0 && size > m) {
            return Err((
                b'D',
                text(&[
                    b"Connected to ",
                    ip,
                    b" but the message is too big for it: it takes ",
                    &crate::parse::fmt(max),
                    b" bytes, the message has ",
                    &crate::parse::fmt(size),
                    b". (#5.3.4)\n",
                ]),
            ));
        }
        let quote = crate::smtp::path::quote;
        let mut mail = text(&[b"MAIL FROM:<", &quote(sender), b">"]);
        if ext.size.is_some() {
            mail.extend(text(&[b" SIZE=", &crate::parse::fmt(size)]));
        }
        if ext.eightbit && message::is_8bit(&msg) {
            mail.extend_from_slice(b" BODY=8BITMIME");
        }
        if utf8 {
            mail.extend_from_slice(b" SMTPUTF8");
        }
        // RFC 3461 5.2: the parameters go on to a peer that offers DSN.
        let with_dsn = |mut cmd: Vec<u8>, p: Vec<u8>| {
            if ext.dsn && !p.is_empty() {
                cmd.push(b' ');
                cmd.extend_from_slice(&p);
            }
            cmd
        };
        let mut mail = with_dsn(mail, dsn.mail_params());
        mail.extend_from_slice(b"\r\n");
        let rcpts: Vec<Vec<u8>> = recips
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let cmd = text(&[b"RCPT TO:<", &quote(r), b">"]);
                let mut cmd = with_dsn(cmd, dsn.rcpt_params(i));
                cmd.extend_from_slice(b"\r\n");
                cmd
            })
            .collect();
        let ok_rcpt: Vec<bool> = recips.iter().map(|r| !bad_addr(r)).collect();
        // MAIL
        if ext.pipelining {
            let mut all = mail.clone();
            for (cmd, ok) in rcpts.iter().zip(&ok_rcpt) {
                if *ok {
                    all.extend_from_slice(cmd);
                }
            }
            if chunks.is_empty() {
                all.extend_from_slice(b"DATA\r\n");
                c.send(&all).map_err(io(b"sending MAIL, RCPT and DATA"))?;
            } else {
                // RFC 3030 4.2: BDAT may follow RCPT in the group.
                c.send(&all).map_err(io(b"sending MAIL and RCPT"))?;
                for ch in &chunks {
                    send_chunk(&mut c, ch).map_err(io(b"sending BDAT"))?;
                }
            }
        } else {
            c.send(&mail).map_err(io(b"sending MAIL"))?;
        }
        let r = c.reply().map_err(io(b"reading the reply to MAIL"))?;
        if r.class() != 2 {
            if ext.pipelining {
                // RFC 2920: every pipelined command gets its reply read.
                let sent = ok_rcpt.iter().filter(|&&ok| ok).count();
                if drain(&mut c, sent, chunks.len()).is_err() {
                    broken.set(true);
                }
            }
            let (l, d): (u8, &[u8]) = if r.class() == 5 {
                (b'D', b"5.1.7")
            } else {
                (b'Z', b"4.1.7")
            };
            return Err((
                l,
                text(&[
                    b"Connected to ",
                    ip,
                    b" but sender was rejected.",
                    &status(&r, d),
                    b"\n",
                    &r.said(),
                ]),
            ));
        }
        // RCPT, one record per recipient in argv order.
        let mut accepted = 0;
        for (i, cmd) in rcpts.iter().enumerate() {
            if !ok_rcpt[i] {
                rep.recips.push((
                    b'h',
                    b"Sorry, the recipient address has bytes SMTP cannot carry. (#5.1.3)\n"
                        .to_vec(),
                ));
                continue;
            }
            if !ext.pipelining {
                c.send(cmd).map_err(io(b"sending RCPT"))?;
            }
            let r = c.reply().map_err(io(b"reading the reply to RCPT"))?;
            if r.class() == 2 {
                accepted += 1;
                let t: &[u8] = if ext.dsn { DSN_PASSED } else { b"" };
                rep.recips.push((b'r', t.to_vec()));
            } else {
                let (l, d): (u8, &[u8]) = if r.class() == 5 {
                    (b'h', b"5.1.1")
                } else {
                    (b's', b"4.0.0")
                };
                rep.recips.push((
                    l,
                    text(&[
                        ip,
                        b" does not like recipient.",
                        &status(&r, d),
                        b"\n",
                        &r.said(),
                    ]),
                ));
            }
        }
        if !chunks.is_empty() {
            return bdat_result(&mut c, &chunks, ext.pipelining, accepted, ip, &died);
        }
        // DATA
        if !ext.pipelining {
            if accepted == 0 {
                return Err((b'D', text(&[b"Giving up on ", ip, b".\n"])));
            }
            c.send(b"DATA\r\n").map_err(io(b"sending DATA"))?;
        }
        let r = c.reply().map_err(io(b"reading the reply to DATA"))?;
        if accepted == 0 {
            if end_empty_data(&mut c, &r).is_err() {
                broken.set(true);
            }
            return Err((b'D', text(&[b"Giving up on ", ip, b".\n"])));
        }
        if r.class() != 3 {
            let (l, d): (u8, &[u8]) = if r.class() == 5 {
                (b'D', b"5.0.0")
            } else {
                (b'Z', b"4.0.0")
            };
            return Err((
                l,
                text(&[
                    ip,
                    b" failed on DATA command.",
                    &status(&r, d),
                    b"\n",
                    &r.said(),
                ]),
            ));
        }
        c.send(&data).map_err(io(b"sending the message"))?;
        let r = c
            .reply()
            .map_err(|e| died(true, b"reading the reply to the message", &e))?;
        message_result(&r, ip)
    })();
    c.quit(!broken.get());
    rep.message = match result {
        Ok(m) | Err(m) => m,
    };
    rep
}

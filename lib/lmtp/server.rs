//! lmtp-recv(8): an LMTP server (RFC 2033) on descriptors 0 and 1.
//!
//! smtp-recv's connection (line limits, timeouts, replies flushed before
//! each read: PIPELINING), its path parser and its DATA state machine
//! (only CR LF . CR LF ends the data). RCPT accepts local recipients that
//! exist (users/assign, virtualdomains, the alias user) and, without the
//! local-spawn (lmtp-recv(8)), whose account has our own uid. After
//! the final dot the message, kept in an unlinked
//! temporary file, is delivered to each accepted recipient in turn by
//! deliver-local (or `$QMAILLOCAL`), run by us or by the helper as the
//! recipient's account, and each gets its own reply:
//! exit 0 → 250, 100 → 550, anything else → 451, with deliver-local's
//! report as text.

use crate::queuerun::spawn;
use crate::smtp::conn::{Conn, Fatal, Line};
use crate::smtp::{data, path, MAX_LINE, MAX_RCPT};
use std::io::{Seek, Write};
use std::os::fd::AsRawFd;

pub struct Config {
    pub me: Vec<u8>,
    pub databytes: u64,
    pub timeout: u64,
    pub remote: Vec<u8>,
}

impl Config {
    pub fn load() -> Result<Config, crate::control::ControlError> {
        use crate::control;
        Ok(Config {
            me: control::me()?,
            databytes: control::number("databytes", crate::smtp::DEFAULT_DATABYTES)?,
            timeout: control::number("timeoutsmtpd", crate::smtp::DEFAULT_TIMEOUT)?.max(1),
            remote: crate::relay::remote_addr()
                .map(String::into_bytes)
                .unwrap_or_else(|_| b"local".to_vec()),
        })
    }
}

/// An accepted recipient: the address given and the routed one
/// deliver-local takes (after virtualdomains).
struct Rcpt {
    addr: Vec<u8>,
    routed: Vec<u8>,
}

struct Session {
    cfg: Config,
    conn: Conn,
    lhlo: Option<Vec<u8>>,
    sender: Option<Vec<u8>>,
    rcpts: Vec<Rcpt>,
    done: bool,
    /// local-spawn's request socket and reply pipe, under local-spawn.
    helper: Option<(i32, i32)>,
    /// Replies from local-spawn not yet used, and the next request id.
    sp_buf: Vec<u8>,
    next_id: u64,
}

/// Text safe for a reply: printable ASCII, at most 200 bytes.
fn clean(t: &[u8]) -> Vec<u8> {
    let t = crate::parse::trim(t);
    let end = memchr::memchr(b'\n', t).unwrap_or(t.len());
    t[..end]
        .iter()
        .take(200)
        .map(|&c| if (0x20..0x7f).contains(&c) { c } else { b'?' })
        .collect()
}

/// The enhanced status code of a qmail-style report `... (#5.1.1)` when its
/// class is `class`, else `class.0.0`.
pub fn report_code(text: &[u8], class: u8) -> Vec<u8> {
    let found = text.windows(2).rposition(|w| w == b"(#").and_then(|i| {
        let rest = &text[i + 2..];
        let end = memchr::memchr(b')', rest)?;
        let code = &rest[..end];
        let ok = code.len() >= 5
            && code[0] == class
            && code.iter().all(|&c| c.is_ascii_digit() || c == b'.')
            && code.iter().filter(|&&c| c == b'.').count() == 2;
        ok.then(|| code.to_vec())
    });
    found.unwrap_or_else(|| vec![class, b'.', b'0', b'.', b'0'])
}

/// Runs one session; returns the exit code. With `helper` (local-spawn's
/// request socket and reply pipe), deliveries run as each recipient's
/// account (any uid but 0); without, as we do (our uid's accounts only).
pub fn run(rfd: i32, wfd: i32, helper: Option<(i32, i32)>) -> i32 {
    let cfg = match Config::load() {
        Ok(c) => c,
        Err(e) => return crate::smtp::controls_failed(wfd, &e),
    };
    let conn = Conn::new(rfd, wfd, cfg.timeout);
    let mut s = Session {
        cfg,
        conn,
        lhlo: None,
        sender: None,
        rcpts: Vec::new(),
        done: false,
        helper,
        sp_buf: Vec::new(),
        next_id: 1,
    };
    match s.serve() {
        Ok(()) | Err(Fatal::Eof) => crate::exit::OK,
        Err(Fatal::Timeout) => {
            let me = s.cfg.me.clone();
            s.put(&[b"421 4.4.2 ", &me, b" timeout, closing connection"]);
            let _ = s.conn.flush();
            crate::exit::TEMP
        }
        Err(Fatal::Io(_)) => crate::exit::TEMP,
    }
}

impl Session {
    fn put(&mut self, parts: &[&[u8]]) {
        for p in parts {
            self.conn.put(p);
        }
        self.conn.put(b"\r\n");
    }

    fn serve(&mut self) -> Result<(), Fatal> {
        let me = self.cfg.me.clone();
        self.put(&[b"220 ", &me, b" LMTP"]);
        while !self.done {
            let l = match self.conn.line(MAX_LINE)? {
                Line::TooLong => {
                    self.put(&[b"500 5.5.2 line too long"]);
                    continue;
                }
                Line::Ok(l) => l,
            };
            if let Some(why) = crate::smtp::bad_bytes(&l) {
                self.put(&[b"500 5.5.2 syntax error: ", why.as_bytes()]);
                continue;
            }
            let (verb, arg) = match memchr::memchr(b' ', &l) {
                Some(i) => (l[..i].to_ascii_uppercase(), &l[i + 1..]),
                None => (l.to_ascii_uppercase(), &b""[..]),
            };
            match &verb[..] {
                b"LHLO" => self.lhlo(arg),
                b"MAIL" => self.mail(arg),
                b"RCPT" => self.rcpt(arg),
                b"DATA" => {
                    self.conn.flush()?;
                    self.data()?
                }
                b"RSET" => {
                    self.sender = None;
                    self.rcpts.clear();
                    self.put(&[b"250 2.0.0 ok"]);
                }
                b"NOOP" => self.put(&[b"250 2.0.0 ok"]),
                b"QUIT" => {
                    self.put(&[b"221 2.0.0 ", &me, b" closing connection"]);
                    self.done = true;
                }
                b"HELO" | b"EHLO" => self.put(&[b"500 5.5.1 this is LMTP: say LHLO"]),
                _ => self.put(&[b"500 5.5.1 command not recognized"]),
            }
        }
        self.conn.flush()
    }

    fn lhlo(&mut self, arg: &[u8]) {
        let h = crate::parse::trim(arg);
        if h.is_empty() {
            self.put(&[b"501 5.5.4 syntax: LHLO hostname"]);
            return;
        }
        self.lhlo = Some(h.to_vec());
        self.sender = None;
        self.rcpts.clear();
        let me = self.cfg.me.clone();
        let size = format!("SIZE {}", self.cfg.databytes).into_bytes();
        let lines: [&[u8]; 5] = [
            &me,
            b"PIPELINING",
            b"ENHANCEDSTATUSCODES",
            b"8BITMIME",
            &size,
        ];
        for (i, l) in lines.iter().enumerate() {
            self.put(&[
                if i + 1 == lines.len() {
                    b"250 "
                } else {
                    b"250-"
                },
                l,
            ]);
        }
    }

    fn mail(&mut self, arg: &[u8]) {
        if self.lhlo.is_none() {
            return self.put(&[b"503 5.5.1 send LHLO first"]);
        }
        if self.sender.is_some() {
            return self.put(&[b"503 5.5.1 nested MAIL command"]);
        }
        let p = match arg.get(..5).filter(|p| p.eq_ignore_ascii_case(b"FROM:")) {
            Some(_) => path::parse(&arg[5..]),
            None => return self.put(&[b"501 5.5.4 syntax: MAIL FROM:<address>"]),
        };
        let Ok(p) = p else {
            return self.put(&[b"501 5.1.7 bad sender address syntax"]);
        };
        for prm in &p.params {
            match path::param(prm) {
                Some((k, Some(v))) if k == b"SIZE" => match crate::parse::number(v) {
                    Some(n) if self.cfg.databytes > 0 && n > self.cfg.databytes => {
                        return self
                            .put(&[b"552 5.3.4 message size exceeds fixed maximum message size"]);
                    }
                    Some(_) => {}
                    None => return self.put(&[b"501 5.5.4 bad SIZE parameter"]),
                },
                Some((k, Some(v)))
                    if k == b"BODY"
                        && (v.eq_ignore_ascii_case(b"7BIT")
                            || v.eq_ignore_ascii_case(b"8BITMIME")) => {}
                _ => return self.put(&[b"555 5.5.4 unsupported parameter"]),
            }
        }
        self.sender = Some(p.addr);
        self.put(&[b"250 2.1.0 ok"]);
    }

    fn rcpt(&mut self, arg: &[u8]) {
        if self.sender.is_none() {
            return self.put(&[b"503 5.5.1 MAIL first"]);
        }
        let p = match arg.get(..3).filter(|p| p.eq_ignore_ascii_case(b"TO:")) {
            Some(_) => path::parse(&arg[3..]),
            None => return self.put(&[b"501 5.5.4 syntax: RCPT TO:<address>"]),
        };
        let addr = match p {
            Ok(p) if !p.addr.is_empty() && p.params.is_empty() => p.addr,
            _ => return self.put(&[b"501 5.1.3 bad recipient address syntax"]),
        };
        if self.rcpts.len() >= MAX_RCPT {
            return self.put(&[b"452 4.5.3 too many recipients"]);
        }
        let a = [&b"<"[..], &crate::smtp::safe(&addr), b">"].concat();
        match check(&addr, self.helper.is_some()) {
            Ok(routed) => {
                self.rcpts.push(Rcpt { addr, routed });
                self.put(&[b"250 2.1.5 ok"]);
            }
            Err(reply) => self.put(&[&with_addr(&reply, &a)]),
        }
    }

    fn data(&mut self) -> Result<(), Fatal> {
        if self.sender.is_none() {
            self.put(&[b"503 5.5.1 MAIL first"]);
            return Ok(());
        }
        if self.rcpts.is_empty() {
            // RFC 2033 4.2: DATA without a successful RCPT fails with 503
            self.put(&[b"503 5.5.1 no valid recipients"]);
            return Ok(());
        }
        let mut f = match crate::sys::temp_files("lmtp-recv") {
            Ok(f) => Some(f),
            Err(e) => {
                crate::exit::warn(&[
                    b"unable to make a temporary file: ",
                    crate::exit::errtext(&e).as_bytes(),
                ]);
                None
            }
        };
        self.put(&[b"354 go ahead, end with <CRLF>.<CRLF>"]);
        let mut failed = f.is_none();
        if let Some((f, _)) = f.as_mut() {
            failed |= f.write_all(&self.received()).is_err();
        }
        let mut d = data::Data::new(self.cfg.databytes);
        let mut out = Vec::with_capacity(65536);
        loop {
            if self.conn.buffered().is_empty() {
                self.conn.fill()?;
            }
            out.clear();
            let r = d.feed(self.conn.buffered(), &mut out);
            if let (true, Some((f, _))) = (d.good() && !failed, f.as_mut()) {
                failed |= f.write_all(&out).is_err();
            }
            let n = r.unwrap_or(self.conn.buffered().len());
            self.conn.consume(n);
            if r.is_some() {
                break;
            }
        }
        let rcpts = std::mem::take(&mut self.rcpts);
        let sender = self.sender.take().unwrap_or_default();
        let all: Option<&[u8]> = if d.bare {
            Some(b"550 5.6.2 message refused: bare CR or LF in data")
        } else if d.over {
            Some(b"552 5.3.4 message size exceeds fixed maximum message size")
        } else if d.hops.looping() {
            Some(b"554 5.4.6 too many hops, this message is looping")
        } else if failed {
            Some(b"451 4.3.0 unable to store the message")
        } else {
            None
        };
        for r in &rcpts {
            let a = [&b"<"[..], &crate::smtp::safe(&r.addr), b">"].concat();
            let reply = match (all, f.as_mut()) {
                (None, Some(f)) => self.deliver(f, &sender, r, &a),
                _ => with_addr(all.unwrap_or(b"451 4.3.0 unable to store the message"), &a),
            };
            crate::exit::info(&[
                b"result rcpt=<",
                &crate::log::field(&r.addr),
                b"> from=<",
                &crate::log::field(&sender),
                b"> remote=",
                &self.cfg.remote.clone(),
                b": ",
                &reply,
            ]);
            self.put(&[&reply]);
        }
        Ok(())
    }

    /// Delivers the spooled message (`rw` and a read-only `ro` of it) to
    /// one recipient, through local-spawn or by running deliver-local
    /// ourselves: its reply line.
    fn deliver(
        &mut self,
        (rw, ro): &mut (std::fs::File, std::fs::File),
        sender: &[u8],
        r: &Rcpt,
        a: &[u8],
    ) -> Vec<u8> {
        let fail = |e: std::io::Error| {
            crate::exit::warn(&[b"unable to deliver: ", crate::exit::errtext(&e).as_bytes()]);
            [&b"451 4.3.0 "[..], a, b" unable to run deliver-local"].concat()
        };
        if let Err(e) = rw.flush().and_then(|_| rw.rewind()) {
            return fail(e);
        }
        let (code, out) = match self.helper {
            Some(sp) => match self.spawn(sp, ro.as_raw_fd(), sender, &r.routed) {
                Ok(r) => r,
                Err(e) => return fail(e),
            },
            None => {
                let prog = crate::exec::program("QMAILLOCAL", "deliver-local");
                let args: [&[u8]; 2] = [sender, &r.routed];
                let mut kid = match spawn::start(&prog, &args, rw.as_raw_fd(), None, 0) {
                    Ok(k) => k,
                    Err(e) => return fail(e),
                };
                kid.limit = 1000;
                while !kid.read_some() {}
                let out = std::mem::take(&mut kid.out);
                (kid.finish(), out)
            }
        };
        let report = clean(&out);
        match code {
            Some(0) => [&b"250 2.0.0 "[..], a, b" delivered"].concat(),
            Some(100) => [
                &b"550 "[..],
                &report_code(&report, b'5'),
                b" ",
                a,
                b" ",
                &report,
            ]
            .concat(),
            _ => [
                &b"451 "[..],
                &report_code(&report, b'4'),
                b" ",
                a,
                b" ",
                &report,
            ]
            .concat(),
        }
    }

    /// One local delivery through local-spawn, as queue-run asks for it:
    /// the request with the read-only message descriptor on the socket, the
    /// reply (K, D or Z) on the pipe. Returns (0, 100 or 111; report).
    fn spawn(
        &mut self,
        (req, rep): (i32, i32),
        fd: i32,
        sender: &[u8],
        rcpt: &[u8],
    ) -> std::io::Result<(Option<i32>, Vec<u8>)> {
        let id = self.next_id;
        self.next_id += 1;
        crate::sys::net::send_with_fd(req, &spawn::request(id, sender, rcpt), fd)?;
        let mut buf = [0u8; 4096];
        loop {
            while let Some((rid, reply)) = spawn::take_reply(&mut self.sp_buf) {
                if let (true, spawn::Reply::Local(letter, text)) = (rid == id, reply) {
                    let code = match letter {
                        b'K' => 0,
                        b'D' => 100,
                        _ => 111,
                    };
                    return Ok((Some(code), text));
                }
            }
            crate::sys::wait_fd(rep, false, 86400)?;
            match crate::sys::read(rep, &mut buf) {
                Ok(0) => {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "local-spawn is gone",
                    ))
                }
                Ok(n) => self.sp_buf.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
        }
    }

    fn received(&self) -> Vec<u8> {
        let mut r = b"Received: from ".to_vec();
        r.extend_from_slice(&crate::smtp::safe(
            self.lhlo.as_deref().unwrap_or(b"unknown"),
        ));
        r.extend_from_slice(b" (");
        r.extend_from_slice(&crate::smtp::safe(&self.cfg.remote));
        r.extend_from_slice(b")\n\tby ");
        r.extend_from_slice(&crate::smtp::safe(&self.cfg.me));
        r.extend_from_slice(b" with LMTP; ");
        r.extend_from_slice(crate::date::now().as_bytes());
        r.push(b'\n');
        r
    }
}

/// `CODE X.Y.Z text` with `<addr>` after the enhanced code.
fn with_addr(reply: &[u8], a: &[u8]) -> Vec<u8> {
    let at = reply.len().min(10);
    [&reply[..at], a, b" ", &reply[at..]].concat()
}

/// Whether `addr` may be delivered here by us: Ok(routed address), or
/// Err(reply) with the code first (`550 ...`).
fn check(addr: &[u8], any_uid: bool) -> Result<Vec<u8>, Vec<u8>> {
    use crate::users::{self, Route};
    let ctl = |_| b"451 4.3.0 unable to read controls".to_vec();
    let Route::Local { local, domain } = users::route(addr).map_err(ctl)? else {
        return Err(b"550 5.1.2 not a local address".to_vec());
    };
    if !users::recipient_exists(&local, &domain).map_err(ctl)? {
        return Err(b"550 5.1.1 no such user here".to_vec());
    }
    let acct = users::lookup(&local).map_err(ctl)?;
    if !any_uid && acct.is_some_and(|a| a.uid != crate::sys::geteuid()) {
        // Not ours to write: that needs local-spawn (lmtp-recv(8)).
        return Err(b"451 4.3.5 mailbox of another uid; not delivered by this lmtp-recv".to_vec());
    }
    Ok([&local[..], b"@", &domain].concat())
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn report_codes() {
        assert_eq!(
            report_code(b"Sorry, no mailbox here by that name. (#5.1.1)", b'5'),
            b"5.1.1"
        );
        assert_eq!(report_code(b"temporary (#4.2.1)", b'5'), b"5.0.0");
        assert_eq!(report_code(b"Program exited 111. (#4.3.0)", b'4'), b"4.3.0");
        assert_eq!(report_code(b"no code", b'4'), b"4.0.0");
        assert_eq!(report_code(b"(#5.1)", b'5'), b"5.0.0");
        assert_eq!(clean(b"  a\x01b\nsecond line"), b"a?b");
    }
}

//! pop3-login: the AUTHORIZATION state (qmail-popup's role). It greets
//! with an APOP timestamp, takes USER/PASS, APOP or AUTH PLAIN, and runs
//! `checkprog prog...` with `user\0pass\0timestamp\0` on fd 3 and the
//! client still on fds 0 and 1. When the login succeeds the checkpassword
//! program execs prog (pop3d), which answers and carries the session on;
//! when that exits 0 so does pop3-login. Any other result is an -ERR
//! reply here and the client may try again, up to [`MAX_LOGIN_FAILURES`]
//! refused logins.

use super::{split_command, Line, Reader};
use std::ffi::OsString;
use std::io;

/// The CAPA reply: STLS while it can be used, USER and SASL PLAIN while
/// logins are allowed.
pub fn capa(stls: bool, login: bool) -> Vec<u8> {
    let mut c = b"+OK capability list follows\r\nTOP\r\nUIDL\r\n".to_vec();
    if stls {
        c.extend_from_slice(b"STLS\r\n");
    }
    if login {
        c.extend_from_slice(b"USER\r\nSASL PLAIN\r\n");
    }
    c.extend_from_slice(
        b"RESP-CODES\r\nAUTH-RESP-CODE\r\nPIPELINING\r\nIMPLEMENTATION pipemail\r\n.\r\n",
    );
    c
}

const NO_CLEARTEXT: &[u8] =
    b"-ERR [AUTH] plaintext authentication disallowed on an unencrypted connection, use STLS\r\n";

/// The greeting's timestamp: `<pid.time@hostname>`.
pub fn timestamp(hostname: &[u8]) -> Vec<u8> {
    let mut t = format!("<{}.{}@", std::process::id(), crate::sys::now()).into_bytes();
    t.extend_from_slice(hostname);
    t.push(b'>');
    t
}

/// The reply for a checkpassword program's exit code (not 0).
pub fn failure_reply(code: i32) -> &'static [u8] {
    match code {
        1 => b"-ERR [AUTH] authorization failed\r\n",
        -1 => b"-ERR [SYS/TEMP] aack, child crashed\r\n",
        _ => b"-ERR [SYS/TEMP] temporary failure, try again later\r\n",
    }
}

/// Failed logins (checkpassword exit 1) before the session is closed, as
/// imap-login does.
pub const MAX_LOGIN_FAILURES: u32 = 3;

struct Login<'a> {
    prog: &'a [OsString],
    ts: Vec<u8>,
    secs: u64,
    failures: std::cell::Cell<u32>,
}

impl Login<'_> {
    fn say(&self, b: &[u8]) -> io::Result<()> {
        crate::sys::write_timeout(1, b, self.secs)
    }

    /// Runs the checkpassword program; Ok(true) when the session is over.
    fn attempt(&self, user: &[u8], mut pass: Vec<u8>) -> io::Result<bool> {
        let r = super::super::auth::check(self.prog, user, &pass, &self.ts);
        pass.iter_mut().for_each(|b| *b = 0);
        let code = match r {
            Ok(c) => c,
            Err(e) => {
                crate::exit::warn(&[
                    b"unable to run ",
                    self.prog[0].as_encoded_bytes(),
                    b": ",
                    crate::exit::errtext(&e).as_bytes(),
                ]);
                111
            }
        };
        if code == 0 {
            return Ok(true);
        }
        let ip = std::env::var_os("TCPREMOTEIP").unwrap_or_default();
        crate::exit::info(&[
            b"login failed user=",
            &crate::log::field(user),
            b" remote=",
            &crate::log::field(ip.as_encoded_bytes()),
            b" status=",
            code.to_string().as_bytes(),
        ]);
        if code == 1 {
            self.failures.set(self.failures.get() + 1);
            if self.failures.get() >= MAX_LOGIN_FAILURES {
                crate::exit::info(&[
                    b"closed after too many failed logins remote=",
                    &crate::log::field(ip.as_encoded_bytes()),
                ]);
                self.say(
                    b"-ERR [AUTH] authorization failed; too many failures, closing connection\r\n",
                )?;
                return Ok(true);
            }
        }
        self.say(failure_reply(code))?;
        Ok(false)
    }

    /// AUTH PLAIN with an optional initial response; Ok(true) when over.
    fn auth(&self, rd: &mut Reader, rest: &[u8]) -> io::Result<bool> {
        let (mech, ir) = split_command(rest);
        if mech.is_empty() {
            self.say(b"+OK\r\nPLAIN\r\n.\r\n")?;
            return Ok(false);
        }
        if mech != b"PLAIN" {
            self.say(b"-ERR unsupported SASL mechanism\r\n")?;
            return Ok(false);
        }
        let resp = if !ir.is_empty() {
            ir.to_vec()
        } else {
            self.say(b"+ \r\n")?;
            match rd.line()? {
                Line::Text(l) => l,
                Line::TooLong => {
                    self.say(b"-ERR line too long\r\n")?;
                    return Ok(false);
                }
                Line::Eof | Line::Timeout => return Ok(true),
            }
        };
        if resp == b"*" {
            self.say(b"-ERR authentication cancelled\r\n")?;
            return Ok(false);
        }
        let dec = if resp == b"=" {
            Some(Vec::new())
        } else {
            crate::auth::base64_decode(&resp)
        };
        let Some(mut dec) = dec else {
            self.say(b"-ERR malformed base64\r\n")?;
            return Ok(false);
        };
        let r = match crate::auth::sasl_plain(&dec) {
            None => {
                self.say(b"-ERR [AUTH] malformed PLAIN response\r\n")?;
                Ok(false)
            }
            Some((authz, authc, _)) if !authz.is_empty() && authz != authc => {
                self.say(b"-ERR [AUTH] authorization identity not allowed\r\n")?;
                Ok(false)
            }
            Some((_, authc, pass)) => self.attempt(authc, pass.to_vec()),
        };
        dec.iter_mut().for_each(|b| *b = 0);
        r
    }
}

/// pop3-login's whole session; returns the exit code.
pub fn run(hostname: &[u8], prog: &[OsString]) -> i32 {
    let secs = super::timeout();
    let l = Login {
        prog,
        ts: timestamp(hostname),
        secs,
        failures: std::cell::Cell::new(0),
    };
    let mut rd = Reader::new(0, true, secs);
    let mut user: Option<Vec<u8>> = None;
    let mut stls = crate::ucspitls::from_env().filter(|_| !crate::ucspitls::implicit());
    let mut login =
        crate::ucspitls::implicit() || crate::ucspitls::cleartext_login_ok(stls.is_some());
    let r: io::Result<()> = (|| {
        let mut g = b"+OK ".to_vec();
        g.extend_from_slice(&l.ts);
        g.extend_from_slice(b"\r\n");
        l.say(&g)?;
        loop {
            let line = match rd.line()? {
                Line::Text(t) => t,
                Line::TooLong => {
                    l.say(b"-ERR line too long\r\n")?;
                    continue;
                }
                Line::Eof => return Ok(()),
                Line::Timeout => return l.say(b"-ERR autologout; idle for too long\r\n"),
            };
            let (verb, rest) = split_command(&line);
            let over = match &verb[..] {
                b"QUIT" => {
                    l.say(b"+OK bye\r\n")?;
                    true
                }
                b"CAPA" => {
                    l.say(&capa(stls.is_some(), login))?;
                    false
                }
                b"STLS" => match stls.take() {
                    None => {
                        l.say(b"-ERR TLS not available or already active\r\n")?;
                        false
                    }
                    Some(st) => {
                        // RFC 2595: a new start; input pipelined after STLS
                        // stays unread in the kernel and fails the handshake.
                        l.say(b"+OK begin TLS negotiation\r\n")?;
                        user = None;
                        st.onto_stdio(secs)?;
                        rd = Reader::new(0, true, secs);
                        login = true;
                        false
                    }
                },
                b"USER" | b"PASS" | b"APOP" | b"AUTH" if !login => {
                    l.say(NO_CLEARTEXT)?;
                    false
                }
                b"USER" if rest.is_empty() => {
                    l.say(b"-ERR syntax error: USER name\r\n")?;
                    false
                }
                b"USER" => {
                    user = Some(rest.to_vec());
                    l.say(b"+OK \r\n")?;
                    false
                }
                b"PASS" => match user.take() {
                    None => {
                        l.say(b"-ERR USER first\r\n")?;
                        false
                    }
                    Some(u) => l.attempt(&u, rest.to_vec())?,
                },
                b"APOP" => {
                    user = None;
                    match memchr::memrchr(b' ', rest) {
                        Some(i) if i > 0 && i + 1 < rest.len() => {
                            l.attempt(&rest[..i], rest[i + 1..].to_vec())?
                        }
                        _ => {
                            l.say(b"-ERR syntax error: APOP name digest\r\n")?;
                            false
                        }
                    }
                }
                b"AUTH" => {
                    user = None;
                    l.auth(&mut rd, rest)?
                }
                b"STAT" | b"LIST" | b"RETR" | b"DELE" | b"NOOP" | b"RSET" | b"TOP" | b"UIDL"
                | b"LAST" => {
                    l.say(b"-ERR authorization first\r\n")?;
                    false
                }
                _ => {
                    l.say(b"-ERR unimplemented\r\n")?;
                    false
                }
            };
            if over {
                return Ok(());
            }
        }
    })();
    if let Some(mut u) = user {
        u.iter_mut().for_each(|b| *b = 0);
    }
    match r {
        Ok(()) => crate::exit::OK,
        Err(e) => {
            crate::exit::warn(&[b"session ended: ", crate::exit::errtext(&e).as_bytes()]);
            crate::exit::OK
        }
    }
}

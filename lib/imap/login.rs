//! imap-login: the not-authenticated state (RFC 3501 §6.1-6.2). LOGIN and
//! AUTHENTICATE PLAIN (with SASL-IR) run the checkpassword program with
//! `user\0pass\0\0` on descriptor 3; it execs imapd as the user, and
//! imapd answers the command's tag, which it finds in `$IMAPLOGINTAG`.
//! Reads are one byte at a time so nothing meant for imapd is swallowed.

use std::ffi::OsString;

use super::parse::{Cursor, Input, Limits, Reader};
use super::resp::Out;
use crate::{exit, mime, sys};

/// Capabilities before login: STARTTLS while it can be used,
/// LOGINDISABLED while clear-text logins are off.
pub fn caps(tls_required: bool, starttls: bool) -> String {
    let mut c = "IMAP4rev1 LITERAL+ SASL-IR ID ENABLE IDLE".to_string();
    if starttls {
        c.push_str(" STARTTLS");
    }
    c.push_str(if tls_required {
        " LOGINDISABLED"
    } else {
        " AUTH=PLAIN"
    });
    c
}

/// What the checkpassword run came to.
pub enum Check {
    /// The session ran (imapd exited 0).
    Done,
    /// Bad user or password (exit 1).
    Bad,
    /// Anything else: temporary.
    Temp,
}

/// Runs `prog` with `user\0pass\0\0` on fd 3 and `IMAPLOGINTAG=tag`.
pub fn check(prog: &[OsString], tag: &[u8], user: &[u8], pass: &[u8]) -> Check {
    let (r, w) = match sys::pipe() {
        Ok(p) => p,
        Err(_) => return Check::Temp,
    };
    let mut cmd = crate::exec::command(&prog[0]);
    cmd.args(&prog[1..]).env(
        "IMAPLOGINTAG",
        std::ffi::OsStr::new(std::str::from_utf8(tag).unwrap_or("x")),
    );
    sys::proc::pass_fd(&mut cmd, r, 3);
    let child = cmd.spawn();
    sys::close(r);
    let mut child = match child {
        Ok(c) => c,
        Err(e) => {
            sys::close(w);
            exit::warn(&[
                b"unable to run checkpassword program: ",
                exit::errtext(&e).as_bytes(),
            ]);
            return Check::Temp;
        }
    };
    let mut data = Vec::with_capacity(user.len() + pass.len() + 3);
    data.extend_from_slice(user);
    data.push(0);
    data.extend_from_slice(pass);
    data.extend_from_slice(b"\0\0");
    let _ = sys::write_all(w, &data);
    data.iter_mut().for_each(|b| *b = 0);
    sys::close(w);
    match child.wait() {
        Ok(st) => match st.code() {
            Some(0) => Check::Done,
            Some(1) => Check::Bad,
            _ => Check::Temp,
        },
        Err(_) => Check::Temp,
    }
}

/// The not-authenticated loop. Returns the exit code.
pub fn run(prog: Vec<OsString>) -> i32 {
    let timeout = super::env_number("IMAPLOGINTIMEOUT", 300);
    let delay = super::env_number("IMAPLOGINDELAY", 2);
    let mut starttls = crate::ucspitls::from_env().filter(|_| !crate::ucspitls::implicit());
    let mut tls_required =
        !crate::ucspitls::implicit() && !crate::ucspitls::cleartext_login_ok(starttls.is_some());
    let mut caps = caps(tls_required, starttls.is_some());
    let mut rd = Reader::new(0, 1, timeout);
    let mut out = Out::new(1, timeout);
    let ip = std::env::var_os("TCPREMOTEIP")
        .map(|v| std::os::unix::ffi::OsStrExt::as_bytes(v.as_os_str()).to_vec())
        .unwrap_or_default();
    let mut failures = 0;
    out.line(&[
        b"* OK [CAPABILITY ",
        caps.as_bytes(),
        b"] pipemail IMAP ready.",
    ]);
    loop {
        if out.flush().is_err() {
            return exit::OK;
        }
        let input = match rd.command(Limits::LOGIN, &mut || {
            out.put(b"+ Ready for literal data\r\n");
            out.flush()
        }) {
            Ok(i) => i,
            Err(_) => return exit::OK,
        };
        let line = match input {
            Input::Eof => return exit::OK,
            Input::Timeout => {
                out.line(&[b"* BYE Disconnected for inactivity."]);
                let _ = out.flush();
                return exit::OK;
            }
            // Before login nothing over the limit is drained: imap-login
            // reads a byte at a time, so draining would be a CPU sink.
            Input::TooLong(t) | Input::TooMuch(t) => {
                out.line(&[super::tag_or_star(&t), super::TOO_MUCH]);
                let _ = out.flush();
                return exit::OK;
            }
            Input::TooBig(t) => {
                out.line(&[&t, b" NO [TOOBIG] literal too large"]);
                continue;
            }
            Input::TooBigPlus(_) => {
                out.line(&[b"* BYE [TOOBIG] literal too large"]);
                let _ = out.flush();
                return exit::OK;
            }
            Input::Cmd(c) => c,
        };
        let mut c = Cursor::new(&line);
        let tag = match c.tag() {
            Ok(t) if c.peek() == Some(b' ') || c.at_end() => t.to_vec(),
            _ => {
                out.line(&[b"* BAD invalid tag"]);
                continue;
            }
        };
        let name = match c.sp().and_then(|_| c.word()) {
            Ok(n) => n,
            Err(_) => {
                out.line(&[&tag, b" BAD missing command"]);
                continue;
            }
        };
        let creds: Option<(Vec<u8>, Vec<u8>)> = match &name[..] {
            b"CAPABILITY" => {
                out.line(&[b"* CAPABILITY ", caps.as_bytes()]);
                out.line(&[&tag, b" OK Capability completed."]);
                None
            }
            b"NOOP" => {
                out.line(&[&tag, b" OK NOOP completed."]);
                None
            }
            b"LOGOUT" => {
                out.line(&[b"* BYE Logging out"]);
                out.line(&[&tag, b" OK Logout completed."]);
                let _ = out.flush();
                return exit::OK;
            }
            b"ID" => {
                out.line(&[b"* ID (\"name\" \"pipemail\")"]);
                out.line(&[&tag, b" OK ID completed."]);
                None
            }
            b"STARTTLS" => match starttls.take() {
                None => {
                    out.line(&[&tag, b" BAD TLS is not available or already active."]);
                    None
                }
                Some(st) => {
                    // RFC 3501 6.2.1: a new start after the handshake; what
                    // the client pipelined behind STARTTLS stays unread in
                    // the kernel (one-byte reads) and fails the handshake.
                    out.line(&[&tag, b" OK Begin TLS negotiation now."]);
                    if out.flush().is_err() || st.onto_stdio(timeout).is_err() {
                        exit::info(&[b"STARTTLS failed remote=", &crate::log::field(&ip)]);
                        return exit::OK;
                    }
                    rd = Reader::new(0, 1, timeout);
                    out = Out::new(1, timeout);
                    tls_required = false;
                    caps = self::caps(false, false);
                    None
                }
            },
            b"LOGIN" => {
                let r = (|| {
                    c.sp()?;
                    let u = c.astring()?;
                    c.sp()?;
                    let p = c.astring()?;
                    c.end()?;
                    Ok::<_, &'static str>((u, p))
                })();
                match r {
                    Err(m) => {
                        out.line(&[&tag, b" BAD ", m.as_bytes()]);
                        None
                    }
                    Ok(_) if tls_required => {
                        out.line(&[
                            &tag,
                            b" NO [PRIVACYREQUIRED] Plaintext authentication disallowed.",
                        ]);
                        None
                    }
                    Ok(up) => Some(up),
                }
            }
            b"AUTHENTICATE" => authenticate(&tag, &mut c, &mut rd, &mut out, tls_required),
            b"SELECT" | b"EXAMINE" | b"CREATE" | b"DELETE" | b"RENAME" | b"SUBSCRIBE"
            | b"UNSUBSCRIBE" | b"LIST" | b"LSUB" | b"STATUS" | b"APPEND" | b"CHECK" | b"CLOSE"
            | b"EXPUNGE" | b"SEARCH" | b"FETCH" | b"STORE" | b"COPY" | b"MOVE" | b"UID"
            | b"IDLE" | b"NAMESPACE" | b"UNSELECT" | b"ENABLE" => {
                out.line(&[&tag, b" BAD Log in first."]);
                None
            }
            _ => {
                out.line(&[&tag, b" BAD unknown command"]);
                None
            }
        };
        let (user, mut pass) = match creds {
            Some(x) => x,
            None => continue,
        };
        if out.flush().is_err() {
            return exit::OK;
        }
        let r = check(&prog, &tag, &user, &pass);
        pass.iter_mut().for_each(|b| *b = 0);
        match r {
            Check::Done => return exit::OK,
            Check::Bad => {
                exit::info(&[
                    b"login failed user=",
                    &crate::log::field(&user),
                    b" remote=",
                    &crate::log::field(&ip),
                ]);
                failures += 1;
                std::thread::sleep(std::time::Duration::from_secs(delay));
                out.line(&[&tag, b" NO [AUTHENTICATIONFAILED] Authentication failed."]);
                if failures >= 3 {
                    out.line(&[b"* BYE Too many invalid login attempts."]);
                    let _ = out.flush();
                    return exit::OK;
                }
            }
            Check::Temp => {
                exit::warn(&[b"temporary login failure user=", &crate::log::field(&user)]);
                out.line(&[&tag, b" NO [UNAVAILABLE] Temporary authentication failure."]);
            }
        }
    }
}

fn authenticate(
    tag: &[u8],
    c: &mut Cursor,
    rd: &mut Reader,
    out: &mut Out,
    tls_required: bool,
) -> Option<(Vec<u8>, Vec<u8>)> {
    let r = (|| {
        c.sp()?;
        let mech = c.atom()?.to_ascii_uppercase();
        let ir = if c.eat(b' ') {
            Some(c.atom()?.to_vec())
        } else {
            None
        };
        c.end()?;
        Ok::<_, &'static str>((mech, ir))
    })();
    let (mech, ir) = match r {
        Ok(x) => x,
        Err(m) => {
            out.line(&[tag, b" BAD ", m.as_bytes()]);
            return None;
        }
    };
    if mech != b"PLAIN" {
        out.line(&[tag, b" NO [CANNOT] Unsupported authentication mechanism."]);
        return None;
    }
    if tls_required {
        out.line(&[
            tag,
            b" NO [PRIVACYREQUIRED] Plaintext authentication disallowed.",
        ]);
        return None;
    }
    let b64 = match ir {
        Some(v) if v == b"=" => Vec::new(),
        Some(v) => v,
        None => {
            out.line(&[b"+ "]);
            if out.flush().is_err() {
                return None;
            }
            let mut l = Vec::new();
            match rd.line_limited(&mut l, 8192, false) {
                Ok(Some(true)) => l,
                Ok(Some(false)) => {
                    out.line(&[tag, super::TOO_MUCH]);
                    let _ = out.flush();
                    std::process::exit(exit::OK);
                }
                _ => std::process::exit(exit::OK),
            }
        }
    };
    if b64 == b"*" {
        out.line(&[tag, b" BAD Authentication aborted."]);
        return None;
    }
    if !b64
        .iter()
        .all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'+' | b'/' | b'='))
    {
        out.line(&[tag, b" BAD Invalid base64 data."]);
        return None;
    }
    let d = mime::base64_decode(&b64);
    let parts: Vec<&[u8]> = d.split(|&c| c == 0).collect();
    if parts.len() != 3 {
        out.line(&[tag, b" NO [AUTHENTICATIONFAILED] Invalid PLAIN response."]);
        return None;
    }
    if !parts[0].is_empty() && parts[0] != parts[1] {
        out.line(&[
            tag,
            b" NO [AUTHORIZATIONFAILED] Proxy login is not supported.",
        ]);
        return None;
    }
    Some((parts[1].to_vec(), parts[2].to_vec()))
}

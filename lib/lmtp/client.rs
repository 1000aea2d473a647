//! One message to one recipient over LMTP: LHLO, MAIL, RCPT, DATA, and the
//! recipient's own reply after the final dot. 2xx is delivered (exit 0),
//! 5xx permanent (100), everything else temporary (111): 4xx, a greeting or
//! LHLO that is not 2xx, a connection that fails or goes silent.

use crate::remote::message;
use crate::remote::smtp::{Conn, Deadlines, Ext, Reply};
use std::io;
use std::net::ToSocketAddrs;
use std::path::PathBuf;

/// Where the LMTP server listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// An absolute path: a unix socket.
    Unix(PathBuf),
    /// `host:port`, `[ipv6]:port` or `ip:port`.
    Tcp(String, u16),
}

/// Parses a target: a path starting with `/`, else `host:port`.
pub fn target(s: &[u8]) -> Option<Target> {
    use std::os::unix::ffi::OsStrExt;
    if s.first() == Some(&b'/') {
        return Some(Target::Unix(PathBuf::from(std::ffi::OsStr::from_bytes(s))));
    }
    let s = std::str::from_utf8(s).ok()?;
    let (host, port) = s.rsplit_once(':')?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let port: u16 = port.parse().ok().filter(|&p| p > 0)?;
    (!host.is_empty()).then(|| Target::Tcp(host.to_string(), port))
}

pub struct Job<'a> {
    pub sender: &'a [u8],
    pub recipient: &'a [u8],
    pub msg: &'a [u8],
    /// The name given with LHLO.
    pub me: &'a [u8],
    /// Seconds for connecting and for each reply.
    pub timeout: u64,
}

/// The result: an exit code (0, 100, 111) and a line for the report.
#[derive(Debug, PartialEq, Eq)]
pub struct Outcome {
    pub code: i32,
    pub text: Vec<u8>,
}

fn name(t: &Target) -> Vec<u8> {
    match t {
        Target::Unix(p) => crate::control::bytes(p).to_vec(),
        Target::Tcp(h, p) => format!("{}:{}", h, p).into_bytes(),
    }
}

/// How many `-t` periods a whole session may take.
pub const SESSION_FACTOR: u64 = 10;

fn connect(t: &Target, timeout: u64) -> io::Result<Conn> {
    let dl = Deadlines::start(timeout, timeout, timeout.saturating_mul(SESSION_FACTOR));
    match t {
        Target::Unix(p) => Conn::unix(p, dl),
        Target::Tcp(h, port) => {
            let mut last = io::Error::from(io::ErrorKind::NotFound);
            for a in (h.as_str(), *port).to_socket_addrs()? {
                match Conn::connect(a.ip(), a.port(), None, timeout, dl) {
                    Ok(c) => return Ok(c),
                    Err(e) => last = e,
                }
            }
            Err(last)
        }
    }
}

/// The reply's lines in one, control bytes as `?`.
fn said(r: &Reply) -> Vec<u8> {
    let mut t = r.said();
    t.pop();
    t.iter()
        .map(|&c| if c == b'\n' { b' ' } else { c })
        .collect()
}

/// Delivers `j` to the server at `t`.
pub fn deliver(t: &Target, j: &Job) -> Outcome {
    let peer = name(t);
    let fail = |code: i32, what: &[u8], detail: &[u8]| Outcome {
        code,
        text: [&b"LMTP server "[..], &peer, b" ", what, b": ", detail].concat(),
    };
    let io_fail = |what: &[u8], e: io::Error| fail(111, what, crate::exit::errtext(&e).as_bytes());
    let mut c = match connect(t, j.timeout) {
        Ok(c) => c,
        Err(e) => return io_fail(b"unreachable", e),
    };
    let step = |c: &mut Conn, cmd: &[u8]| -> io::Result<Reply> {
        if !cmd.is_empty() {
            c.send(cmd)?;
        }
        c.reply()
    };
    macro_rules! expect {
        ($cmd:expr, $ok:expr, $what:expr, $perm:expr) => {
            match step(&mut c, $cmd) {
                Err(e) => return io_fail($what, e),
                Ok(r) if r.code / 100 == $ok => r,
                Ok(r) => {
                    let code = if $perm && r.class() == 5 { 100 } else { 111 };
                    return fail(code, $what, &said(&r));
                }
            }
        };
    }
    expect!(b"", 2, b"greeting failed", false);
    let lhlo = expect!(
        &[&b"LHLO "[..], j.me, b"\r\n"].concat(),
        2,
        b"refused LHLO",
        false
    );
    let ext = Ext::parse(&lhlo);
    let mut mail = [&b"MAIL FROM:<"[..], j.sender, b">"].concat();
    if ext.size.is_some() {
        mail.extend_from_slice(format!(" SIZE={}", j.msg.len()).as_bytes());
    }
    if ext.eightbit && message::is_8bit(j.msg) {
        mail.extend_from_slice(b" BODY=8BITMIME");
    }
    mail.extend_from_slice(b"\r\n");
    expect!(&mail, 2, b"refused the sender", true);
    let rcpt = [&b"RCPT TO:<"[..], j.recipient, b">\r\n"].concat();
    expect!(&rcpt, 2, b"refused the recipient", true);
    expect!(b"DATA\r\n", 3, b"refused DATA", true);
    let r = expect!(
        &message::encode(j.msg),
        2,
        b"did not take the message",
        true
    );
    c.quit(true);
    Outcome {
        code: 0,
        text: [
            &b"LMTP server "[..],
            &peer,
            b" took the message: ",
            &said(&r),
        ]
        .concat(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn targets() {
        assert_eq!(
            target(b"/run/dovecot/lmtp"),
            Some(Target::Unix("/run/dovecot/lmtp".into()))
        );
        assert_eq!(
            target(b"127.0.0.1:24"),
            Some(Target::Tcp("127.0.0.1".into(), 24))
        );
        assert_eq!(target(b"[::1]:24"), Some(Target::Tcp("::1".into(), 24)));
        assert_eq!(
            target(b"lmtp.example:2003"),
            Some(Target::Tcp("lmtp.example".into(), 2003))
        );
        for bad in [&b"relative/sock"[..], b"host", b"host:0", b":24", b"h:x"] {
            assert_eq!(target(bad), None, "{:?}", bad);
        }
    }
}

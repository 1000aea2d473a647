//! The client side of one SMTP connection: connect with a timeout (and an
//! optional source address), send bytes, read replies (multi-line, limited),
//! and what EHLO offered.

use std::io;
use std::net::{IpAddr, SocketAddr};

const MAX_LINE: usize = 2048;
const MAX_LINES: usize = 100;
/// Seconds the reply to QUIT is awaited, at most.
pub const QUIT_WAIT: u64 = 10;

/// One reply: its code (0 when the peer's text has none) and its lines,
/// without CR LF.
#[derive(Debug, Clone)]
pub struct Reply {
    pub code: u16,
    pub lines: Vec<Vec<u8>>,
}

impl Reply {
    pub fn class(&self) -> u16 {
        self.code / 100
    }

    /// The enhanced status code (RFC 3463) of the first line, when it has
    /// one whose class matches the reply code: `5.1.1`.
    pub fn enhanced(&self) -> Option<Vec<u8>> {
        let l = self.lines.first()?;
        let rest = l.get(4..)?;
        let end = rest.iter().position(|&c| c == b' ').unwrap_or(rest.len());
        let code = &rest[..end];
        let parts: Vec<&[u8]> = code.split(|&c| c == b'.').collect();
        let ok = parts.len() == 3
            && parts
                .iter()
                .all(|p| !p.is_empty() && p.len() <= 3 && p.iter().all(u8::is_ascii_digit))
            && parts[0].len() == 1
            && (parts[0][0] - b'0') as u16 == self.class();
        ok.then(|| code.to_vec())
    }

    /// `Remote host said: LINE\nLINE\n...`, control bytes as `?`.
    pub fn said(&self) -> Vec<u8> {
        let mut out = b"Remote host said: ".to_vec();
        for l in &self.lines {
            out.extend(
                l.iter()
                    .take(512)
                    .map(|&c| if c < 0x20 || c == 0x7f { b'?' } else { c }),
            );
            out.push(b'\n');
        }
        out
    }
}

/// What the peer's EHLO reply offered.
#[derive(Debug, Default, Clone)]
pub struct Ext {
    pub pipelining: bool,
    pub size: Option<u64>,
    pub eightbit: bool,
    pub smtputf8: bool,
    pub starttls: bool,
    /// The AUTH mechanisms, upper case.
    pub auth: Vec<Vec<u8>>,
}

impl Ext {
    pub fn parse(r: &Reply) -> Ext {
        let mut e = Ext::default();
        for l in r.lines.iter().skip(1) {
            let kw = l.get(4..).unwrap_or(b"");
            let mut w = kw.split(|&c| c == b' ');
            let name = w.next().unwrap_or(b"").to_ascii_uppercase();
            match &name[..] {
                b"PIPELINING" => e.pipelining = true,
                b"8BITMIME" => e.eightbit = true,
                b"SMTPUTF8" => e.smtputf8 = true,
                b"SIZE" => e.size = Some(w.next().and_then(crate::parse::number).unwrap_or(0)),
                b"STARTTLS" => e.starttls = true,
                b"AUTH" => e.auth = w.map(|m| m.to_ascii_uppercase()).collect(),
                _ => {}
            }
        }
        e
    }
}

/// How long remote-send waits for a peer (pipemail-control(5)): `idle`
/// seconds for each read or write (control/timeoutremote), `reply` seconds
/// for a whole reply however it trickles in (control/timeoutremotereply),
/// and nothing at all past `end_ms`, the session's end
/// (control/timeoutremotesession seconds after the first connection
/// attempt).
#[derive(Debug, Clone, Copy)]
pub struct Deadlines {
    pub idle: u64,
    pub reply: u64,
    pub session: u64,
    pub end_ms: u64,
}

/// Which limit ended a wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Limit {
    Idle,
    Reply,
}

impl Deadlines {
    /// Deadlines for a session that starts now.
    pub fn start(idle: u64, reply: u64, session: u64) -> Deadlines {
        Deadlines {
            idle,
            reply,
            session,
            end_ms: crate::sys::now_ms().saturating_add(session.saturating_mul(1000)),
        }
    }

    /// Whether the session's time is up.
    pub fn over(&self) -> bool {
        crate::sys::now_ms() >= self.end_ms
    }

    /// The error for a session whose time is up (not the peer's
    /// address's fault: not a timeout for queue/tcpto).
    pub fn over_error(&self) -> io::Error {
        io::Error::other(format!(
            "the session took {} seconds (control/timeoutremotesession)",
            self.session
        ))
    }

    /// Waits until `fd` is ready, at most until `end` (ms) or the end of
    /// the session, whichever comes first.
    fn wait(&self, fd: i32, write: bool, (end, why): (u64, Limit)) -> io::Result<()> {
        let session = end >= self.end_ms;
        let left = end.min(self.end_ms).saturating_sub(crate::sys::now_ms());
        if left > 0 && crate::sys::wait_fd_ms(fd, write, left)? {
            return Ok(());
        }
        Err(match (session, why) {
            (true, _) => self.over_error(),
            (false, Limit::Idle) => io::Error::from(io::ErrorKind::TimedOut),
            (false, Limit::Reply) => io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "no whole reply within {} seconds (control/timeoutremotereply)",
                    self.reply
                ),
            ),
        })
    }

    fn idle_end(&self) -> (u64, Limit) {
        (
            crate::sys::now_ms().saturating_add(self.idle.saturating_mul(1000)),
            Limit::Idle,
        )
    }
}

pub struct Conn {
    fd: i32,
    buf: Vec<u8>,
    dl: Deadlines,
    /// The last reply was 421: the server is closing the connection.
    closing: bool,
    /// After STARTTLS: everything goes through here (remote/tls.rs).
    tls: Option<crate::tls::Tls>,
}

impl Drop for Conn {
    fn drop(&mut self) {
        crate::sys::close(self.fd);
    }
}

impl Conn {
    /// A non-blocking stream socket of family `fam`, not yet connected.
    fn socket(fam: i32, dl: Deadlines) -> io::Result<Conn> {
        let fd = crate::sys::net::stream_socket(fam)?;
        Ok(Conn {
            fd,
            buf: Vec::new(),
            dl,
            closing: false,
            tls: None,
        })
    }

    /// Connects to the unix socket `path`; reads and writes then keep to
    /// `dl`. A listener with a full backlog is a temporary error.
    pub fn unix(path: &std::path::Path, dl: Deadlines) -> io::Result<Conn> {
        use std::os::unix::ffi::OsStrExt;
        let p = path.as_os_str().as_bytes();
        let c = Conn::socket(libc::AF_UNIX, dl)?;
        crate::sys::net::connect_unix(c.fd, p)?;
        Ok(c)
    }

    /// Connects to `ip:port` within `connect_timeout` seconds (and the
    /// session's deadline), from `bind` when it is of the same family.
    /// Reads and writes then keep to `dl`.
    pub fn connect(
        ip: IpAddr,
        port: u16,
        bind: Option<IpAddr>,
        connect_timeout: u64,
        dl: Deadlines,
    ) -> io::Result<Conn> {
        use crate::sys::net;
        let c = Conn::socket(net::family(ip), dl)?;
        let fd = c.fd;
        if let Some(b) = bind.filter(|b| b.is_ipv4() == ip.is_ipv4()) {
            net::bind(fd, SocketAddr::new(b, 0))?;
        }
        if let Err(e) = net::connect(fd, SocketAddr::new(ip, port)) {
            if e.raw_os_error() != Some(libc::EINPROGRESS) {
                return Err(e);
            }
            let end = crate::sys::now_ms().saturating_add(connect_timeout.saturating_mul(1000));
            dl.wait(fd, true, (end, Limit::Idle))?;
            let err = net::socket_error(fd)?;
            if err != 0 {
                return Err(io::Error::from_raw_os_error(err));
            }
        }
        Ok(c)
    }

    /// Writes all of `b`: each write within the idle timeout, all of it
    /// within the session.
    pub fn send(&mut self, mut b: &[u8]) -> io::Result<()> {
        while !b.is_empty() {
            if let Some(t) = self.tls.as_mut() {
                let step = t.write(b);
                match step {
                    crate::tls::Step::Done(n) => b = &b[n..],
                    s => self.tls_wait(s, self.dl.idle_end())?,
                }
                continue;
            }
            self.dl.wait(self.fd, true, self.dl.idle_end())?;
            if let Some(n) = crate::sys::write_nb(self.fd, b)? {
                b = &b[n..];
            }
        }
        Ok(())
    }

    /// What a TLS step that did not finish needs: a wait for the socket
    /// (within `until` and the session), or the end of the connection.
    fn tls_wait(&self, s: crate::tls::Step, until: (u64, Limit)) -> io::Result<()> {
        match s {
            crate::tls::Step::WantRead => self.dl.wait(self.fd, false, until),
            crate::tls::Step::WantWrite => self.dl.wait(self.fd, true, until),
            crate::tls::Step::Eof => Err(io::Error::from(io::ErrorKind::UnexpectedEof)),
            crate::tls::Step::Fail(e) => Err(io::Error::other(e)),
            crate::tls::Step::Done(_) => Ok(()),
        }
    }

    /// The TLS handshake after the peer's 220 to STARTTLS: `name` as SNI,
    /// checked against the certificate with `verify`, within the idle
    /// timeout. Replies the peer sent before the handshake would be an
    /// injection: refused.
    pub fn starttls(&mut self, name: &[u8], verify: bool) -> Result<(), String> {
        if !self.buf.is_empty() {
            return Err("the peer sent more after its reply to STARTTLS".into());
        }
        let ctx = crate::tls::Ctx::client(verify)?;
        let mut t = crate::tls::Tls::new(&ctx, self.fd, self.fd)?;
        t.client_name(name, verify)?;
        t.handshake(false, self.dl.idle)?;
        self.tls = Some(t);
        Ok(())
    }

    /// One read, within the idle timeout and by `end` (ms, the reply's
    /// deadline) and the session's.
    fn recv(&mut self, buf: &mut [u8], end: u64) -> io::Result<usize> {
        let until = self.dl.idle_end().min((end, Limit::Reply));
        if self.tls.is_some() {
            loop {
                let step = match self.tls.as_mut() {
                    Some(t) => t.read(buf),
                    None => break,
                };
                match step {
                    crate::tls::Step::Done(n) => return Ok(n),
                    crate::tls::Step::Eof => return Ok(0),
                    s => self.tls_wait(s, until)?,
                }
            }
        }
        self.dl.wait(self.fd, false, until)?;
        crate::sys::read(self.fd, buf)
    }

    /// One line of a reply that must be whole by `end` (ms).
    fn line(&mut self, end: u64) -> io::Result<Vec<u8>> {
        loop {
            if let Some(i) = memchr::memchr(b'\n', &self.buf) {
                let mut l: Vec<u8> = self.buf.drain(..=i).collect();
                l.pop();
                if l.last() == Some(&b'\r') {
                    l.pop();
                }
                return Ok(l);
            }
            if self.buf.len() > MAX_LINE {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "reply line too long",
                ));
            }
            let mut chunk = [0u8; 4096];
            let n = match self.recv(&mut chunk, end) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                r => r?,
            };
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "connection closed",
                ));
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// Sends QUIT and, when `wait`, reads the reply (at most [`QUIT_WAIT`]
    /// seconds): the result of the delivery is known already. After a 421
    /// the server is closing: nothing is sent.
    pub fn quit(&mut self, wait: bool) {
        if self.closing {
            return;
        }
        self.dl.idle = self.dl.idle.min(QUIT_WAIT);
        self.dl.reply = self.dl.reply.min(QUIT_WAIT);
        if self.send(b"QUIT\r\n").is_ok() && wait {
            let _ = self.reply();
        }
    }

    /// Reads one reply (all its lines), within the reply deadline.
    pub fn reply(&mut self) -> io::Result<Reply> {
        let end = crate::sys::now_ms().saturating_add(self.dl.reply.saturating_mul(1000));
        let mut lines = Vec::new();
        loop {
            let l = self.line(end)?;
            let code = match l.get(..3) {
                Some(d) if d.iter().all(u8::is_ascii_digit) && (b'2'..=b'5').contains(&d[0]) => {
                    crate::parse::number(d).unwrap_or(0) as u16
                }
                _ => 0,
            };
            let more = l.get(3) == Some(&b'-') && code != 0;
            lines.push(l);
            if !more || lines.len() >= MAX_LINES {
                let first = lines[0]
                    .get(..3)
                    .and_then(crate::parse::number)
                    .unwrap_or(0) as u16;
                let code = if (200..600).contains(&first) {
                    first
                } else {
                    0
                };
                self.closing = code == 421;
                return Ok(Reply { code, lines });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    fn r(code: u16, lines: &[&str]) -> Reply {
        Reply {
            code,
            lines: lines.iter().map(|l| l.as_bytes().to_vec()).collect(),
        }
    }
    #[test]
    fn enhanced_codes() {
        assert_eq!(
            r(550, &["550 5.1.1 no such user"]).enhanced(),
            Some(b"5.1.1".to_vec())
        );
        assert_eq!(r(550, &["550 4.1.1 wrong class"]).enhanced(), None);
        assert_eq!(r(550, &["550 no code"]).enhanced(), None);
        assert_eq!(r(451, &["451 4.3.0"]).enhanced(), Some(b"4.3.0".to_vec()));
        assert_eq!(
            r(550, &["550-5.7.1 a\x01", "550 b"]).said(),
            b"Remote host said: 550-5.7.1 a?\n550 b\n"
        );
    }
    #[test]
    fn ehlo_keywords() {
        let e = Ext::parse(&r(
            250,
            &[
                "250-mx hello",
                "250-PIPELINING",
                "250-SIZE 1000",
                "250-8bitmime",
                "250 SMTPUTF8",
            ],
        ));
        assert!(e.pipelining && e.eightbit && e.smtputf8);
        assert_eq!(e.size, Some(1000));
        assert_eq!(Ext::parse(&r(250, &["250 hi"])).size, None);
    }
}

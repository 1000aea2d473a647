//! smtp-recv(8): an RFC 5321 receiver on descriptors 0 and 1, one process
//! per connection. A qmail-style command table with a flush column; replies
//! are buffered and flushed before every blocking read (PIPELINING); each
//! message goes to `$QMAILQUEUE` or the linked queue code (enqueue.rs).

pub mod auth;
pub mod conn;
pub mod data;
pub mod dsn;
pub mod path;
pub mod submission;

use crate::control::{self, ControlError};
use crate::enqueue::{Outcome, Queue};
use conn::{Conn, Fatal, Line};
use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;

/// Longest command line with its CR LF (RFC 5321 asks for 512).
pub const MAX_LINE: usize = 1000;
/// Recipients per message; the next gets 452 4.5.3.
pub const MAX_RCPT: usize = 100;
/// More Received:/Delivered-To: lines than this: 554 5.4.6.
pub use crate::header::MAX_HOPS;
/// Protocol errors (500-504, 555) and refused recipients (relaying,
/// unknown user) before the session is closed with 421.
pub const MAX_ERRORS: u32 = 20;
/// Unknown local recipients answered at once; later ones wait
/// control/badrcptdelay seconds (slows probing for addresses).
pub const FREE_UNKNOWN_RCPTS: u32 = 2;
pub const DEFAULT_BADRCPTDELAY: u64 = 1;
/// Failed AUTH attempts before the session is closed with 421.
pub const MAX_AUTH_FAILURES: u32 = 3;
pub const DEFAULT_DATABYTES: u64 = 10_240_000;
pub const DEFAULT_TIMEOUT: u64 = 300;

/// Everything read once at the start: control files and environment.
pub struct Config {
    pub me: Vec<u8>,
    pub greeting: Vec<u8>,
    pub databytes: u64,
    pub timeout: u64,
    /// Seconds before refusing an unknown recipient after the first few.
    pub badrcptdelay: u64,
    pub rcpthosts: Option<Vec<Vec<u8>>>,
    pub badmailfrom: Vec<Vec<u8>>,
    pub localiphost: Option<Vec<u8>>,
    pub local_domain: Vec<u8>,
    /// control/locals, virtualdomains and users/assign, read once.
    pub recipients: crate::users::Recipients,
    pub relayclient: Option<Vec<u8>>,
    pub smtpauth: Option<OsString>,
    /// $AUTHREQUIRED: MAIL only after a successful AUTH (submission, RFC 6409).
    pub auth_required: bool,
    pub remote_ip: Vec<u8>,
    pub remote_host: Vec<u8>,
    pub remote_info: Option<Vec<u8>>,
    pub local_ip: Vec<u8>,
    /// The connection is encrypted (implicit TLS, or after STARTTLS).
    pub tls: bool,
    /// `TLSv1.3:CIPHER` for the Received line.
    pub tls_info: Vec<u8>,
    /// STARTTLS can be offered (UCSPI-TLS descriptors from tls-wrap -d).
    pub starttls: Option<crate::ucspitls::Starttls>,
    /// AUTH may be used before TLS ($AUTH_CLEARTEXT).
    pub auth_cleartext: bool,
    /// Submission (RFC 6409, $SUBMISSION): AUTH before MAIL, Date and
    /// Message-ID added when missing.
    pub submission: bool,
}

fn env(name: &str) -> Option<Vec<u8>> {
    std::env::var_os(name).map(|v| v.into_vec())
}

fn env_nonempty(name: &str) -> Option<Vec<u8>> {
    env(name).filter(|v| !v.is_empty())
}

/// The address of our end or the peer's end of socket `fd`, as text.
fn sockaddr(fd: i32, peer: bool) -> Option<Vec<u8>> {
    let (ip, _) = crate::sys::net::sock_name(fd, peer).ok()?;
    Some(ip.to_string().into_bytes())
}

impl Config {
    /// Reads the control files and the UCSPI environment.
    pub fn load() -> Result<Config, ControlError> {
        let me = control::me()?;
        let greeting = control::line("smtpgreeting", &me)?;
        let mut databytes = control::number("databytes", DEFAULT_DATABYTES)?;
        if let Some(v) = env_nonempty("DATABYTES") {
            databytes = crate::parse::number(&v).ok_or_else(|| ControlError {
                file: "$DATABYTES".into(),
                line: 0,
                what: "not a number".into(),
            })?;
        }
        let timeout = control::number("timeoutsmtpd", DEFAULT_TIMEOUT)?.max(1);
        let lower = |v: Vec<Vec<u8>>| {
            v.into_iter()
                .map(|l| l.to_ascii_lowercase())
                .collect::<Vec<_>>()
        };
        let rcpthosts = control::lines("rcpthosts")?.map(lower);
        let badmailfrom = lower(control::lines("badmailfrom")?.unwrap_or_default());
        let localiphost = control::lines("localiphost")?.and_then(|v| v.into_iter().next());
        let recipients = crate::users::Recipients::load()?;
        let local_domain = recipients
            .routes
            .locals
            .first()
            .cloned()
            .unwrap_or_else(|| me.to_ascii_lowercase());
        let local_ip = env_nonempty("TCPLOCALIP")
            .or_else(|| sockaddr(0, false))
            .unwrap_or_else(|| b"unknown".to_vec());
        let remote_ip = env_nonempty("TCPREMOTEIP")
            .or_else(|| sockaddr(0, true))
            .unwrap_or_else(|| b"unknown".to_vec());
        let mut c = Config {
            greeting,
            databytes,
            timeout,
            badrcptdelay: control::number("badrcptdelay", DEFAULT_BADRCPTDELAY)?,
            rcpthosts,
            badmailfrom,
            localiphost,
            local_domain,
            recipients,
            relayclient: env("RELAYCLIENT"),
            smtpauth: std::env::var_os("SMTPAUTH").filter(|v| !v.is_empty()),
            auth_required: env("AUTHREQUIRED").is_some(),
            remote_ip,
            remote_host: env_nonempty("TCPREMOTEHOST").unwrap_or_else(|| b"unknown".to_vec()),
            remote_info: env_nonempty("TCPREMOTEINFO"),
            local_ip,
            tls: crate::ucspitls::implicit() || env("PROTO").as_deref() == Some(b"SSL"),
            tls_info: crate::ucspitls::describe(&crate::ucspitls::implicit_info()),
            starttls: crate::ucspitls::from_env(),
            auth_cleartext: crate::ucspitls::cleartext_allowed(),
            submission: env_nonempty("SUBMISSION").is_some(),
            me,
        };
        // Submission needs AUTH before MAIL.
        c.auth_required |= c.submission;
        Ok(c)
    }
}

/// The envelope being built between MAIL and DATA.
struct Tx {
    sender: Vec<u8>,
    rcpts: Vec<Vec<u8>>,
    utf8: bool,
}

pub struct Session {
    cfg: Config,
    conn: Conn,
    helo: Option<Vec<u8>>,
    esmtp: bool,
    user: Option<Vec<u8>>,
    auth_failures: u32,
    errors: u32,
    unknown_rcpts: u32,
    tx: Option<Tx>,
    count: u32,
    done: bool,
}

type Handler = fn(&mut Session, &[u8]) -> Result<(), Fatal>;

/// One row of the command table: verb, handler, and whether the reply is
/// flushed at once (commands that may not be followed in a pipelined
/// group, RFC 2920) or left for the flush before the next read.
struct Cmd {
    verb: &'static [u8],
    handler: Handler,
    flush: bool,
}

const COMMANDS: &[Cmd] = &[
    Cmd {
        verb: b"HELO",
        handler: Session::helo,
        flush: true,
    },
    Cmd {
        verb: b"EHLO",
        handler: Session::ehlo,
        flush: true,
    },
    Cmd {
        verb: b"MAIL",
        handler: Session::mail,
        flush: false,
    },
    Cmd {
        verb: b"RCPT",
        handler: Session::rcpt,
        flush: false,
    },
    Cmd {
        verb: b"DATA",
        handler: Session::data,
        flush: true,
    },
    Cmd {
        verb: b"RSET",
        handler: Session::rset,
        flush: false,
    },
    Cmd {
        verb: b"NOOP",
        handler: Session::noop,
        flush: true,
    },
    Cmd {
        verb: b"QUIT",
        handler: Session::quit,
        flush: true,
    },
    Cmd {
        verb: b"VRFY",
        handler: Session::vrfy,
        flush: true,
    },
    Cmd {
        verb: b"EXPN",
        handler: Session::expn,
        flush: true,
    },
    Cmd {
        verb: b"HELP",
        handler: Session::help,
        flush: true,
    },
    Cmd {
        verb: b"AUTH",
        handler: Session::auth,
        flush: true,
    },
    Cmd {
        verb: b"TURN",
        handler: Session::unimpl,
        flush: true,
    },
    Cmd {
        verb: b"ETRN",
        handler: Session::etrn,
        flush: true,
    },
    Cmd {
        verb: b"SEND",
        handler: Session::unimpl,
        flush: true,
    },
    Cmd {
        verb: b"SOML",
        handler: Session::unimpl,
        flush: true,
    },
    Cmd {
        verb: b"SAML",
        handler: Session::unimpl,
        flush: true,
    },
    Cmd {
        verb: b"BDAT",
        handler: Session::unimpl,
        flush: true,
    },
    Cmd {
        verb: b"STARTTLS",
        handler: Session::starttls,
        flush: true,
    },
];

/// Why a command line is refused before it is parsed, or None.
pub fn bad_bytes(l: &[u8]) -> Option<&'static str> {
    if l.contains(&0) {
        return Some("NUL byte in command");
    }
    if l.contains(&b'\r') {
        return Some("bare CR in command");
    }
    if l.iter().any(|&c| (c < 0x20 && c != b'\t') || c == 0x7f) {
        return Some("control character in command");
    }
    if std::str::from_utf8(l).is_err() {
        return Some("byte that is not UTF-8 in command");
    }
    None
}

/// Keeps a peer's text safe for a header: letters, digits and `-._:@[]+=/`;
/// anything else becomes `?`.
pub fn safe(b: &[u8]) -> Vec<u8> {
    b.iter()
        .take(200)
        .map(|&c| {
            if c.is_ascii_alphanumeric() || b"-._:@[]+=/".contains(&c) {
                c
            } else {
                b'?'
            }
        })
        .collect()
}

/// A SIZE= value (RFC 1870: 1 to 20 digits); one past u64 counts as
/// u64::MAX, a size over any limit.
fn size_value(v: &[u8]) -> Option<u64> {
    if v.is_empty() || v.len() > 20 || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(crate::parse::number(v).unwrap_or(u64::MAX))
}

/// A peer's value cut for a log field (exit::log escapes it).
fn cut(b: &[u8]) -> &[u8] {
    &b[..b.len().min(crate::log::MAX_FIELD)]
}

fn strip_prefix_ci<'a>(s: &'a [u8], p: &[u8]) -> Option<&'a [u8]> {
    if s.len() >= p.len() && s[..p.len()].eq_ignore_ascii_case(p) {
        Some(&s[p.len()..])
    } else {
        None
    }
}

/// Whether `domain` is listed in rcpthosts (exact, or a `.suffix` entry).
pub fn rcpthosts_has(hosts: &[Vec<u8>], domain: &[u8]) -> bool {
    let d = domain.to_ascii_lowercase();
    hosts
        .iter()
        .any(|h| *h == d || (h.first() == Some(&b'.') && d.ends_with(h)))
}

/// Whether `addr` (or its @domain) is in badmailfrom.
pub fn badmailfrom_has(bmf: &[Vec<u8>], addr: &[u8]) -> bool {
    if addr.is_empty() {
        return false;
    }
    let a = addr.to_ascii_lowercase();
    let at = memchr::memrchr(b'@', &a).map(|i| &a[i..]);
    bmf.iter().any(|b| *b == a || Some(b.as_slice()) == at)
}

/// A session that cannot start: 421 to the client, a warning, exit 111.
pub fn controls_failed(wfd: i32, e: &ControlError) -> i32 {
    let _ = crate::sys::write_timeout(wfd, b"421 4.3.0 unable to read controls\r\n", 10);
    crate::exit::warn(&[b"unable to read controls: ", &e.text()]);
    crate::exit::TEMP
}

pub const PROG: &str = "smtp-recv";
pub const USAGE: &str = "smtp-recv";

/// The program smtp-recv(8): `args` are its arguments after argv[0]
/// (none are allowed). bin/smtp-recv.rs calls it, and so does tcp-serve's
/// child when it runs smtp-recv's linked code instead of exec'ing it.
pub fn main(args: &[OsString]) -> i32 {
    crate::exit::set_prog(PROG, true);
    if !args.is_empty() {
        crate::exit::usage(USAGE);
    }
    run(0, 1)
}

/// Runs one session on fds 0/1; returns the exit code.
pub fn run(rfd: i32, wfd: i32) -> i32 {
    let cfg = match Config::load() {
        Ok(c) => c,
        Err(e) => return controls_failed(wfd, &e),
    };
    if wfd >= 0 {
        // A stalled peer must not hang a write that poll called possible.
        let _ = crate::sys::net::set_send_timeout(wfd, cfg.timeout);
    }
    let conn = Conn::new(rfd, wfd, cfg.timeout);
    let mut s = Session {
        cfg,
        conn,
        helo: None,
        esmtp: false,
        user: None,
        auth_failures: 0,
        errors: 0,
        unknown_rcpts: 0,
        tx: None,
        count: 0,
        done: false,
    };
    match s.serve() {
        Ok(()) => crate::exit::OK,
        Err(Fatal::Eof) => crate::exit::OK,
        Err(Fatal::Timeout) => {
            crate::exit::info(&[b"timeout remote=", &s.cfg.remote_ip.clone()]);
            s.conn.timeout = s.conn.timeout.min(5);
            let mut m = b"421 4.4.2 ".to_vec();
            m.extend_from_slice(&s.cfg.me);
            m.extend_from_slice(b" timeout, closing connection\r\n");
            s.conn.put(&m);
            let _ = s.conn.flush();
            crate::exit::TEMP
        }
        Err(Fatal::Io(e)) => {
            crate::exit::info(&[
                b"connection error remote=",
                &s.cfg.remote_ip.clone(),
                b": ",
                crate::exit::errtext(&e).as_bytes(),
            ]);
            crate::exit::TEMP
        }
    }
}

impl Session {
    fn put(&mut self, parts: &[&[u8]]) {
        for p in parts {
            self.conn.put(p);
        }
        self.conn.put(b"\r\n");
    }

    /// A protocol error reply; too many of them close the session.
    fn err(&mut self, text: &[u8]) {
        self.put(&[text]);
        self.count_error();
    }

    /// Counts an error; too many of them close the session.
    fn count_error(&mut self) {
        self.errors += 1;
        if self.errors >= MAX_ERRORS {
            let me = self.cfg.me.clone();
            self.put(&[b"421 4.7.0 ", &me, b" too many errors, closing connection"]);
            crate::exit::info(&[
                b"closed after too many errors remote=",
                &self.cfg.remote_ip.clone(),
            ]);
            self.done = true;
        }
    }

    /// A refused recipient: a policy refusal that also counts as an error.
    fn refuse_rcpt(&mut self, reply: &[u8], addr: &[u8], reason: &[u8]) {
        self.refuse(reply, b"rcpt", addr, reason);
        self.count_error();
    }

    /// A policy refusal: reply and log.
    fn refuse(&mut self, reply: &[u8], key: &[u8], what: &[u8], reason: &[u8]) {
        self.put(&[reply]);
        crate::exit::info(&[
            b"refused ",
            key,
            b"=<",
            cut(what),
            b"> reason=",
            reason,
            b" remote=",
            &self.cfg.remote_ip.clone(),
        ]);
    }

    fn serve(&mut self) -> Result<(), Fatal> {
        let g = self.cfg.greeting.clone();
        self.put(&[b"220 ", &g, b" ESMTP"]);
        while !self.done {
            let l = match self.conn.line(MAX_LINE)? {
                Line::TooLong => {
                    self.err(b"500 5.5.2 line too long");
                    continue;
                }
                Line::Ok(l) => l,
            };
            if let Some(why) = bad_bytes(&l) {
                let mut m = b"500 5.5.2 syntax error: ".to_vec();
                m.extend_from_slice(why.as_bytes());
                self.err(&m);
                continue;
            }
            let (verb, arg) = match memchr::memchr(b' ', &l) {
                Some(i) => (&l[..i], &l[i + 1..]),
                None => (&l[..], &b""[..]),
            };
            match COMMANDS.iter().find(|c| c.verb.eq_ignore_ascii_case(verb)) {
                Some(c) => {
                    (c.handler)(self, arg)?;
                    if c.flush {
                        self.conn.flush()?;
                    }
                }
                None => self.err(b"500 5.5.1 command not recognized"),
            }
        }
        self.conn.flush()
    }

    fn helo(&mut self, arg: &[u8]) -> Result<(), Fatal> {
        let h = crate::parse::trim(arg);
        if h.is_empty() {
            self.err(b"501 5.5.4 syntax: HELO hostname");
            return Ok(());
        }
        self.helo = Some(h.to_vec());
        self.esmtp = false;
        self.tx = None;
        let me = self.cfg.me.clone();
        self.put(&[b"250 ", &me]);
        Ok(())
    }

    fn ehlo(&mut self, arg: &[u8]) -> Result<(), Fatal> {
        let h = crate::parse::trim(arg);
        if h.is_empty() {
            self.err(b"501 5.5.4 syntax: EHLO hostname");
            return Ok(());
        }
        self.helo = Some(h.to_vec());
        self.esmtp = true;
        self.tx = None;
        let mut lines: Vec<Vec<u8>> = vec![self.cfg.me.clone(), b"PIPELINING".to_vec()];
        lines.push(format!("SIZE {}", self.cfg.databytes).into_bytes());
        lines.push(b"8BITMIME".to_vec());
        lines.push(b"ENHANCEDSTATUSCODES".to_vec());
        lines.push(b"ETRN".to_vec());
        lines.push(b"HELP".to_vec());
        lines.push(b"SMTPUTF8".to_vec());
        if self.cfg.starttls.is_some() && !self.cfg.tls {
            lines.push(b"STARTTLS".to_vec());
        }
        if self.auth_offered() {
            lines.push(b"AUTH PLAIN LOGIN".to_vec());
        }
        let n = lines.len();
        for (i, l) in lines.iter().enumerate() {
            self.put(&[if i + 1 == n { b"250 " } else { b"250-" }, l]);
        }
        Ok(())
    }

    fn mail(&mut self, arg: &[u8]) -> Result<(), Fatal> {
        if self.helo.is_none() {
            self.err(b"503 5.5.1 send HELO or EHLO first");
            return Ok(());
        }
        if self.cfg.auth_required && self.user.is_none() {
            self.err(b"530 5.7.0 authentication required");
            return Ok(());
        }
        if self.tx.is_some() {
            self.err(b"503 5.5.1 nested MAIL command");
            return Ok(());
        }
        let Some(rest) = strip_prefix_ci(arg, b"FROM:") else {
            self.err(b"501 5.5.4 syntax: MAIL FROM:<address>");
            return Ok(());
        };
        let p = match path::parse(rest) {
            Ok(p) => p,
            Err(path::PathError::Syntax) => {
                self.err(b"501 5.1.7 bad sender address syntax");
                return Ok(());
            }
            Err(path::PathError::NoDomain(_)) => {
                self.err(b"553 5.1.7 sender address must have a domain");
                return Ok(());
            }
            Err(path::PathError::TooLong) => {
                self.err(b"501 5.1.7 sender address too long");
                return Ok(());
            }
        };
        let mut utf8 = false;
        for prm in &p.params {
            let Some((k, v)) = path::param(prm) else {
                self.err(b"501 5.5.4 bad parameter syntax");
                return Ok(());
            };
            match (k.as_slice(), v) {
                (b"SIZE", Some(v)) => match size_value(v) {
                    Some(n) if self.cfg.databytes > 0 && n > self.cfg.databytes => {
                        self.refuse(
                            b"552 5.3.4 message size exceeds fixed maximum message size",
                            b"from",
                            &p.addr,
                            b"size",
                        );
                        return Ok(());
                    }
                    Some(_) => {}
                    None => {
                        self.err(b"501 5.5.4 bad SIZE parameter");
                        return Ok(());
                    }
                },
                (b"BODY", Some(v))
                    if v.eq_ignore_ascii_case(b"7BIT") || v.eq_ignore_ascii_case(b"8BITMIME") => {}
                (b"SMTPUTF8", None) => utf8 = true,
                (b"AUTH", Some(_)) if self.auth_offered() => {}
                _ => {
                    let mut m = b"555 5.5.4 unsupported parameter ".to_vec();
                    m.extend_from_slice(&safe(&k));
                    self.err(&m);
                    return Ok(());
                }
            }
        }
        if !utf8 && !p.addr.is_ascii() {
            self.err(b"553 5.6.7 non-ASCII address needs SMTPUTF8");
            return Ok(());
        }
        if badmailfrom_has(&self.cfg.badmailfrom, &p.addr) {
            self.refuse(
                b"553 5.7.1 sender address refused (badmailfrom)",
                b"from",
                &p.addr,
                b"badmailfrom",
            );
            return Ok(());
        }
        self.tx = Some(Tx {
            sender: p.addr,
            rcpts: Vec::new(),
            utf8,
        });
        self.put(&[b"250 2.1.0 ok"]);
        Ok(())
    }

    /// Whether `dom` is the address literal of our end of the connection.
    fn our_literal(&self, dom: &[u8]) -> bool {
        let ip = &self.cfg.local_ip;
        dom.eq_ignore_ascii_case(&[&b"["[..], ip, b"]"].concat())
            || dom.eq_ignore_ascii_case(&[&b"[IPv6:"[..], ip, b"]"].concat())
    }

    fn rcpt(&mut self, arg: &[u8]) -> Result<(), Fatal> {
        let Some(utf8) = self.tx.as_ref().map(|t| t.utf8) else {
            self.err(b"503 5.5.1 MAIL first");
            return Ok(());
        };
        let Some(rest) = strip_prefix_ci(arg, b"TO:") else {
            self.err(b"501 5.5.4 syntax: RCPT TO:<address>");
            return Ok(());
        };
        let (mut addr, postmaster) = match path::parse(rest) {
            Ok(p) if p.addr.is_empty() => {
                self.err(b"501 5.1.3 bad recipient address syntax");
                return Ok(());
            }
            Ok(p) if !p.params.is_empty() => {
                let k = path::param(p.params[0]).map(|(k, _)| k).unwrap_or_default();
                let mut m = b"555 5.5.4 unsupported parameter ".to_vec();
                m.extend_from_slice(&safe(&k));
                self.err(&m);
                return Ok(());
            }
            Ok(p) => (p.addr, false),
            Err(path::PathError::NoDomain(l)) if l.eq_ignore_ascii_case(b"postmaster") => {
                let mut a = b"postmaster@".to_vec();
                a.extend_from_slice(&self.cfg.local_domain);
                (a, true)
            }
            Err(path::PathError::NoDomain(_)) => {
                self.err(b"553 5.1.3 recipient address must have a domain");
                return Ok(());
            }
            Err(path::PathError::TooLong) => {
                self.err(b"501 5.1.3 recipient address too long");
                return Ok(());
            }
            Err(path::PathError::Syntax) => {
                self.err(b"501 5.1.3 bad recipient address syntax");
                return Ok(());
            }
        };
        if !utf8 && !addr.is_ascii() {
            self.err(b"553 5.6.7 non-ASCII address needs SMTPUTF8");
            return Ok(());
        }
        if self.tx.as_ref().map_or(0, |t| t.rcpts.len()) >= MAX_RCPT {
            self.refuse(b"452 4.5.3 too many recipients", b"rcpt", &addr, b"rcpts");
            return Ok(());
        }
        // postmaster@[our IP] is always taken (RFC 5321 4.5.1): it is the
        // local postmaster.
        let postmaster = postmaster || {
            let (local, dom) = crate::parse::split_addr(&addr);
            if local.eq_ignore_ascii_case(b"postmaster") && self.our_literal(dom) {
                addr = [&b"postmaster@"[..], &self.cfg.local_domain].concat();
                true
            } else {
                false
            }
        };
        // control/localiphost: mail to [our IP] is mail to that host name.
        if let Some(lh) = &self.cfg.localiphost {
            let (local, dom) = crate::parse::split_addr(&addr);
            if self.our_literal(dom) {
                addr = [local, b"@", lh].concat();
            }
        }
        let relay = self.cfg.relayclient.is_some() || self.user.is_some();
        if !relay && !postmaster {
            let (local, dom) = crate::parse::split_addr(&addr);
            if local.iter().any(|c| b"@%!".contains(c)) {
                self.refuse_rcpt(b"554 5.7.1 relaying denied", &addr, b"relay-trick");
                return Ok(());
            }
            let ok = match &self.cfg.rcpthosts {
                Some(h) => rcpthosts_has(h, dom),
                None => self.cfg.recipients.route(&addr) != crate::users::Route::Remote,
            };
            if !ok {
                self.refuse_rcpt(b"554 5.7.1 relaying denied", &addr, b"relaying");
                return Ok(());
            }
        }
        if let Some(rc) = &self.cfg.relayclient {
            addr.extend_from_slice(rc);
        }
        if addr.len() > crate::queue::MAX_ADDR {
            self.err(b"501 5.1.3 recipient address too long");
            return Ok(());
        }
        match self.cfg.recipients.route(&addr) {
            crate::users::Route::Local { local, .. } => match self.cfg.recipients.exists(&local) {
                Ok(true) => {}
                Ok(false) => {
                    self.unknown_rcpts += 1;
                    if self.unknown_rcpts > FREE_UNKNOWN_RCPTS {
                        self.conn.flush()?;
                        let d = std::time::Duration::from_secs(self.cfg.badrcptdelay);
                        std::thread::sleep(d);
                    }
                    self.refuse_rcpt(b"550 5.1.1 no such user here", &addr, b"unknown-user");
                    return Ok(());
                }
                Err(e) => return self.control_failure(e),
            },
            crate::users::Route::Remote => {}
        }
        if let Some(t) = self.tx.as_mut() {
            t.rcpts.push(addr);
        }
        self.put(&[b"250 2.1.5 ok"]);
        Ok(())
    }

    fn control_failure(&mut self, e: ControlError) -> Result<(), Fatal> {
        crate::exit::warn(&[b"unable to read controls: ", &e.text()]);
        self.put(&[b"451 4.3.0 unable to read controls, try again later"]);
        Ok(())
    }

    fn received(&self, id: &[u8]) -> Vec<u8> {
        let c = &self.cfg;
        let mut r = b"Received: from ".to_vec();
        r.extend_from_slice(&safe(self.helo.as_deref().unwrap_or(b"unknown")));
        r.extend_from_slice(b" (");
        if let Some(i) = &c.remote_info {
            r.extend_from_slice(&safe(i));
            r.push(b'@');
        }
        r.extend_from_slice(&safe(&c.remote_host));
        r.extend_from_slice(b" [");
        r.extend_from_slice(&safe(&c.remote_ip));
        r.extend_from_slice(b"])");
        if let Some(u) = &self.user {
            r.extend_from_slice(b" (AUTH ");
            r.extend_from_slice(&safe(u));
            r.push(b')');
        }
        r.extend_from_slice(b"\n\tby ");
        r.extend_from_slice(&safe(&c.me));
        let with: &[u8] = match (self.esmtp, c.tls, self.user.is_some()) {
            (false, _, _) => b"SMTP",
            (true, false, false) => b"ESMTP",
            (true, true, false) => b"ESMTPS",
            (true, false, true) => b"ESMTPA",
            (true, true, true) => b"ESMTPSA",
        };
        r.extend_from_slice(b" with ");
        r.extend_from_slice(with);
        if c.tls && !c.tls_info.is_empty() {
            r.extend_from_slice(b" (");
            r.extend_from_slice(&safe(&c.tls_info));
            r.push(b')');
        }
        r.extend_from_slice(b" id ");
        r.extend_from_slice(id);
        r.extend_from_slice(b"; ");
        r.extend_from_slice(crate::date::now().as_bytes());
        r.push(b'\n');
        r
    }

    fn data(&mut self, arg: &[u8]) -> Result<(), Fatal> {
        let Some(nrcpt) = self.tx.as_ref().map(|t| t.rcpts.len()) else {
            self.err(b"503 5.5.1 MAIL first");
            return Ok(());
        };
        if nrcpt == 0 {
            self.err(b"554 5.5.1 no valid recipients");
            return Ok(());
        }
        if !arg.is_empty() {
            self.err(b"501 5.5.4 syntax: DATA");
            return Ok(());
        }
        let mut q = match Queue::start() {
            Ok(Queue::Linked(Err(c))) => {
                let o = crate::enqueue::outcome(Some(c), b"");
                return self.queue_failed(o, b"-");
            }
            Ok(q) => q,
            Err(e) => {
                crate::exit::warn(&[
                    b"unable to start queue program: ",
                    crate::exit::errtext(&e).as_bytes(),
                ]);
                self.put(&[b"451 4.3.0 unable to start queue program"]);
                return Ok(());
            }
        };
        self.count += 1;
        let id = format!(
            "{}.{}.{}",
            crate::sys::now(),
            std::process::id(),
            self.count
        )
        .into_bytes();
        self.put(&[b"354 go ahead, end with <CRLF>.<CRLF>"]);
        q.write(&self.received(&id));
        let mut d = data::Data::new(self.cfg.databytes);
        let mut out = Vec::with_capacity(65536);
        let mut sub = self
            .cfg
            .submission
            .then(|| submission::Complete::new(&self.cfg.me));
        let mut done = Vec::new();
        loop {
            if self.conn.buffered().is_empty() {
                if let Err(f) = self.conn.fill() {
                    q.abort();
                    return Err(f);
                }
            }
            out.clear();
            let r = d.feed(self.conn.buffered(), &mut out);
            if let Some(c) = sub.as_mut() {
                done.clear();
                c.feed(&out, &mut done);
                std::mem::swap(&mut out, &mut done);
            }
            if d.good() && !out.is_empty() {
                q.write(&out);
            }
            match r {
                Some(n) => {
                    self.conn.consume(n);
                    break;
                }
                None => {
                    let n = self.conn.buffered().len();
                    self.conn.consume(n);
                }
            }
        }
        if let Some(c) = sub.as_mut() {
            out.clear();
            c.finish(&mut out);
            if d.good() && !out.is_empty() {
                q.write(&out);
            }
        }
        let tx = self.tx.take().unwrap_or(Tx {
            sender: Vec::new(),
            rcpts: Vec::new(),
            utf8: false,
        });
        let bytes = d.stored.to_string().into_bytes();
        if d.bare {
            q.abort();
            self.refuse(
                b"550 5.6.2 message refused: bare CR or LF in data (lines must end in CRLF)",
                b"id",
                &id,
                b"bare-cr-lf",
            );
        } else if d.over {
            q.abort();
            self.refuse(
                b"552 5.3.4 message size exceeds fixed maximum message size",
                b"id",
                &id,
                b"size",
            );
        } else if d.hops.looping() {
            q.abort();
            self.refuse(
                b"554 5.4.6 too many hops, this message is looping",
                b"id",
                &id,
                b"hops",
            );
        } else {
            let env = crate::queue::Envelope {
                sender: tx.sender.clone(),
                recipients: tx.rcpts.clone(),
            }
            .encode();
            match q.finish(&env) {
                Outcome::Queued(qid) => {
                    // (`qp 23845`: the queue's id keeps its spaces)
                    let qid: Vec<u8> = qid
                        .split(|&c| c == b' ')
                        .map(safe)
                        .collect::<Vec<_>>()
                        .join(&b' ');
                    self.put(&[b"250 2.0.0 ok ", &qid]);
                    crate::exit::info(&[
                        b"accepted id=",
                        &id,
                        b" qid=",
                        cut(&qid),
                        b" from=<",
                        cut(&tx.sender),
                        b"> rcpts=",
                        tx.rcpts.len().to_string().as_bytes(),
                        b" bytes=",
                        &bytes,
                        b" remote=",
                        &self.cfg.remote_ip.clone(),
                        b" auth=",
                        cut(self.user.as_deref().unwrap_or(b"-")),
                    ]);
                }
                o => return self.queue_failed(o, &id),
            }
        }
        Ok(())
    }

    /// Replies 554/451 for a queue refusal, with its enhanced code.
    fn queue_failed(&mut self, o: Outcome, id: &[u8]) -> Result<(), Fatal> {
        let status = o.status();
        let (code, text): (&[u8], Vec<u8>) = match &o {
            Outcome::Perm(t) => (b"554 ", t.clone()),
            Outcome::Temp(t) => (b"451 ", t.clone()),
            Outcome::Queued(_) => return Ok(()),
        };
        let text: Vec<u8> = text
            .iter()
            .map(|&c| if c < 0x20 || c == 0x7f { b' ' } else { c })
            .collect();
        self.put(&[code, &status, b" ", &text]);
        crate::exit::info(&[
            b"refused id=<",
            id,
            b"> reason=queue remote=",
            &self.cfg.remote_ip.clone(),
            b": ",
            cut(&text),
        ]);
        Ok(())
    }

    fn rset(&mut self, arg: &[u8]) -> Result<(), Fatal> {
        if !crate::parse::trim(arg).is_empty() {
            self.err(b"501 5.5.4 syntax: RSET");
            return Ok(());
        }
        self.tx = None;
        self.put(&[b"250 2.0.0 ok"]);
        Ok(())
    }

    fn noop(&mut self, _: &[u8]) -> Result<(), Fatal> {
        self.put(&[b"250 2.0.0 ok"]);
        Ok(())
    }

    fn quit(&mut self, _: &[u8]) -> Result<(), Fatal> {
        let me = self.cfg.me.clone();
        self.put(&[b"221 2.0.0 ", &me, b" closing connection"]);
        self.done = true;
        Ok(())
    }

    fn vrfy(&mut self, arg: &[u8]) -> Result<(), Fatal> {
        if crate::parse::trim(arg).is_empty() {
            self.err(b"501 5.5.4 syntax: VRFY address");
            return Ok(());
        }
        self.put(&[b"252 2.5.2 cannot verify, send some mail and I will try my best"]);
        Ok(())
    }

    fn expn(&mut self, _: &[u8]) -> Result<(), Fatal> {
        self.err(b"502 5.5.1 EXPN not available");
        Ok(())
    }

    fn help(&mut self, _: &[u8]) -> Result<(), Fatal> {
        self.put(&[b"214-2.0.0 commands: HELO EHLO MAIL RCPT DATA RSET NOOP QUIT VRFY HELP"]);
        self.put(&[b"214 2.0.0 see smtp-recv(8)"]);
        Ok(())
    }

    /// ETRN (RFC 1985): asks queue-run to retry the remote recipients in
    /// one domain now. Allowed for a client that may relay, and for the
    /// domains we accept mail for (a backup MX's clients).
    fn etrn(&mut self, arg: &[u8]) -> Result<(), Fatal> {
        if self.helo.is_none() {
            self.err(b"503 5.5.1 send HELO or EHLO first");
            return Ok(());
        }
        if self.tx.is_some() {
            self.err(b"503 5.5.1 MAIL transaction in progress");
            return Ok(());
        }
        let d = crate::parse::trim(arg).to_ascii_lowercase();
        if !path::is_domain(&d) {
            self.err(b"501 5.5.4 syntax: ETRN domain");
            return Ok(());
        }
        let relay = self.cfg.relayclient.is_some() || self.user.is_some();
        let ok = relay
            || match &self.cfg.rcpthosts {
                Some(h) => rcpthosts_has(h, &d),
                None => {
                    let pm = [&b"postmaster@"[..], &d].concat();
                    self.cfg.recipients.route(&pm) != crate::users::Route::Remote
                }
            };
        if !ok {
            self.refuse(
                b"459 4.7.1 ETRN not allowed for this domain",
                b"etrn",
                &d,
                b"etrn-domain",
            );
            return Ok(());
        }
        match crate::queue::etrn(&d) {
            Ok(()) => {
                self.put(&[b"250 2.0.0 queueing for ", &d, b" started"]);
                crate::exit::info(&[
                    b"etrn domain=",
                    &d,
                    b" remote=",
                    &self.cfg.remote_ip.clone(),
                ]);
            }
            Err(e) => {
                crate::exit::warn(&[
                    b"unable to pass ETRN on: ",
                    crate::exit::errtext(&e).as_bytes(),
                ]);
                self.put(&[b"458 4.0.0 unable to queue messages for ", &d]);
            }
        }
        Ok(())
    }

    fn unimpl(&mut self, _: &[u8]) -> Result<(), Fatal> {
        self.err(b"502 5.5.1 command not implemented");
        Ok(())
    }

    /// The response to a 334 challenge: None when cancelled (501 sent).
    fn challenge(&mut self, prompt: &[u8]) -> Result<Option<Vec<u8>>, Fatal> {
        self.put(&[b"334 ", prompt]);
        let l = match self.conn.line(MAX_LINE)? {
            Line::TooLong => {
                self.err(b"500 5.5.2 line too long");
                return Ok(None);
            }
            Line::Ok(l) => l,
        };
        if l == b"*" {
            self.err(b"501 5.0.0 authentication cancelled");
            return Ok(None);
        }
        self.decode(&l)
    }

    fn decode(&mut self, b64: &[u8]) -> Result<Option<Vec<u8>>, Fatal> {
        if b64 == b"=" {
            return Ok(Some(Vec::new()));
        }
        match auth::b64decode(b64) {
            Some(v) => Ok(Some(v)),
            None => {
                self.err(b"501 5.5.2 cannot decode response");
                Ok(None)
            }
        }
    }

    /// AUTH is offered with $SMTPAUTH, over TLS or with $AUTH_CLEARTEXT.
    fn auth_offered(&self) -> bool {
        self.cfg.smtpauth.is_some() && (self.cfg.tls || self.cfg.auth_cleartext)
    }

    /// STARTTLS (RFC 3207): the go-ahead, then everything the client sent
    /// after the command is thrown away (CVE-2011-0411), the wrapper does
    /// the handshake, and the session starts again from the greeting state.
    fn starttls(&mut self, arg: &[u8]) -> Result<(), Fatal> {
        let Some(st) = self.cfg.starttls.filter(|_| !self.cfg.tls) else {
            if self.cfg.tls {
                self.err(b"503 5.5.1 TLS already active");
            } else {
                self.err(b"502 5.5.1 command not implemented");
            }
            return Ok(());
        };
        if !arg.is_empty() {
            self.err(b"501 5.5.4 syntax: STARTTLS");
            return Ok(());
        }
        self.put(&[b"220 2.0.0 ready to start TLS"]);
        self.conn.flush()?;
        let dropped = self.conn.switch(st.rfd, st.wfd);
        if dropped > 0 {
            crate::exit::info(&[
                b"discarded ",
                dropped.to_string().as_bytes(),
                b" bytes sent after STARTTLS remote=",
                &self.cfg.remote_ip.clone(),
            ]);
        }
        match st.start(self.conn.timeout) {
            Ok(info) => self.cfg.tls_info = crate::ucspitls::describe(&info),
            Err(e) => {
                crate::exit::info(&[
                    b"STARTTLS failed remote=",
                    &self.cfg.remote_ip.clone(),
                    b": ",
                    crate::exit::errtext(&e).as_bytes(),
                ]);
                self.done = true;
                return Ok(());
            }
        }
        self.cfg.tls = true;
        self.helo = None;
        self.esmtp = false;
        self.tx = None;
        self.user = None;
        Ok(())
    }

    fn auth(&mut self, arg: &[u8]) -> Result<(), Fatal> {
        let Some(prog) = self.cfg.smtpauth.clone() else {
            self.err(b"502 5.5.1 command not implemented");
            return Ok(());
        };
        if !self.auth_offered() {
            self.err(b"538 5.7.11 encryption required for requested authentication mechanism");
            return Ok(());
        }
        if !self.esmtp {
            self.err(b"503 5.5.1 send EHLO first");
            return Ok(());
        }
        if self.user.is_some() {
            self.err(b"503 5.5.1 already authenticated");
            return Ok(());
        }
        if self.tx.is_some() {
            self.err(b"503 5.5.1 AUTH not allowed during a mail transaction");
            return Ok(());
        }
        let (mech, initial) = match memchr::memchr(b' ', arg) {
            Some(i) => (&arg[..i], Some(&arg[i + 1..])),
            None => (arg, None),
        };
        let creds = if mech.eq_ignore_ascii_case(b"PLAIN") {
            let resp = match initial {
                Some(i) => self.decode(i)?,
                None => self.challenge(b"")?,
            };
            let Some(resp) = resp else { return Ok(()) };
            auth::plain(&resp)
        } else if mech.eq_ignore_ascii_case(b"LOGIN") {
            let user = match initial {
                Some(i) => self.decode(i)?,
                None => self.challenge(b"VXNlcm5hbWU6")?,
            };
            let Some(user) = user else { return Ok(()) };
            let Some(pass) = self.challenge(b"UGFzc3dvcmQ6")? else {
                return Ok(());
            };
            Some((user, pass))
        } else {
            self.err(b"504 5.5.4 unrecognized authentication type");
            return Ok(());
        };
        let verdict = match &creds {
            Some((u, p)) => auth::check(&prog, u, p),
            None => auth::Verdict::Bad,
        };
        let user = creds.map(|(u, _)| u).unwrap_or_default();
        match verdict {
            auth::Verdict::Ok => {
                crate::exit::info(&[
                    b"auth ok user=",
                    cut(&user),
                    b" remote=",
                    &self.cfg.remote_ip.clone(),
                ]);
                self.user = Some(user);
                self.put(&[b"235 2.7.0 authentication successful"]);
            }
            auth::Verdict::Temp => {
                crate::exit::info(&[
                    b"auth temporary failure user=",
                    cut(&user),
                    b" remote=",
                    &self.cfg.remote_ip.clone(),
                ]);
                self.put(&[b"454 4.7.0 temporary authentication failure"]);
            }
            auth::Verdict::Bad => {
                self.auth_failures += 1;
                crate::exit::info(&[
                    b"auth failed user=",
                    cut(&user),
                    b" remote=",
                    &self.cfg.remote_ip.clone(),
                ]);
                if self.auth_failures >= MAX_AUTH_FAILURES {
                    let me = self.cfg.me.clone();
                    self.put(&[
                        b"421 4.7.0 ",
                        &me,
                        b" too many authentication failures, closing connection",
                    ]);
                    self.done = true;
                } else {
                    self.put(&[b"535 5.7.8 authentication credentials invalid"]);
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_bytes() {
        assert_eq!(bad_bytes(b"NOOP"), None);
        assert_eq!(bad_bytes("MAIL FROM:<jörg@x>".as_bytes()), None);
        assert!(bad_bytes(b"NO\0OP").is_some());
        assert!(bad_bytes(b"NOOP\xff").is_some());
        assert!(bad_bytes(b"NOOP\rQUIT").is_some());
        assert!(bad_bytes(b"NOOP\x1b").is_some());
    }

    #[test]
    fn relay_lists() {
        let h = vec![b"example.org".to_vec(), b".example.net".to_vec()];
        assert!(rcpthosts_has(&h, b"Example.ORG"));
        assert!(rcpthosts_has(&h, b"mx.example.net"));
        assert!(!rcpthosts_has(&h, b"example.net"));
        assert!(!rcpthosts_has(&h, b"badexample.org"));
        let b = vec![b"spam@x.example".to_vec(), b"@y.example".to_vec()];
        assert!(badmailfrom_has(&b, b"SPAM@x.example"));
        assert!(badmailfrom_has(&b, b"any@Y.example"));
        assert!(!badmailfrom_has(&b, b"other@x.example"));
        assert!(!badmailfrom_has(&b, b""));
    }

    #[test]
    fn safe_text() {
        assert_eq!(safe(b"a b(c)\r\n[1.2.3.4]"), b"a?b?c???[1.2.3.4]");
    }
}

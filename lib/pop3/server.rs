//! pop3d: the TRANSACTION and UPDATE states of RFC 1939 on one Maildir,
//! run as the user after a checkpassword program accepted the login.
//! Its first line answers the PASS (or APOP, AUTH) that logged in.

use super::maildir::{self, Msg};
use super::{split_command, Line, Reader};
use std::io;
use std::os::fd::AsRawFd;
use std::path::Path;

const CAPA: &[u8] = b"+OK capability list follows\r\nTOP\r\nUIDL\r\nRESP-CODES\r\nPIPELINING\r\nIMPLEMENTATION pipemail\r\n.\r\n";

/// Exit codes: 0 once anything was written to the client; before that
/// 1 (refused: root) and 111 (the Maildir cannot be used), so that the
/// login front end answers the client.
pub const REFUSED: i32 = 1;

struct Session<'a> {
    md: &'a Path,
    msgs: Vec<Msg>,
    out: Vec<u8>,
    secs: u64,
}

fn flush_to(out: &mut Vec<u8>, secs: u64) -> io::Result<()> {
    let r = crate::sys::write_timeout(1, out, secs);
    out.clear();
    r
}

impl Session<'_> {
    fn put(&mut self, parts: &[&[u8]]) {
        for p in parts {
            self.out.extend_from_slice(p);
        }
        self.out.extend_from_slice(b"\r\n");
    }

    fn totals(&self) -> (usize, u64) {
        self.msgs
            .iter()
            .filter(|m| !m.deleted)
            .fold((0, 0), |(n, s), m| (n + 1, s + m.size))
    }

    /// The message numbered by `arg` that is not deleted; else the error
    /// reply has been written.
    fn msg(&mut self, arg: &[u8]) -> Option<usize> {
        let n = crate::parse::number(arg).unwrap_or(0) as usize;
        if n == 0 || n > self.msgs.len() {
            self.put(&[b"-ERR no such message"]);
            return None;
        }
        if self.msgs[n - 1].deleted {
            self.put(&[b"-ERR message ", arg, b" already deleted"]);
            return None;
        }
        Some(n - 1)
    }

    fn listing(&mut self, arg: &[u8], uidl: bool) {
        let item = |i: usize, m: &Msg| {
            let mut l = (i + 1).to_string().into_bytes();
            l.push(b' ');
            if uidl {
                l.extend_from_slice(m.uid());
            } else {
                l.extend_from_slice(m.size.to_string().as_bytes());
            }
            l
        };
        if !arg.is_empty() {
            if let Some(i) = self.msg(arg) {
                let l = item(i, &self.msgs[i]);
                self.put(&[b"+OK ", &l]);
            }
            return;
        }
        if uidl {
            self.put(&[b"+OK unique-id listing follows"]);
        } else {
            let (n, s) = self.totals();
            self.put(&[
                b"+OK ",
                n.to_string().as_bytes(),
                b" messages (",
                s.to_string().as_bytes(),
                b" octets)",
            ]);
        }
        for i in 0..self.msgs.len() {
            if !self.msgs[i].deleted {
                let l = item(i, &self.msgs[i]);
                self.put(&[&l]);
            }
        }
        self.put(&[b"."]);
    }

    fn retr(&mut self, arg: &[u8], top: Option<&[u8]>) -> io::Result<()> {
        let lines = match top {
            None => None,
            Some(k) => match crate::parse::number(k) {
                Some(k) => Some(k),
                None => {
                    self.put(&[b"-ERR syntax error: TOP msg n"]);
                    return Ok(());
                }
            },
        };
        let Some(i) = self.msg(arg) else {
            return Ok(());
        };
        let f = match std::fs::File::open(self.msgs[i].path(self.md)) {
            Ok(f) => f,
            Err(e) => {
                self.put(&[
                    b"-ERR [SYS/TEMP] unable to open message: ",
                    crate::exit::errtext(&e).as_bytes(),
                ]);
                return Ok(());
            }
        };
        if lines.is_none() {
            let s = self.msgs[i].size.to_string();
            self.put(&[b"+OK ", s.as_bytes(), b" octets"]);
            self.msgs[i].retrieved = true;
        } else {
            self.put(&[b"+OK top of message follows"]);
        }
        let secs = self.secs;
        maildir::send(f, &mut self.out, lines, |o| flush_to(o, secs))?;
        self.put(&[b"."]);
        Ok(())
    }

    /// One command; Ok(false) after QUIT.
    fn command(&mut self, l: &[u8]) -> io::Result<bool> {
        let (verb, rest) = split_command(l);
        let mut args = rest.split(|&c| c == b' ');
        let a1 = args.next().unwrap_or(b"");
        let a2 = args.next();
        match &verb[..] {
            b"STAT" => {
                let (n, s) = self.totals();
                self.put(&[
                    b"+OK ",
                    n.to_string().as_bytes(),
                    b" ",
                    s.to_string().as_bytes(),
                ]);
            }
            b"LIST" => self.listing(a1, false),
            b"UIDL" => self.listing(a1, true),
            b"RETR" => self.retr(a1, None)?,
            b"TOP" => self.retr(a1, Some(a2.unwrap_or(b"")))?,
            b"DELE" => {
                if let Some(i) = self.msg(a1) {
                    self.msgs[i].deleted = true;
                    self.put(&[b"+OK message ", a1, b" deleted"]);
                }
            }
            b"NOOP" => self.put(&[b"+OK "]),
            b"RSET" => {
                self.msgs.iter_mut().for_each(|m| m.deleted = false);
                let (n, s) = self.totals();
                self.put(&[
                    b"+OK maildrop has ",
                    n.to_string().as_bytes(),
                    b" messages (",
                    s.to_string().as_bytes(),
                    b" octets)",
                ]);
            }
            b"CAPA" => self.out.extend_from_slice(CAPA),
            b"QUIT" => {
                let failed = maildir::update(self.md, &self.msgs);
                if failed > 0 {
                    self.put(&[b"-ERR [SYS/TEMP] some deleted messages were not removed"]);
                } else {
                    self.put(&[b"+OK bye"]);
                }
                return Ok(false);
            }
            _ => self.put(&[b"-ERR unimplemented"]),
        }
        Ok(true)
    }
}

/// pop3d's whole run on the Maildir `md`; returns the exit code.
pub fn run(md: &Path) -> i32 {
    use crate::exit::{log, warn};
    if crate::sys::getuid() == 0 || crate::sys::geteuid() == 0 {
        log("fatal", &[b"refusing to run as root"]);
        return REFUSED;
    }
    let secs = super::timeout();
    let lock = match std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(md.join(maildir::LOCK))
    {
        Ok(f) => f,
        Err(e) => {
            log(
                "fatal",
                &[
                    b"unable to open ",
                    crate::control::bytes(&md.join(maildir::LOCK)),
                    b": ",
                    crate::exit::errtext(&e).as_bytes(),
                ],
            );
            return crate::exit::TEMP;
        }
    };
    crate::sys::set_cloexec(lock.as_raw_fd(), true).ok();
    match crate::sys::locks::try_lock(lock.as_raw_fd()) {
        Ok(true) => {}
        Ok(false) => {
            log("info", &[b"maildir in use"]);
            let _ = crate::sys::write_timeout(
                1,
                b"-ERR [IN-USE] maildir in use by another session\r\n",
                secs,
            );
            return crate::exit::OK;
        }
        Err(e) => {
            log(
                "fatal",
                &[
                    b"unable to lock maildir: ",
                    crate::exit::errtext(&e).as_bytes(),
                ],
            );
            return crate::exit::TEMP;
        }
    }
    maildir::clean_tmp(md, crate::sys::now());
    let msgs = match maildir::scan(md) {
        Ok(m) => m,
        Err(e) => {
            log(
                "fatal",
                &[
                    b"unable to scan ",
                    crate::control::bytes(md),
                    b": ",
                    crate::exit::errtext(&e).as_bytes(),
                ],
            );
            return crate::exit::TEMP;
        }
    };
    let mut s = Session {
        md,
        msgs,
        out: Vec::with_capacity(65536),
        secs,
    };
    let (n, z) = s.totals();
    s.put(&[
        b"+OK ",
        n.to_string().as_bytes(),
        b" messages (",
        z.to_string().as_bytes(),
        b" octets)",
    ]);
    let mut rd = Reader::new(0, false, secs);
    let r: io::Result<()> = (|| loop {
        if !rd.has_line() {
            flush_to(&mut s.out, secs)?;
        }
        match rd.line()? {
            Line::Text(l) => {
                if !s.command(&l)? {
                    return flush_to(&mut s.out, secs);
                }
            }
            Line::TooLong => s.put(&[b"-ERR line too long"]),
            Line::Eof => return Ok(()),
            Line::Timeout => {
                s.put(&[b"-ERR autologout; idle for too long"]);
                return flush_to(&mut s.out, secs);
            }
        }
        if s.out.len() >= 65536 {
            flush_to(&mut s.out, secs)?;
        }
    })();
    if let Err(e) = r {
        warn(&[b"session ended: ", crate::exit::errtext(&e).as_bytes()]);
    }
    drop(lock);
    crate::exit::OK
}

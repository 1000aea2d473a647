//! imapd's authenticated and selected states (RFC 3501 §6.3-6.4): the session, its command dispatch and the reports of changes; each group of commands has a file.
//!
//! Extensions: UIDPLUS, MOVE, IDLE, NAMESPACE, ID, ENABLE, UNSELECT,
//! SPECIAL-USE, ESEARCH, SORT/THREAD, CONDSTORE and QRESYNC.

use std::io;
use std::path::{Path, PathBuf};

use super::fetch;
use super::parse::{Cursor, Input, Limits, Reader, SeqSet, STAR};
use super::resp::Out;
use super::store::{self, Changes, Folder};
use crate::exit;

/// How a command ended.
pub enum Done {
    Ok(Vec<u8>),
    No(Vec<u8>),
    Bad(Vec<u8>),
    Bye,
}

fn ok(s: &str) -> Done {
    Done::Ok(s.as_bytes().to_vec())
}
fn no(s: &str) -> Done {
    Done::No(s.as_bytes().to_vec())
}
fn bad(s: &str) -> Done {
    Done::Bad(s.as_bytes().to_vec())
}

/// A store failure: logged, and the client gets a NO.
fn sys_no(what: &str, e: &io::Error) -> Done {
    exit::warn(&[
        b"unable to ",
        what.as_bytes(),
        b": ",
        exit::errtext(e).as_bytes(),
    ]);
    Done::No(format!("[SERVERBUG] unable to {}: {}", what, exit::errtext(e)).into_bytes())
}

macro_rules! tryp {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(m) => return bad(m),
        }
    };
}

macro_rules! tryio {
    ($e:expr, $what:expr) => {
        match $e {
            Ok(v) => v,
            Err(e) => return sys_no($what, &e),
        }
    };
}

mod deliver;
mod fetch_cmd;
mod find;
mod flags;
mod folders;
mod idle;
mod select;

pub struct Session {
    pub root: PathBuf,
    pub rd: Reader,
    pub out: Out,
    pub sel: Option<Folder>,
    pub max_literal: usize,
    /// CONDSTORE is on (ENABLE, or a command that uses it; RFC 7162 §3.1).
    pub condstore: bool,
    /// QRESYNC is enabled: VANISHED replaces EXPUNGE.
    pub qresync: bool,
}

/// Runs imapd on Maildir `root` over fds 0/1; `tag` is the LOGIN tag from
/// imap-login (answered OK), else the greeting is PREAUTH. Returns the exit code.
pub fn run(root: PathBuf, tag: Option<Vec<u8>>) -> i32 {
    let timeout = crate::imap::env_number("IMAPTIMEOUT", super::TIMEOUT);
    let mut s = Session {
        root,
        rd: Reader::new(0, 65536, timeout),
        out: Out::new(1, timeout.min(600)),
        sel: None,
        max_literal: crate::imap::env_number("IMAPMAXLITERAL", crate::imap::MAX_LITERAL as u64)
            as usize,
        condstore: false,
        qresync: false,
    };
    if !s.root.join("cur").is_dir() {
        let e = io::Error::from_raw_os_error(libc::ENOENT);
        // After imap-login the login tag is still open: exit 111 quietly
        // and imap-login answers it NO [UNAVAILABLE]; the session goes on.
        if tag.is_none() {
            s.out
                .line(&[b"* BYE [SERVERBUG] unable to open the Maildir"]);
            let _ = s.out.flush();
        }
        exit::die_sys(
            exit::TEMP,
            &[
                b"unable to open Maildir ",
                s.root.as_os_str().as_encoded_bytes(),
            ],
            &e,
        );
    }
    let caps = crate::imap::CAPS.as_bytes();
    match tag {
        Some(t) => s.out.line(&[&t, b" OK [CAPABILITY ", caps, b"] Logged in"]),
        None => s
            .out
            .line(&[b"* PREAUTH [CAPABILITY ", caps, b"] imapd ready"]),
    }
    loop {
        if s.out.flush().is_err() {
            return exit::OK;
        }
        let Session {
            rd,
            out,
            max_literal,
            ..
        } = &mut s;
        let input = match rd.command(Limits::session(*max_literal), &mut || {
            out.put(b"+ Ready for literal data\r\n");
            out.flush()
        }) {
            Ok(i) => i,
            Err(_) => return exit::OK,
        };
        match input {
            Input::Eof => return exit::OK,
            Input::Timeout => {
                s.out.line(&[b"* BYE Disconnected for inactivity"]);
                let _ = s.out.flush();
                return exit::OK;
            }
            Input::TooLong(t) => s
                .out
                .line(&[super::tag_or_star(&t), b" BAD command line too long"]),
            Input::TooBig(t) => s.out.line(&[&t, b" NO [TOOBIG] literal too large"]),
            Input::TooBigPlus(_) => {
                s.out.line(&[b"* BYE [TOOBIG] literal too large"]);
                let _ = s.out.flush();
                return exit::OK;
            }
            Input::TooMuch(t) => {
                s.out.line(&[super::tag_or_star(&t), super::TOO_MUCH]);
                let _ = s.out.flush();
                return exit::OK;
            }
            Input::Cmd(c) => {
                if let Done::Bye = s.command(&c) {
                    let _ = s.out.flush();
                    return exit::OK;
                }
            }
        }
    }
}

impl Session {
    fn command(&mut self, line: &[u8]) -> Done {
        let mut c = Cursor::new(line);
        let tag = match c.tag() {
            Ok(t) if c.peek() == Some(b' ') || c.at_end() => t.to_vec(),
            _ => {
                self.out.line(&[b"* BAD invalid tag"]);
                return bad("");
            }
        };
        let r = match c.sp().and_then(|_| c.word()) {
            Ok(name) => self.dispatch(&tag, &name, &mut c),
            Err(_) => bad("missing command"),
        };
        let (word, text): (&[u8], Vec<u8>) = match r {
            Done::Ok(t) => (b" OK ", t),
            Done::No(t) => (b" NO ", t),
            Done::Bad(t) => (b" BAD ", t),
            Done::Bye => return Done::Bye,
        };
        self.out.line(&[&tag, word, &text]);
        Done::Ok(Vec::new())
    }

    fn dispatch(&mut self, tag: &[u8], name: &[u8], c: &mut Cursor) -> Done {
        let selected = self.sel.is_some();
        match name {
            b"CAPABILITY" => {
                tryp!(c.end());
                self.out
                    .line(&[b"* CAPABILITY ", crate::imap::CAPS.as_bytes()]);
                ok("Capability completed.")
            }
            b"NOOP" | b"CHECK" => {
                tryp!(c.end());
                if name == b"CHECK" && !selected {
                    return bad("No mailbox selected");
                }
                self.sync_report();
                ok(if name == b"NOOP" {
                    "NOOP completed."
                } else {
                    "Check completed."
                })
            }
            b"LOGOUT" => {
                tryp!(c.end());
                self.out.line(&[b"* BYE Logging out"]);
                self.out.line(&[tag, b" OK Logout completed."]);
                Done::Bye
            }
            b"LOGIN" | b"AUTHENTICATE" => bad("Already logged in"),
            b"STARTTLS" => bad("TLS is not available"),
            b"ID" => {
                self.out.line(&[b"* ID (\"name\" \"pipemail\")"]);
                ok("ID completed.")
            }
            b"ENABLE" => {
                let mut v = b"* ENABLED".to_vec();
                loop {
                    tryp!(c.sp());
                    let w = tryp!(c.word());
                    if w == b"CONDSTORE" || w == b"QRESYNC" {
                        self.condstore = true;
                        self.qresync |= w == b"QRESYNC";
                        v.push(b' ');
                        v.extend_from_slice(&w);
                    }
                    if c.at_end() {
                        break;
                    }
                }
                self.out.line(&[&v]);
                // RFC 7162 §3.1: a mailbox already selected tells its
                // HIGHESTMODSEQ once CONDSTORE is on.
                if let Some(h) = self.sel.as_ref().and_then(|f| f.highest) {
                    if v.len() > b"* ENABLED".len() {
                        self.out.line(&[
                            b"* OK [HIGHESTMODSEQ ",
                            h.to_string().as_bytes(),
                            b"] Highest",
                        ]);
                    }
                }
                ok("Enabled.")
            }
            b"NAMESPACE" => {
                tryp!(c.end());
                self.out.line(&[b"* NAMESPACE ((\"\" \".\")) NIL NIL"]);
                ok("Namespace completed.")
            }
            b"IDLE" => {
                tryp!(c.end());
                self.idle(tag)
            }
            b"SELECT" | b"EXAMINE" => self.select(c, name == b"EXAMINE"),
            b"CREATE" => self.create(c),
            b"DELETE" => self.delete(c),
            b"RENAME" => self.rename(c),
            b"SUBSCRIBE" | b"UNSUBSCRIBE" => self.subscribe(c, name == b"SUBSCRIBE"),
            b"LIST" | b"LSUB" => self.list(c, name == b"LSUB"),
            b"STATUS" => self.status(c),
            b"APPEND" => self.append(c),
            _ if !selected
                && matches!(
                    name,
                    b"CLOSE"
                        | b"UNSELECT"
                        | b"EXPUNGE"
                        | b"SEARCH"
                        | b"SORT"
                        | b"THREAD"
                        | b"FETCH"
                        | b"STORE"
                        | b"COPY"
                        | b"MOVE"
                        | b"UID"
                ) =>
            {
                bad("No mailbox selected")
            }
            b"CLOSE" | b"UNSELECT" => {
                tryp!(c.end());
                if let Some(f) = &mut self.sel {
                    if name == b"CLOSE" && !f.readonly {
                        if let Err(e) = f.expunge_files(&|_| true) {
                            return sys_no("expunge", &e);
                        }
                    }
                }
                self.sel = None;
                ok(if name == b"CLOSE" {
                    "Close completed."
                } else {
                    "Unselect completed."
                })
            }
            b"EXPUNGE" => {
                tryp!(c.end());
                self.expunge(None)
            }
            b"SEARCH" => self.search(tag, c, false),
            b"SORT" | b"THREAD" => self.sort(c, false, name == b"THREAD"),
            b"FETCH" => self.fetch(c, false),
            b"STORE" => self.store(c, false),
            b"COPY" | b"MOVE" => self.copy(c, false, name == b"MOVE"),
            b"UID" => {
                tryp!(c.sp());
                let sub = tryp!(c.word());
                match &sub[..] {
                    b"FETCH" => self.fetch(c, true),
                    b"STORE" => self.store(c, true),
                    b"SEARCH" => self.search(tag, c, true),
                    b"SORT" | b"THREAD" => self.sort(c, true, sub == b"THREAD"),
                    b"COPY" => self.copy(c, true, false),
                    b"MOVE" => self.copy(c, true, true),
                    b"EXPUNGE" => {
                        tryp!(c.sp());
                        let set = tryp!(c.seqset());
                        tryp!(c.end());
                        self.expunge(Some(set))
                    }
                    _ => bad("unknown UID command"),
                }
            }
            _ => bad("unknown command"),
        }
    }

    /// Syncs the selected folder and writes what changed.
    fn sync_report(&mut self) {
        if let Some(f) = &mut self.sel {
            match f.sync() {
                Ok(ch) => self.report(ch),
                Err(e) => exit::warn(&[b"unable to sync folder: ", exit::errtext(&e).as_bytes()]),
            }
        }
    }

    fn report(&mut self, ch: Changes) {
        let f = match &self.sel {
            Some(f) => f,
            None => return,
        };
        if self.qresync && !ch.vanished.is_empty() {
            self.out
                .line(&[b"* VANISHED ", uid_set(&ch.vanished).as_bytes()]);
        } else {
            for s in &ch.expunged {
                self.out
                    .line(&[b"* ", s.to_string().as_bytes(), b" EXPUNGE"]);
            }
        }
        if ch.exists {
            self.out
                .line(&[b"* ", f.msgs.len().to_string().as_bytes(), b" EXISTS"]);
            let r = f.msgs.iter().filter(|m| m.recent).count();
            self.out
                .line(&[b"* ", r.to_string().as_bytes(), b" RECENT"]);
        }
        for &s in &ch.flags {
            let v = self.flags_fetch(f, s as usize - 1);
            self.out.line(&[&v]);
        }
    }

    /// `* n FETCH (FLAGS (...))` for a flag change, with the UID once
    /// QRESYNC is on and the MODSEQ once CONDSTORE is (RFC 7162 §3.2.4).
    fn flags_fetch(&self, f: &Folder, i: usize) -> Vec<u8> {
        let m = &f.msgs[i];
        let mut v = format!("* {} FETCH (", i + 1).into_bytes();
        if self.qresync {
            v.extend_from_slice(format!("UID {} ", m.uid).as_bytes());
        }
        v.extend_from_slice(b"FLAGS ");
        fetch::flags_list(&mut v, m.flags, m.recent, &f.keywords);
        if self.condstore && f.highest.is_some() {
            v.extend_from_slice(format!(" MODSEQ ({})", m.modseq).as_bytes());
        }
        v.push(b')');
        v
    }

    fn mailbox(&self, c: &mut Cursor) -> Result<(Vec<u8>, Option<PathBuf>), &'static str> {
        let mut name = c.astring()?;
        if store::is_inbox(&name) {
            name = b"INBOX".to_vec();
        }
        let dir = store::folder_dir(&self.root, &name);
        Ok((name, dir))
    }

    /// Letters for a flag list in folder `dir` (keywords allocated there).
    fn letters(dir: &Path, kw: &mut Vec<Vec<u8>>, flags: &[Vec<u8>]) -> Result<u64, Done> {
        let mut bits = 0;
        for f in flags {
            if f.first() == Some(&b'\\') {
                if f.eq_ignore_ascii_case(b"\\Recent") {
                    continue;
                }
                match store::SYSFLAGS
                    .iter()
                    .find(|(n, _)| n.eq_ignore_ascii_case(f))
                {
                    Some((_, l)) => bits |= store::bit(*l),
                    None => return Err(bad("Invalid system flag")),
                }
            } else {
                match store::keyword_letter(dir, kw, f, true) {
                    Ok(Some(l)) => bits |= store::bit(l),
                    Ok(None) => return Err(no("[LIMIT] Too many keywords")),
                    Err(e) => return Err(sys_no("write keywords", &e)),
                }
            }
        }
        Ok(bits)
    }

    /// Message indexes for a set (sequence numbers or UIDs).
    fn resolve(&self, set: &SeqSet, uid: bool) -> Result<Vec<usize>, &'static str> {
        let f = self.sel.as_ref().ok_or("No mailbox selected")?;
        let n = f.msgs.len();
        let mut out = Vec::new();
        if uid {
            let max = f.msgs.last().map(|m| m.uid).unwrap_or(0);
            for &(a, b) in &set.0 {
                let a = if a == STAR { max } else { a };
                let b = if b == STAR { max } else { b };
                let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
                let s = f.msgs.partition_point(|m| m.uid < lo);
                let e = f.msgs.partition_point(|m| m.uid <= hi);
                out.extend(s..e);
            }
        } else {
            for &(a, b) in &set.0 {
                if (a == STAR || b == STAR) && n == 0 {
                    return Err("Invalid messageset");
                }
                let a = if a == STAR { n as u32 } else { a };
                let b = if b == STAR { n as u32 } else { b };
                let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
                if hi as usize > n {
                    return Err("Invalid messageset");
                }
                out.extend(lo as usize - 1..hi as usize);
            }
        }
        out.sort_unstable();
        out.dedup();
        Ok(out)
    }
}

/// The answer to a CONDSTORE modifier on a folder without mod-sequences
/// (RFC 7162 §3.1.2).
const NOMODSEQ: &str = "[NOMODSEQ] This mailbox has no mod-sequences";

/// Compact UID set text: `1:3,7`.
pub fn uid_set(u: &[u32]) -> String {
    let mut v = u.to_vec();
    v.sort_unstable();
    let mut out = String::new();
    let mut i = 0;
    while i < v.len() {
        let mut j = i;
        while j + 1 < v.len() && v[j + 1] == v[j] + 1 {
            j += 1;
        }
        if !out.is_empty() {
            out.push(',');
        }
        if i == j {
            out.push_str(&v[i].to_string());
        } else {
            out.push_str(&format!("{}:{}", v[i], v[j]));
        }
        i = j + 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn uid_sets() {
        assert_eq!(uid_set(&[5, 1, 2, 3, 9, 10]), "1:3,5,9:10");
    }
}

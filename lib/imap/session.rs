//! imapd: the authenticated and selected states (RFC 3501 §6.3-6.4 plus
//! UIDPLUS, MOVE, IDLE, NAMESPACE, ID, ENABLE, UNSELECT, SPECIAL-USE).

use std::io;
use std::path::{Path, PathBuf};

use super::fetch::{self, Item};
use super::parse::{Cursor, Input, Limits, Reader, SeqSet, STAR};
use super::resp::{self, Out};
use super::search;
use super::sort;
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
    let timeout = super::env_number("IMAPTIMEOUT", super::TIMEOUT);
    let mut s = Session {
        root,
        rd: Reader::new(0, 65536, timeout),
        out: Out::new(1, timeout.min(600)),
        sel: None,
        max_literal: super::env_number("IMAPMAXLITERAL", super::MAX_LITERAL as u64) as usize,
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
    let caps = super::CAPS.as_bytes();
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
                self.out.line(&[b"* CAPABILITY ", super::CAPS.as_bytes()]);
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

    fn select(&mut self, c: &mut Cursor, readonly: bool) -> Done {
        tryp!(c.sp());
        let (name, dir) = tryp!(self.mailbox(c));
        let (cond, qr) = tryp!(select_params(c, self.qresync));
        tryp!(c.end());
        if self.sel.take().is_some() && self.qresync {
            self.out
                .line(&[b"* OK [CLOSED] Previous mailbox closed."]);
        }
        self.condstore |= cond;
        let dir = match dir {
            Some(d) if d.join("cur").is_dir() => d,
            _ => return Done::No([&b"[NONEXISTENT] Mailbox doesn't exist: "[..], &name].concat()),
        };
        let f = tryio!(Folder::open(dir, readonly), "open folder");
        let mut fl = b"\\Answered \\Flagged \\Deleted \\Seen \\Draft".to_vec();
        for k in f.keywords.iter().filter(|k| !k.is_empty()) {
            fl.push(b' ');
            fl.extend_from_slice(k);
        }
        self.out.line(&[b"* FLAGS (", &fl, b")"]);
        if readonly {
            self.out
                .line(&[b"* OK [PERMANENTFLAGS ()] Read-only mailbox."]);
        } else {
            let star: &[u8] = if f.keywords.iter().filter(|k| !k.is_empty()).count() < 26 {
                b" \\*"
            } else {
                b""
            };
            self.out
                .line(&[b"* OK [PERMANENTFLAGS (", &fl, star, b")] Flags permitted."]);
        }
        self.out
            .line(&[b"* ", f.msgs.len().to_string().as_bytes(), b" EXISTS"]);
        let r = f.msgs.iter().filter(|m| m.recent).count();
        self.out
            .line(&[b"* ", r.to_string().as_bytes(), b" RECENT"]);
        if let Some(i) = f.msgs.iter().position(|m| m.flags & store::SEEN == 0) {
            self.out.line(&[
                b"* OK [UNSEEN ",
                (i + 1).to_string().as_bytes(),
                b"] First unseen.",
            ]);
        }
        self.out.line(&[
            b"* OK [UIDVALIDITY ",
            f.validity.to_string().as_bytes(),
            b"] UIDs valid",
        ]);
        self.out.line(&[
            b"* OK [UIDNEXT ",
            f.next_uid.to_string().as_bytes(),
            b"] Predicted next UID",
        ]);
        if self.condstore {
            match f.highest {
                Some(h) => self.out.line(&[
                    b"* OK [HIGHESTMODSEQ ",
                    h.to_string().as_bytes(),
                    b"] Highest",
                ]),
                None => self
                    .out
                    .line(&[b"* OK [NOMODSEQ] No permanent modsequences"]),
            }
        }
        if let (Some((v, since, known)), Some(_)) = (qr, f.highest) {
            if v == f.validity {
                self.resync(&f, since, known.as_ref());
            }
        }
        self.sel = Some(f);
        if readonly {
            ok("[READ-ONLY] Examine completed.")
        } else {
            ok("[READ-WRITE] Select completed.")
        }
    }

    /// QRESYNC's answers at SELECT (RFC 7162 §3.2.5): what was expunged
    /// and what changed after mod-sequence `since`, within `known` UIDs.
    fn resync(&mut self, f: &Folder, since: u64, known: Option<&SeqSet>) {
        let gone = f.vanished(since, known);
        if !gone.is_empty() {
            self.out
                .line(&[b"* VANISHED (EARLIER) ", uid_set(&gone).as_bytes()]);
        }
        let max = f.msgs.last().map(|m| m.uid).unwrap_or(0);
        for (i, m) in f.msgs.iter().enumerate() {
            if m.modseq > since && known.map(|k| k.contains(m.uid, max)).unwrap_or(true) {
                let mut v = format!("* {} FETCH (UID {} FLAGS ", i + 1, m.uid).into_bytes();
                fetch::flags_list(&mut v, m.flags, m.recent, &f.keywords);
                v.extend_from_slice(format!(" MODSEQ ({}))", m.modseq).as_bytes());
                self.out.line(&[&v]);
            }
        }
    }

    fn create(&mut self, c: &mut Cursor) -> Done {
        tryp!(c.sp());
        let mut name = tryp!(c.astring());
        tryp!(c.end());
        while name.last() == Some(&b'.') {
            name.pop();
        }
        if store::is_inbox(&name) {
            return no("[ALREADYEXISTS] Mailbox already exists");
        }
        if !store::valid_name(&name) {
            return no("[CANNOT] Invalid mailbox name");
        }
        match store::create(&self.root, &name) {
            Ok(()) => ok("Create completed."),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                no("[ALREADYEXISTS] Mailbox already exists")
            }
            Err(e) => sys_no("create folder", &e),
        }
    }

    fn delete(&mut self, c: &mut Cursor) -> Done {
        tryp!(c.sp());
        let (name, dir) = tryp!(self.mailbox(c));
        tryp!(c.end());
        if store::is_inbox(&name) {
            return no("[CANNOT] INBOX can't be deleted.");
        }
        match dir {
            Some(d) if d.join("cur").is_dir() => {
                if self.sel.as_ref().map(|f| f.dir == d).unwrap_or(false) {
                    self.sel = None;
                }
                tryio!(store::delete(&self.root, &name), "delete folder");
                let _ = store::set_subscribed(&self.root, &name, false);
                ok("Delete completed.")
            }
            _ => Done::No([&b"[NONEXISTENT] Mailbox doesn't exist: "[..], &name].concat()),
        }
    }

    fn rename(&mut self, c: &mut Cursor) -> Done {
        tryp!(c.sp());
        let (old, od) = tryp!(self.mailbox(c));
        tryp!(c.sp());
        let mut new = tryp!(c.astring());
        tryp!(c.end());
        while new.last() == Some(&b'.') {
            new.pop();
        }
        if !store::is_inbox(&new) && !store::valid_name(&new) {
            return no("[CANNOT] Invalid mailbox name");
        }
        let exists = od.as_ref().map(|d| d.join("cur").is_dir()).unwrap_or(false);
        let has_children = store::folders(&self.root)
            .map(|v| {
                v.iter()
                    .any(|f| f.len() > old.len() && f.starts_with(&old) && f[old.len()] == b'.')
            })
            .unwrap_or(false);
        if !exists && !has_children {
            return Done::No([&b"[NONEXISTENT] Mailbox doesn't exist: "[..], &old].concat());
        }
        match store::rename(&self.root, &old, &new) {
            Ok(()) => {
                if !store::is_inbox(&old) {
                    if let (Some(f), Some(od)) = (&mut self.sel, &od) {
                        if &f.dir == od {
                            f.dir = store::folder_dir(&self.root, &new)
                                .unwrap_or_else(|| f.dir.clone());
                        }
                    }
                }
                ok("Rename completed.")
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                no("[ALREADYEXISTS] Target mailbox already exists")
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                Done::No([&b"[NONEXISTENT] Mailbox doesn't exist: "[..], &old].concat())
            }
            Err(e) => sys_no("rename folder", &e),
        }
    }

    fn subscribe(&mut self, c: &mut Cursor, on: bool) -> Done {
        tryp!(c.sp());
        let (name, dir) = tryp!(self.mailbox(c));
        tryp!(c.end());
        if dir.is_none() {
            return no("[CANNOT] Invalid mailbox name");
        }
        tryio!(
            store::set_subscribed(&self.root, &name, on),
            "write subscriptions"
        );
        ok(if on {
            "Subscribe completed."
        } else {
            "Unsubscribe completed."
        })
    }

    fn list(&mut self, c: &mut Cursor, lsub: bool) -> Done {
        let a = tryp!(super::list::parse(c, lsub));
        let what: &[u8] = if lsub { b"* LSUB " } else { b"* LIST " };
        if !lsub && !a.extended && a.patterns[0].is_empty() {
            self.out.line(&[what, b"(\\Noselect) \".\" \"\""]);
            return ok("List completed.");
        }
        let rows = tryio!(super::list::rows(&self.root, &a, lsub), "list folders");
        for r in &rows {
            let mut v = Vec::new();
            resp::astring(&mut v, &r.name);
            let info: &[u8] = if r.childinfo {
                b" (\"CHILDINFO\" (\"SUBSCRIBED\"))"
            } else {
                b""
            };
            self.out
                .line(&[what, b"(", &r.attrs.join(&b' '), b") \".\" ", &v, info]);
            if let (Some(items), true) = (&a.status, r.selectable) {
                let dir = store::folder_dir(&self.root, &r.name);
                if let Some(d) = dir.filter(|d| d.join("cur").is_dir()) {
                    if let Err(e) = self.status_line(&r.name, &d, items) {
                        return e;
                    }
                }
            }
        }
        ok(if lsub {
            "Lsub completed."
        } else {
            "List completed."
        })
    }

    fn status(&mut self, c: &mut Cursor) -> Done {
        tryp!(c.sp());
        let (name, dir) = tryp!(self.mailbox(c));
        tryp!(c.sp());
        let items = tryp!(super::list::status_items(c));
        tryp!(c.end());
        let dir = match dir {
            Some(d) if d.join("cur").is_dir() => d,
            _ => return Done::No([&b"[NONEXISTENT] Mailbox doesn't exist: "[..], &name].concat()),
        };
        match self.status_line(&name, &dir, &items) {
            Ok(()) => ok("Status completed."),
            Err(e) => e,
        }
    }

    /// Writes `* STATUS name (items)` for the folder in `dir`.
    fn status_line(&mut self, name: &[u8], dir: &Path, items: &[Vec<u8>]) -> Result<(), Done> {
        let s = {
            let _l = store::lock(dir).map_err(|e| sys_no("lock folder", &e))?;
            store::scan(dir, false).map_err(|e| sys_no("read folder", &e))?
        };
        let unseen = s
            .list
            .iter()
            .filter(|e| store::flags_of(&e.name) & store::SEEN == 0)
            .count();
        let mut v = Vec::new();
        for (i, w) in items.iter().enumerate() {
            if i > 0 {
                v.push(b' ');
            }
            let n = match &w[..] {
                b"MESSAGES" => s.list.len() as u64,
                b"RECENT" => s.list.iter().filter(|e| e.new).count() as u64,
                b"UIDNEXT" => s.next as u64,
                b"UIDVALIDITY" => s.validity as u64,
                b"HIGHESTMODSEQ" => s.highest.unwrap_or(0),
                _ => unseen as u64,
            };
            v.extend_from_slice(w);
            v.push(b' ');
            v.extend_from_slice(n.to_string().as_bytes());
        }
        let mut nm = Vec::new();
        resp::astring(&mut nm, name);
        self.out.line(&[b"* STATUS ", &nm, b" (", &v, b")"]);
        Ok(())
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

    fn append(&mut self, c: &mut Cursor) -> Done {
        tryp!(c.sp());
        let (name, dir) = tryp!(self.mailbox(c));
        tryp!(c.sp());
        let flags = if c.peek() == Some(b'(') {
            let f = tryp!(c.flag_list(false));
            tryp!(c.sp());
            f
        } else {
            Vec::new()
        };
        let date = if c.peek() == Some(b'"') {
            let d = tryp!(c.date_time());
            tryp!(c.sp());
            Some(d)
        } else {
            None
        };
        // A literal8 (RFC 3516) may carry any byte, NUL too.
        c.eat(b'~');
        let msg = tryp!(c.literal());
        tryp!(c.end());
        let dir = match dir {
            Some(d) if d.join("cur").is_dir() => d,
            _ => return no("[TRYCREATE] Mailbox doesn't exist"),
        };
        let _ = name;
        if msg.is_empty() {
            return no("Can't save a zero byte message");
        }
        let _l = tryio!(store::lock(&dir), "lock folder");
        let mut kw = store::read_keywords(&dir);
        let bits = match Self::letters(&dir, &mut kw, &flags) {
            Ok(b) => b,
            Err(d) => return d,
        };
        let base = tryio!(store::deliver(&dir, msg, bits, date), "write message");
        let (validity, uid) = tryio!(self.assign(&dir, &[base]), "update uidlist");
        drop(_l);
        Done::Ok(
            format!(
                "[APPENDUID {} {}] Append completed.",
                validity,
                uid.first().copied().unwrap_or(0)
            )
            .into_bytes(),
        )
    }

    /// UIDs for freshly written bases in `dir` (lock held by the caller).
    /// When `dir` is the selected folder the session syncs and reports.
    fn assign(&mut self, dir: &Path, bases: &[Vec<u8>]) -> io::Result<(u32, Vec<u32>)> {
        let is_sel = self.sel.as_ref().map(|f| f.dir == dir).unwrap_or(false);
        let (validity, list): (u32, Vec<(u32, Vec<u8>)>) = if is_sel {
            let f = self.sel.as_mut().unwrap();
            let ch = f.sync_locked()?;
            let v = (
                f.validity,
                f.msgs.iter().map(|m| (m.uid, m.base.clone())).collect(),
            );
            self.report(ch);
            v
        } else {
            let s = store::scan(dir, false)?;
            (
                s.validity,
                s.list.into_iter().map(|e| (e.uid, e.base)).collect(),
            )
        };
        let map: std::collections::HashMap<&[u8], u32> =
            list.iter().map(|(u, b)| (&b[..], *u)).collect();
        Ok((
            validity,
            bases
                .iter()
                .map(|b| map.get(&b[..]).copied().unwrap_or(0))
                .collect(),
        ))
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

    fn fetch(&mut self, c: &mut Cursor, uid: bool) -> Done {
        tryp!(c.sp());
        let set = tryp!(c.seqset());
        tryp!(c.sp());
        let mut items = tryp!(fetch::parse_items(c));
        let (since, vanished) = tryp!(fetch_modifiers(c));
        tryp!(c.end());
        let mut idx = tryp!(self.resolve(&set, uid));
        if vanished && !(uid && self.qresync) {
            return bad("VANISHED needs UID FETCH and QRESYNC enabled");
        }
        if since.is_some() || items.contains(&Item::Modseq) {
            if self.sel.as_ref().unwrap().highest.is_none() {
                return bad(NOMODSEQ);
            }
            self.condstore = true;
            if !items.contains(&Item::Modseq) {
                items.push(Item::Modseq);
            }
        }
        if uid && !items.contains(&Item::Uid) {
            items.insert(0, Item::Uid);
        }
        let needs_data = items.iter().any(|i| i.needs_data());
        let f = self.sel.as_mut().unwrap();
        let sets_seen = !f.readonly && items.iter().any(|i| i.sets_seen());
        // ENVELOPE, BODY and BODYSTRUCTURE may come from the cache file.
        let kinds: Vec<u8> = items.iter().filter_map(cache_kind).collect();
        let only_cacheable = items
            .iter()
            .all(|i| !i.needs_data() || cache_kind(i).is_some());
        if !kinds.is_empty() && f.cache.is_none() {
            let (c, n) = super::cache::load(&f.dir, f.validity);
            if n > 2 * f.msgs.len() * kinds.len() + 100 {
                let live: std::collections::HashSet<u32> = f.msgs.iter().map(|m| m.uid).collect();
                let _ = super::cache::compact(&f.dir, f.validity, &c, &|u| live.contains(&u));
            }
            f.cache = Some(c);
        }
        if let Some(n) = since {
            idx.retain(|&i| f.msgs[i].modseq > n);
            let gone = if vanished { f.vanished(n, Some(&set)) } else { Vec::new() };
            if !gone.is_empty() {
                self.out
                    .line(&[b"* VANISHED (EARLIER) ", uid_set(&gone).as_bytes()]);
            }
        }
        let mut seen_now = Vec::new();
        let unseen: Vec<usize> = idx
            .iter()
            .copied()
            .filter(|&i| sets_seen && f.msgs[i].flags & store::SEEN == 0)
            .collect();
        if !unseen.is_empty() {
            let r = f
                .lock()
                .and_then(|_l| f.store_flags(&unseen, &|x| x | store::SEEN, None));
            match r {
                Ok(st) => seen_now = st.changed,
                Err(e) => return sys_no("store flags", &e),
            }
        }
        let with_modseq = items.contains(&Item::Modseq);
        let by_uid = uid;
        let mut gone = false;
        for i in idx {
            let uid = f.msgs[i].uid;
            let flags_changed = seen_now.binary_search(&i).is_ok();
            let cached = only_cacheable
                && f.cache
                    .as_ref()
                    .map(|c| kinds.iter().all(|k| c.contains_key(&(uid, *k))))
                    .unwrap_or(false);
            let data = if needs_data && !cached {
                match f.read(i) {
                    Ok(Some(d)) => Some(store::to_crlf(&d)),
                    Ok(None) => {
                        gone = true;
                        continue;
                    }
                    Err(e) => return sys_no("read message", &e),
                }
            } else {
                None
            };
            let tree = if items.iter().any(|x| {
                matches!(
                    x,
                    Item::Body
                        | Item::BodyStructure
                        | Item::Section { .. }
                        | Item::Envelope
                        | Item::Binary { .. }
                        | Item::BinarySize(_)
                )
            }) {
                data.as_ref().map(|d| crate::mime::parse(d))
            } else {
                None
            };
            let mut v = Vec::with_capacity(64);
            v.extend_from_slice(b"* ");
            v.extend_from_slice((i + 1).to_string().as_bytes());
            v.extend_from_slice(b" FETCH (");
            let mut first = true;
            let mut sep = |v: &mut Vec<u8>| {
                if !first {
                    v.push(b' ');
                }
                first = false;
            };
            let mut did_flags = false;
            for it in &items {
                sep(&mut v);
                match it {
                    Item::Flags => {
                        v.extend_from_slice(b"FLAGS ");
                        fetch::flags_list(&mut v, f.msgs[i].flags, f.msgs[i].recent, &f.keywords);
                        did_flags = true;
                    }
                    Item::Uid => {
                        v.extend_from_slice(b"UID ");
                        v.extend_from_slice(f.msgs[i].uid.to_string().as_bytes());
                    }
                    Item::Modseq => {
                        v.extend_from_slice(format!("MODSEQ ({})", f.msgs[i].modseq).as_bytes());
                    }
                    Item::InternalDate => {
                        v.extend_from_slice(b"INTERNALDATE ");
                        v.extend_from_slice(&resp::internal_date(f.date(i)));
                    }
                    Item::Size => {
                        let s = match f.size(i) {
                            Ok(s) => s,
                            Err(e) => return sys_no("read message", &e),
                        };
                        v.extend_from_slice(b"RFC822.SIZE ");
                        v.extend_from_slice(s.to_string().as_bytes());
                    }
                    Item::Envelope | Item::Body | Item::BodyStructure => {
                        let k = cache_kind(it).unwrap_or(b'E');
                        v.extend_from_slice(match k {
                            b'E' => b"ENVELOPE ",
                            b'B' => b"BODY ",
                            _ => b"BODYSTRUCTURE ",
                        });
                        if let Some(c) = f.cache.as_ref().and_then(|c| c.get(&(uid, k))) {
                            v.extend_from_slice(c);
                            continue;
                        }
                        let (d, t) = match (data.as_ref(), tree.as_ref()) {
                            (Some(d), Some(t)) => (d, t),
                            _ => {
                                return sys_no(
                                    "read message",
                                    &std::io::Error::from_raw_os_error(libc::EIO),
                                )
                            }
                        };
                        let mut a = Vec::new();
                        match k {
                            b'E' => fetch::envelope(&mut a, t.header(d)),
                            _ => fetch::body_structure(&mut a, d, t, k == b'S'),
                        }
                        v.extend_from_slice(&a);
                        if let Some(c) = f.cache.as_mut() {
                            c.insert((uid, k), a.clone());
                            f.cache_new.push((uid, k, a));
                        }
                    }
                    Item::Section { sec, partial, .. } => {
                        let (d, t) = (data.as_ref().unwrap(), tree.as_ref().unwrap());
                        let bytes = fetch::section_bytes(d, t, sec);
                        let mut name = b"BODY[".to_vec();
                        name.extend_from_slice(&fetch::label(sec));
                        name.push(b']');
                        fetch::put_body(&mut v, &name, bytes.as_deref(), *partial);
                    }
                    Item::Binary { parts, .. } | Item::BinarySize(parts) => {
                        let (d, t) = (data.as_ref().unwrap(), tree.as_ref().unwrap());
                        let bytes = match fetch::binary_bytes(d, t, parts) {
                            Some(Err(())) => {
                                return no("[UNKNOWN-CTE] Unknown Content-Transfer-Encoding")
                            }
                            b => b.map(|b| b.unwrap_or_default()),
                        };
                        if let Item::Binary { partial, .. } = it {
                            let name = fetch::binary_label(b"BINARY", parts);
                            fetch::put_body(&mut v, &name, bytes.as_deref(), *partial);
                        } else {
                            v.extend_from_slice(&fetch::binary_label(b"BINARY.SIZE", parts));
                            v.push(b' ');
                            match bytes {
                                Some(b) => v.extend_from_slice(b.len().to_string().as_bytes()),
                                None => v.extend_from_slice(b"NIL"),
                            }
                        }
                    }
                    Item::Rfc822 => fetch::put_body(&mut v, b"RFC822", data.as_deref(), None),
                    Item::Rfc822Header | Item::Rfc822Text => {
                        let d = data.as_ref().unwrap();
                        let hend = crate::mime::header_end(d, 0, d.len());
                        let (nm, part): (&[u8], &[u8]) = if matches!(it, Item::Rfc822Header) {
                            (b"RFC822.HEADER", &d[..hend])
                        } else {
                            (b"RFC822.TEXT", &d[hend..])
                        };
                        fetch::put_body(&mut v, nm, Some(part), None);
                    }
                }
            }
            if flags_changed && !did_flags {
                sep(&mut v);
                v.extend_from_slice(b"FLAGS ");
                fetch::flags_list(&mut v, f.msgs[i].flags, f.msgs[i].recent, &f.keywords);
            }
            v.extend_from_slice(b")\r\n");
            self.out.put(&v);
            // The \Seen this FETCH set gave a new mod-sequence (as Dovecot,
            // on a line of its own, with the UID once QRESYNC is on).
            if flags_changed && self.condstore && !with_modseq {
                let u = if self.qresync || by_uid {
                    format!("UID {} ", f.msgs[i].uid)
                } else {
                    String::new()
                };
                let l = format!("* {} FETCH ({}MODSEQ ({}))", i + 1, u, f.msgs[i].modseq);
                self.out.line(&[l.as_bytes()]);
            }
        }
        if !f.cache_new.is_empty() {
            let new = std::mem::take(&mut f.cache_new);
            let none = super::cache::Cache::default();
            let live = f.cache.as_ref().unwrap_or(&none);
            if let Err(e) = super::cache::append(&f.dir, f.validity, &new, live) {
                exit::warn(&[b"unable to write cache: ", exit::errtext(&e).as_bytes()]);
            }
        }
        if gone {
            return no("[EXPUNGEISSUED] Some of the requested messages no longer exist.");
        }
        ok("Fetch completed.")
    }

    fn store(&mut self, c: &mut Cursor, uid: bool) -> Done {
        tryp!(c.sp());
        let set = tryp!(c.seqset());
        tryp!(c.sp());
        // RFC 7162 §3.1.3: `(UNCHANGEDSINCE modseq)` before the item.
        let mut unchanged = None;
        if c.eat(b'(') {
            if tryp!(c.word()) != b"UNCHANGEDSINCE" {
                return bad("unknown STORE modifier");
            }
            tryp!(c.sp());
            unchanged = Some(tryp!(c.number64()));
            tryp!(c.expect(b')'));
            tryp!(c.sp());
        }
        let w = {
            let s = c.i;
            while c
                .peek()
                .map(|x| x.is_ascii_alphanumeric() || matches!(x, b'.' | b'+' | b'-'))
                .unwrap_or(false)
            {
                c.i += 1;
            }
            c.b[s..c.i].to_ascii_uppercase()
        };
        let (mode, silent) = match &w[..] {
            b"FLAGS" => (0, false),
            b"FLAGS.SILENT" => (0, true),
            b"+FLAGS" => (1, false),
            b"+FLAGS.SILENT" => (1, true),
            b"-FLAGS" => (2, false),
            b"-FLAGS.SILENT" => (2, true),
            _ => return bad("invalid STORE item"),
        };
        tryp!(c.sp());
        let flags = tryp!(c.flag_list(true));
        tryp!(c.end());
        let idx = tryp!(self.resolve(&set, uid));
        let f = self.sel.as_mut().unwrap();
        if f.readonly {
            return no("Mailbox is read-only.");
        }
        if unchanged.is_some() {
            if f.highest.is_none() {
                return bad(NOMODSEQ);
            }
            self.condstore = true;
        }
        let _l = tryio!(f.lock(), "lock folder");
        let dir = f.dir.clone();
        let known = f.keywords.iter().filter(|k| !k.is_empty()).count();
        let bits = match Self::letters(&dir, &mut f.keywords, &flags) {
            Ok(b) => b,
            Err(d) => return d,
        };
        let kws: Vec<&Vec<u8>> = f.keywords.iter().filter(|k| !k.is_empty()).collect();
        if kws.len() != known {
            // A new keyword: the client learns the new flag list first.
            let mut fl = b"\\Answered \\Flagged \\Deleted \\Seen \\Draft".to_vec();
            for k in &kws {
                fl.push(b' ');
                fl.extend_from_slice(k);
            }
            let star: &[u8] = if kws.len() < 26 { b" \\*" } else { b"" };
            self.out.line(&[b"* FLAGS (", &fl, b")"]);
            self.out
                .line(&[b"* OK [PERMANENTFLAGS (", &fl, star, b")] Flags permitted."]);
        }
        let op = |x: u64| match mode {
            0 => bits,
            1 => x | bits,
            _ => x & !bits,
        };
        let st = tryio!(f.store_flags(&idx, &op, unchanged), "store flags");
        let modseq = self.condstore && f.highest.is_some();
        for i in idx {
            let m = &f.msgs[i];
            let changed = st.changed.binary_search(&i).is_ok();
            // Refused ones are not answered; with .SILENT a CONDSTORE
            // client still learns the new MODSEQ of what changed.
            if st.modified.contains(&m.uid) || (silent && !(modseq && changed)) {
                continue;
            }
            let mut v = format!("* {} FETCH (", i + 1).into_bytes();
            if uid || self.qresync {
                v.extend_from_slice(format!("UID {} ", m.uid).as_bytes());
            }
            if modseq {
                v.extend_from_slice(format!("MODSEQ ({}) ", m.modseq).as_bytes());
            }
            if !silent {
                v.extend_from_slice(b"FLAGS ");
                fetch::flags_list(&mut v, m.flags, m.recent, &f.keywords);
            }
            if v.last() == Some(&b' ') {
                v.pop();
            }
            v.push(b')');
            self.out.line(&[&v]);
        }
        if !st.modified.is_empty() {
            return Done::Ok(
                format!("[MODIFIED {}] Conditional store failed.", uid_set(&st.modified)).into_bytes(),
            );
        }
        ok("Store completed.")
    }

    fn search(&mut self, tag: &[u8], c: &mut Cursor, uid: bool) -> Done {
        tryp!(c.sp());
        // ESEARCH (RFC 4731): `RETURN (MIN MAX ALL COUNT)` first.
        let save = c.i;
        let mut ret: Option<Vec<Vec<u8>>> = None;
        if c.word().map(|w| w == b"RETURN").unwrap_or(false) {
            tryp!(c.sp());
            tryp!(c.expect(b'('));
            let mut v = Vec::new();
            while !c.eat(b')') {
                if !v.is_empty() {
                    tryp!(c.sp());
                }
                let w = tryp!(c.word());
                if !matches!(&w[..], b"MIN" | b"MAX" | b"ALL" | b"COUNT") {
                    return bad("unknown search return option");
                }
                v.push(w);
            }
            if v.is_empty() {
                v.push(b"ALL".to_vec());
            }
            tryp!(c.sp());
            ret = Some(v);
        } else {
            c.i = save;
        }
        let key = match search::parse(c) {
            Ok(k) => k,
            Err(search::Error::Bad(m)) => return bad(m),
            Err(search::Error::Charset) => {
                return no("[BADCHARSET (UTF-8 US-ASCII)] Unsupported charset")
            }
        };
        let f = self.sel.as_mut().unwrap();
        let with_modseq = search::has_modseq(&key);
        if with_modseq {
            if f.highest.is_none() {
                return bad(NOMODSEQ);
            }
            self.condstore = true;
        }
        let found = search::run(f, &key);
        // RFC 7162 §3.1.5: the highest mod-sequence of what matched.
        let top = found
            .iter()
            .map(|&i| f.msgs[i].modseq)
            .max()
            .filter(|_| with_modseq);
        let hits: Vec<u32> = found
            .into_iter()
            .map(|i| if uid { f.msgs[i].uid } else { i as u32 + 1 })
            .collect();
        let mut v = b"* SEARCH".to_vec();
        match ret {
            None => {
                for n in hits {
                    v.push(b' ');
                    v.extend_from_slice(n.to_string().as_bytes());
                }
                if let Some(t) = top {
                    v.extend_from_slice(format!(" (MODSEQ {})", t).as_bytes());
                }
            }
            Some(opts) => {
                v = b"* ESEARCH (TAG ".to_vec();
                resp::string(&mut v, tag);
                v.push(b')');
                if uid {
                    v.extend_from_slice(b" UID");
                }
                let has = |o: &[u8]| opts.iter().any(|x| x == o);
                let mut put = |name: &str, val: String| {
                    v.extend_from_slice(format!(" {} {}", name, val).as_bytes());
                };
                if let (true, Some(m)) = (has(b"MIN"), hits.iter().min()) {
                    put("MIN", m.to_string());
                }
                if let (true, Some(m)) = (has(b"MAX"), hits.iter().max()) {
                    put("MAX", m.to_string());
                }
                if has(b"ALL") && !hits.is_empty() {
                    put("ALL", uid_set(&hits));
                }
                if has(b"COUNT") {
                    put("COUNT", hits.len().to_string());
                }
                if let Some(t) = top {
                    put("MODSEQ", t.to_string());
                }
            }
        }
        self.out.line(&[&v]);
        ok("Search completed.")
    }

    /// SORT (criteria) charset keys, THREAD algorithm charset keys.
    fn sort(&mut self, c: &mut Cursor, uid: bool, thread: bool) -> Done {
        tryp!(c.sp());
        let (crit, algo) = if thread {
            let a = tryp!(c.word());
            if a != b"ORDEREDSUBJECT" && a != b"REFERENCES" {
                return bad("unknown threading algorithm");
            }
            (Vec::new(), a)
        } else {
            (tryp!(sort::criteria(c)), Vec::new())
        };
        tryp!(c.sp());
        let cs = tryp!(c.astring());
        tryp!(c.sp());
        let key = match search::keys(c, Some(&cs)) {
            Ok(k) => k,
            Err(search::Error::Bad(m)) => return bad(m),
            Err(search::Error::Charset) => {
                return no("[BADCHARSET (UTF-8 US-ASCII)] Unsupported charset")
            }
        };
        let f = self.sel.as_mut().unwrap();
        let mut msgs = Vec::new();
        for i in search::run(f, &key) {
            match sort::info(f, i) {
                Ok(Some(m)) => msgs.push((i, m)),
                Ok(None) => {}
                Err(e) => return sys_no("read message", &e),
            }
        }
        let uids: Vec<u32> = f.msgs.iter().map(|m| m.uid).collect();
        let seq = |i: usize| if uid { uids[i] } else { i as u32 + 1 };
        if thread {
            let t = if algo == b"REFERENCES" {
                sort::references(&msgs, &seq)
            } else {
                sort::ordered_subject(&msgs, &seq)
            };
            self.out.line(&[b"* THREAD ", &t]);
            return ok("Thread completed.");
        }
        sort::sort(&mut msgs, &crit);
        let mut v = b"* SORT".to_vec();
        for (i, _) in &msgs {
            v.push(b' ');
            v.extend_from_slice(seq(*i).to_string().as_bytes());
        }
        self.out.line(&[&v]);
        ok("Sort completed.")
    }

    fn copy(&mut self, c: &mut Cursor, uid: bool, mv: bool) -> Done {
        tryp!(c.sp());
        let set = tryp!(c.seqset());
        tryp!(c.sp());
        let (_name, dir) = tryp!(self.mailbox(c));
        tryp!(c.end());
        let idx = tryp!(self.resolve(&set, uid));
        let dir = match dir {
            Some(d) if d.join("cur").is_dir() => d,
            _ => return no("[TRYCREATE] Mailbox doesn't exist"),
        };
        if mv && self.sel.as_ref().unwrap().readonly {
            return no("Mailbox is read-only.");
        }
        if idx.is_empty() {
            return ok(if mv {
                "No messages moved."
            } else {
                "No messages copied."
            });
        }
        let same = self.sel.as_ref().unwrap().dir == dir;
        // Two folders are always locked in path order, so two sessions
        // copying in opposite directions cannot deadlock.
        let src = self.sel.as_ref().unwrap().dir.clone();
        let mut order = vec![src.clone()];
        if !same {
            order.push(dir.clone());
            order.sort();
        }
        let mut _locks = Vec::new();
        for d in &order {
            _locks.push(tryio!(store::lock(d), "lock folder"));
        }
        let mut kw = store::read_keywords(&dir);
        let mut bases = Vec::new();
        let mut src_uids = Vec::new();
        {
            let f = self.sel.as_mut().unwrap();
            for &i in &idx {
                let m = f.msgs[i].clone();
                // Keywords are per folder: map names to the target's letters.
                let mut bits = m.flags & !(((1u64 << 26) - 1) << 26);
                for (k, name) in f.keywords.iter().enumerate() {
                    if !name.is_empty() && m.flags & store::bit(b'a' + k as u8) != 0 {
                        if let Ok(Some(l)) = store::keyword_letter(&dir, &mut kw, name, true) {
                            bits |= store::bit(l);
                        }
                    }
                }
                bits &= !store::DELETED | if mv { 0 } else { store::DELETED };
                let mut r = store::copy_in(&dir, &f.path(i), &m.base, bits);
                if matches!(&r, Err(e) if e.kind() == io::ErrorKind::NotFound) {
                    let _ = f.refresh_names();
                    r = store::copy_in(&dir, &f.path(i), &m.base, bits);
                }
                match r {
                    Ok(b) => {
                        bases.push(b);
                        src_uids.push(m.uid);
                    }
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return sys_no("copy message", &e),
                }
            }
        }
        if let Err(e) = crate::sys::fsync_dir(&dir.join("new")) {
            return sys_no("sync folder", &e);
        }
        let (validity, uids) = if same {
            tryio!(self.assign_locked_same(&bases), "update uidlist")
        } else {
            tryio!(self.assign(&dir, &bases), "update uidlist")
        };
        let code = format!(
            "[COPYUID {} {} {}]",
            validity,
            uid_set(&src_uids),
            uid_set(&uids)
        );
        if !mv {
            return Done::Ok(format!("{} Copy completed.", code).into_bytes());
        }
        self.out.line(&[b"* OK ", code.as_bytes(), b" Moved."]);
        let f = self.sel.as_mut().unwrap();
        for &i in &idx {
            let p = f.path(i);
            match std::fs::remove_file(&p) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return sys_no("remove message", &e),
            }
        }
        let ch = tryio!(f.sync_locked(), "update uidlist");
        self.report(ch);
        ok("Move completed.")
    }

    /// COPY into the selected folder itself (its lock is held).
    fn assign_locked_same(&mut self, bases: &[Vec<u8>]) -> io::Result<(u32, Vec<u32>)> {
        let f = self.sel.as_mut().unwrap();
        let ch = f.sync_locked()?;
        let validity = f.validity;
        let map: std::collections::HashMap<Vec<u8>, u32> =
            f.msgs.iter().map(|m| (m.base.clone(), m.uid)).collect();
        self.report(ch);
        Ok((
            validity,
            bases
                .iter()
                .map(|b| map.get(b).copied().unwrap_or(0))
                .collect(),
        ))
    }

    fn expunge(&mut self, only: Option<SeqSet>) -> Done {
        let f = self.sel.as_mut().unwrap();
        if f.readonly {
            return no("Mailbox is read-only.");
        }
        let max = f.msgs.last().map(|m| m.uid).unwrap_or(0);
        let pick = |u: u32| only.as_ref().map(|s| s.contains(u, max)).unwrap_or(true);
        tryio!(f.expunge_files(&pick), "expunge");
        self.sync_report();
        match self.sel.as_ref().and_then(|f| f.highest) {
            Some(h) if self.qresync => {
                Done::Ok(format!("[HIGHESTMODSEQ {}] Expunge completed.", h).into_bytes())
            }
            _ => ok("Expunge completed."),
        }
    }

    fn idle(&mut self, tag: &[u8]) -> Done {
        self.out.line(&[b"+ idling"]);
        self.sync_report();
        let _ = self.out.flush();
        let ino = self.sel.as_ref().map(|f| watch(&f.dir));
        let started = crate::sys::now();
        let poll_secs = super::env_number("IMAPIDLEPOLL", 30).max(1);
        loop {
            if !self.rd.buffered() {
                let mut fds = vec![crate::sys::pollfd(0, libc::POLLIN)];
                if let Some(Some(i)) = &ino {
                    fds.push(crate::sys::pollfd(i.fd(), libc::POLLIN));
                }
                match crate::sys::poll(&mut fds, (poll_secs * 1000) as i32) {
                    Err(e) if e.kind() != io::ErrorKind::Interrupted => return Done::Bye,
                    _ => {}
                }
                if fds[0].revents == 0 {
                    if let Some(Some(i)) = &ino {
                        i.drain();
                    }
                    if crate::sys::now().saturating_sub(started) > self.rd.timeout {
                        self.out.line(&[b"* BYE Disconnected for inactivity"]);
                        return Done::Bye;
                    }
                    self.sync_report();
                    if self.out.flush().is_err() {
                        return Done::Bye;
                    }
                    continue;
                }
            }
            let mut line = Vec::new();
            match self.rd.line(&mut line, 1000) {
                Ok(Some(true)) => {}
                _ => return Done::Bye,
            }
            let _ = tag;
            if line.eq_ignore_ascii_case(b"DONE") {
                return ok("Idle completed.");
            }
            return bad("Expected DONE.");
        }
    }
}

/// The answer to a CONDSTORE modifier on a folder without mod-sequences
/// (RFC 7162 §3.1.2).
const NOMODSEQ: &str = "[NOMODSEQ] This mailbox has no mod-sequences";

/// FETCH modifiers (RFC 4466): `(CHANGEDSINCE n [VANISHED])`.
fn fetch_modifiers(c: &mut Cursor) -> Result<(Option<u64>, bool), &'static str> {
    let (mut since, mut vanished) = (None, false);
    if c.at_end() {
        return Ok((since, vanished));
    }
    c.sp()?;
    c.expect(b'(')?;
    loop {
        match &c.word()?[..] {
            b"CHANGEDSINCE" => {
                c.sp()?;
                since = Some(c.number64()?);
            }
            b"VANISHED" => vanished = true,
            _ => return Err("unknown FETCH modifier"),
        }
        if c.eat(b')') {
            break;
        }
        c.sp()?;
    }
    if vanished && since.is_none() {
        return Err("VANISHED needs CHANGEDSINCE");
    }
    Ok((since, vanished))
}

/// How many numbers a set without `*` names (None with `*`).
fn set_len(s: &SeqSet) -> Option<u64> {
    s.0.iter().try_fold(0u64, |n, &(a, b)| {
        (a != STAR && b != STAR).then(|| n + a.abs_diff(b) as u64 + 1)
    })
}

/// SELECT's QRESYNC parameter: UIDVALIDITY, mod-sequence, known UIDs.
type Qresync = (u32, u64, Option<SeqSet>);

/// SELECT/EXAMINE parameters (RFC 4466): `(CONDSTORE)` and, once QRESYNC
/// is enabled, `(QRESYNC (uidvalidity modseq [known-uids [(seqs uids)]]))`;
/// the sequence match data is read and not needed.
fn select_params(c: &mut Cursor, qresync_on: bool) -> Result<(bool, Option<Qresync>), &'static str> {
    let (mut cond, mut qr) = (false, None);
    if c.at_end() {
        return Ok((cond, qr));
    }
    c.sp()?;
    c.expect(b'(')?;
    loop {
        match &c.word()?[..] {
            b"CONDSTORE" => cond = true,
            b"QRESYNC" if qresync_on => {
                c.sp()?;
                c.expect(b'(')?;
                let v = c.nz_number()?;
                c.sp()?;
                let since = c.number64()?;
                let mut known = None;
                if c.eat(b' ') {
                    if c.peek() != Some(b'(') {
                        known = Some(c.seqset()?);
                    }
                    if c.peek() == Some(b'(') || (known.is_some() && c.eat(b' ')) {
                        c.expect(b'(')?;
                        let seqs = c.seqset()?;
                        c.sp()?;
                        let uids = c.seqset()?;
                        c.expect(b')')?;
                        if set_len(&seqs) != set_len(&uids) {
                            return Err("Invalid QRESYNC sets");
                        }
                    }
                }
                c.expect(b')')?;
                qr = Some((v, since, known));
            }
            b"QRESYNC" => return Err("QRESYNC is not enabled"),
            _ => return Err("unknown SELECT parameter"),
        }
        if c.eat(b')') {
            return Ok((cond, qr));
        }
        c.sp()?;
    }
}

/// The cache record kind of a FETCH item, if it has one.
fn cache_kind(i: &Item) -> Option<u8> {
    match i {
        Item::Envelope => Some(b'E'),
        Item::Body => Some(b'B'),
        Item::BodyStructure => Some(b'S'),
        _ => None,
    }
}

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

/// LIST wildcard matching: `*` anything, `%` anything but the separator;
/// INBOX matches case-insensitively.
pub fn matches(pat: &[u8], name: &[u8]) -> bool {
    let name_cmp: Vec<u8>;
    let (pat, name) = if store::is_inbox(name) && pat.len() >= 5 && store::is_inbox(&pat[..5]) {
        name_cmp = b"INBOX".to_vec();
        let mut p = b"INBOX".to_vec();
        p.extend_from_slice(&pat[5..]);
        (p, &name_cmp[..])
    } else {
        (pat.to_vec(), name)
    };
    // Dynamic programming, not backtracking: a pattern of many wildcards
    // costs len(pattern) * len(name), never more.
    let (p, n) = (&pat[..], name);
    let mut row = vec![false; n.len() + 1]; // matches of p[i..] against n[j..]
    row[n.len()] = true;
    for i in (0..p.len()).rev() {
        let mut next = vec![false; n.len() + 1];
        for j in (0..=n.len()).rev() {
            next[j] = match p[i] {
                b'*' => row[j] || (j < n.len() && next[j + 1]),
                b'%' => row[j] || (j < n.len() && n[j] != b'.' && next[j + 1]),
                c => j < n.len() && n[j] == c && row[j + 1],
            };
        }
        row = next;
    }
    row[0]
}

/// RFC 6154 attribute for well-known folder names.
pub fn special_use(name: &[u8]) -> Option<&'static [u8]> {
    let l = name.to_ascii_lowercase();
    Some(match &l[..] {
        b"sent" | b"sent messages" | b"sent items" => b"\\Sent",
        b"drafts" => b"\\Drafts",
        b"trash" | b"deleted messages" => b"\\Trash",
        b"junk" | b"spam" => b"\\Junk",
        _ => return None,
    })
}

/// inotify on a folder's new/ and cur/, for IDLE.
fn watch(dir: &Path) -> Option<crate::sys::fs::Inotify> {
    let (new, cur) = (dir.join("new"), dir.join("cur"));
    let mask = libc::IN_CREATE | libc::IN_MOVED_TO | libc::IN_MOVED_FROM | libc::IN_DELETE;
    crate::sys::fs::Inotify::new(&[&new, &cur], mask)
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn list_patterns() {
        assert!(matches(b"*", b"a.b"));
        assert!(matches(b"%", b"a"));
        assert!(!matches(b"%", b"a.b"));
        assert!(matches(b"a.%", b"a.b"));
        assert!(matches(b"inbox", b"INBOX"));
        assert!(!matches(b"x*", b"a"));
        assert!(matches(b"a*b*%", b"a.x.b"));
        assert!(!matches(b"a%b", b"a.b"));
        let evil = [b'*'; 300].iter().chain(b"z").copied().collect::<Vec<u8>>();
        assert!(!matches(&evil, &[b'a'; 500]));
    }
    #[test]
    fn uid_sets() {
        assert_eq!(uid_set(&[5, 1, 2, 3, 9, 10]), "1:3,5,9:10");
    }
}

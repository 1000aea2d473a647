//! Mod-sequences of one folder (RFC 7162 CONDSTORE/QRESYNC): the file `pipemail-modseq`.
//!
//! Flags live in the Maildir file names, where any program may change
//! them, so a mod-sequence is given when a scan (under the folder's lock)
//! or a STORE sees a message whose letters differ from those recorded
//! with its last mod-sequence: delivery, a flag change by another session
//! or another program, and an expunge all bump HIGHESTMODSEQ.
//!
//! The file is a log, appended (and fsync'd) under the folder's lock:
//!
//! ```text
//! 1 V<uidvalidity> H<highestmodseq> E<modseq>     header
//! <uid> <modseq> <flag bits in hex>               a message and its letters
//! -<uid> <modseq>                                 the message was expunged
//! ```
//!
//! A later line for a UID replaces an earlier one; a torn last line is
//! ignored. It is rewritten (temporary file and rename) when it holds more
//! than twice the live lines plus 1000; the rewrite keeps the last
//! [`MAX_VANISHED`] expunges and records in `E` the mod-sequence up to
//! which older ones were dropped (VANISHED (EARLIER) then answers every
//! UID not present, which RFC 7162 §3.2.5.1 allows). A folder without
//! the file (made by an older imapd) starts at HIGHESTMODSEQ 1 and its
//! messages, all new to the log, at 2, as Dovecot numbers a folder it
//! indexes for the first time; a different UIDVALIDITY starts afresh.

use std::fs;
use std::io::{self, Write};
use std::path::Path;

use super::store::Folder;
use super::uidlist::{Entry, FastMap};
use crate::maildir::flags::flags_of;
use crate::maildir::replace;

pub const FILE: &str = "pipemail-modseq";

/// Expunged UIDs remembered for VANISHED (EARLIER) after a rewrite.
pub const MAX_VANISHED: usize = 10_000;

/// The recorded state, loaded under the folder's lock.
pub struct State {
    validity: u32,
    pub highest: u64,
    /// Expunges older than this mod-sequence are forgotten.
    forgot: u64,
    /// UID to (mod-sequence, flag bits).
    per: FastMap<u32, (u64, u64)>,
    /// Expunged UIDs with their mod-sequence, in log order.
    gone: Vec<(u32, u64)>,
    lines: usize,
    /// The file needs a rewrite (absent, torn, other UIDVALIDITY).
    rewrite: bool,
    /// Lines to append, and the mod-sequence given in this round.
    pending: Vec<u8>,
    bumped: Option<u64>,
}

fn num(w: &[u8]) -> Option<u64> {
    crate::parse::number(w)
}

impl State {
    /// Reads `dir`'s file; `fresh` (all at 1) when it is absent or belongs
    /// to another UIDVALIDITY.
    pub fn load(dir: &Path, validity: u32) -> io::Result<State> {
        let mut s = State {
            validity,
            highest: 1,
            forgot: 0,
            per: FastMap::default(),
            gone: Vec::new(),
            lines: 0,
            rewrite: true,
            pending: Vec::new(),
            bumped: None,
        };
        let data = match fs::read(dir.join(FILE)) {
            Ok(d) => d,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(s),
            Err(e) => return Err(e),
        };
        let head = data.split(|&c| c == b'\n').next().unwrap_or(b"");
        let word = |k: u8| {
            head.split(|&c| c == b' ')
                .find_map(|w| w.strip_prefix(&[k]).and_then(num))
        };
        if word(b'V') != Some(validity as u64) {
            return Ok(s);
        }
        s.highest = word(b'H').unwrap_or(1).max(1);
        s.forgot = word(b'E').unwrap_or(0);
        s.rewrite = data.last() != Some(&b'\n');
        let complete = data.len() - data.iter().rev().take_while(|&&c| c != b'\n').count();
        for l in data[..complete].split(|&c| c == b'\n').skip(1) {
            let mut w = l.split(|&c| c == b' ');
            let (a, b) = (w.next().unwrap_or(b""), w.next().and_then(num));
            let ms = match b {
                Some(m) => m,
                None => continue,
            };
            s.lines += 1;
            s.highest = s.highest.max(ms);
            if let Some(u) = a.strip_prefix(b"-").and_then(num) {
                s.per.remove(&(u as u32));
                s.gone.push((u as u32, ms));
            } else if let (Some(u), Some(f)) = (
                num(a),
                w.next()
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u64::from_str_radix(h, 16).ok()),
            ) {
                s.per.insert(u as u32, (ms, f));
            }
        }
        Ok(s)
    }

    /// The mod-sequence of this round's changes (one for all of them).
    fn bump(&mut self) -> u64 {
        *self.bumped.get_or_insert_with(|| {
            self.highest += 1;
            self.highest
        })
    }

    /// The mod-sequence of message `uid` now carrying `flags`: the recorded
    /// one, or a new one when it is new or its letters changed.
    pub fn observe(&mut self, uid: u32, flags: u64) -> u64 {
        if let Some(&(ms, f)) = self.per.get(&uid) {
            if f == flags {
                return ms;
            }
        }
        let ms = self.bump();
        self.per.insert(uid, (ms, flags));
        self.pending
            .extend_from_slice(format!("{} {} {:x}\n", uid, ms, flags).as_bytes());
        ms
    }

    /// Records the expunge of every known UID not in `live`.
    pub fn keep_only(&mut self, live: &dyn Fn(u32) -> bool) {
        let mut dead: Vec<u32> = self.per.keys().copied().filter(|&u| !live(u)).collect();
        if dead.is_empty() {
            return;
        }
        dead.sort_unstable();
        let ms = self.bump();
        for u in dead {
            self.per.remove(&u);
            self.gone.push((u, ms));
            self.pending
                .extend_from_slice(format!("-{} {}\n", u, ms).as_bytes());
        }
    }

    /// Writes what this round changed: appended, or the whole file.
    pub fn save(&mut self, dir: &Path) -> io::Result<()> {
        let lines = self.lines + memchr::memchr_iter(b'\n', &self.pending).count();
        if self.rewrite || lines > 2 * self.per.len() + 1000 {
            return self.rewrite(dir);
        }
        if self.pending.is_empty() {
            return Ok(());
        }
        let mut f = fs::OpenOptions::new().append(true).open(dir.join(FILE))?;
        f.write_all(&self.pending)?;
        f.sync_data()?;
        self.lines = lines;
        self.pending.clear();
        self.bumped = None;
        Ok(())
    }

    fn rewrite(&mut self, dir: &Path) -> io::Result<()> {
        if self.gone.len() > MAX_VANISHED {
            let cut = self.gone.len() - MAX_VANISHED;
            self.forgot = self.forgot.max(self.gone[cut - 1].1);
            self.gone.drain(..cut);
        }
        let mut per: Vec<_> = self.per.iter().collect();
        per.sort_unstable();
        let mut out = format!("1 V{} H{} E{}\n", self.validity, self.highest, self.forgot);
        for (u, (ms, f)) in per {
            out.push_str(&format!("{} {} {:x}\n", u, ms, f));
        }
        for (u, ms) in &self.gone {
            out.push_str(&format!("-{} {}\n", u, ms));
        }
        replace(&dir.join(FILE), out.as_bytes())?;
        self.lines = self.per.len() + self.gone.len();
        self.rewrite = false;
        self.pending.clear();
        self.bumped = None;
        Ok(())
    }

    /// UIDs expunged after mod-sequence `since`; None when the log does
    /// not reach back that far.
    pub fn vanished_since(&self, since: u64) -> Option<Vec<u32>> {
        if since < self.forgot {
            return None;
        }
        let mut v: Vec<u32> = self
            .gone
            .iter()
            .filter(|(_, ms)| *ms > since)
            .map(|(u, _)| *u)
            .collect();
        v.sort_unstable();
        v.dedup();
        Some(v)
    }
}

/// Gives every entry of a scan its mod-sequence (lock held); the
/// folder's HIGHESTMODSEQ, or an error when the file cannot be kept.
pub fn track(dir: &Path, validity: u32, list: &mut [Entry]) -> io::Result<u64> {
    let mut s = State::load(dir, validity)?;
    // New messages take one mod-sequence, then changed flags and
    // expunges the next, as Dovecot numbers one sync of a Maildir.
    for new in [true, false] {
        for e in list.iter_mut() {
            if s.per.contains_key(&e.uid) != new {
                e.modseq = s.observe(e.uid, flags_of(&e.name));
            }
        }
        if new {
            s.bumped = None;
        }
    }
    let live: std::collections::HashSet<u32> = list.iter().map(|e| e.uid).collect();
    s.keep_only(&|u| live.contains(&u));
    s.save(dir)?;
    Ok(s.highest)
}

/// What a conditional flag change did.
pub struct Stored {
    /// Indexes whose flags changed.
    pub changed: Vec<usize>,
    /// UIDs refused by UNCHANGEDSINCE (RFC 7162 §3.1.3).
    pub modified: Vec<u32>,
}

impl Folder {
    /// Sets the flags of messages `idx` to `f(current)` under the lock the
    /// caller holds, each message's mod-sequence checked against
    /// `unchanged_since` first and bumped when its letters change. Without
    /// a usable state file the flags still change and the folder reports
    /// NOMODSEQ from then on.
    pub fn store_flags(
        &mut self,
        idx: &[usize],
        f: &dyn Fn(u64) -> u64,
        unchanged_since: Option<u64>,
    ) -> io::Result<Stored> {
        self.refresh_names()?;
        let mut st = State::load(&self.dir, self.validity).ok();
        let mut out = Stored {
            changed: Vec::new(),
            modified: Vec::new(),
        };
        for &i in idx {
            let (uid, flags) = (self.msgs[i].uid, self.msgs[i].flags);
            if let Some(s) = st.as_mut() {
                let now = s.observe(uid, flags);
                self.msgs[i].modseq = now;
                if unchanged_since.map(|u| now > u).unwrap_or(false) {
                    out.modified.push(uid);
                    continue;
                }
            }
            if self.set_flags(i, f)? {
                out.changed.push(i);
                if let Some(s) = st.as_mut() {
                    self.msgs[i].modseq = s.observe(uid, self.msgs[i].flags);
                }
            }
        }
        self.highest = match st.as_mut().map(|s| s.save(&self.dir).map(|_| s.highest)) {
            Some(Ok(h)) => Some(h),
            _ => None,
        };
        Ok(out)
    }

    /// UIDs expunged since `since` within `known` (None: all of them), or,
    /// when the log does not reach back, every UID of `known` up to the
    /// last one given that is not here.
    pub fn vanished(&self, since: u64, known: Option<&super::parse::SeqSet>) -> Vec<u32> {
        let max = self.next_uid.saturating_sub(1);
        let inside = |u: u32| known.map(|k| k.contains(u, max)).unwrap_or(true);
        let st = State::load(&self.dir, self.validity).ok();
        match st.as_ref().and_then(|s| s.vanished_since(since)) {
            Some(v) => v
                .into_iter()
                .filter(|&u| inside(u) && self.by_uid(u).is_none())
                .collect(),
            None => (1..=max)
                .filter(|&u| inside(u) && self.by_uid(u).is_none())
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_round_trip() {
        let dir = std::env::temp_dir().join(format!("pm-modseq-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let mut s = State::load(&dir, 7).unwrap();
        assert_eq!((s.observe(1, 0), s.observe(2, 4)), (2, 2));
        s.save(&dir).unwrap();
        let mut s = State::load(&dir, 7).unwrap();
        assert_eq!(
            (s.observe(1, 0), s.observe(2, 5), s.observe(3, 0)),
            (2, 3, 3)
        );
        s.keep_only(&|u| u != 1);
        s.save(&dir).unwrap();
        // A torn last line is ignored and the file rewritten.
        let mut f = fs::OpenOptions::new()
            .append(true)
            .open(dir.join(FILE))
            .unwrap();
        f.write_all(b"2 9").unwrap();
        let s = State::load(&dir, 7).unwrap();
        assert_eq!(s.highest, 3);
        assert_eq!(s.vanished_since(2), Some(vec![1]));
        assert_eq!(s.vanished_since(3), Some(vec![]));
        assert!(s.rewrite);
        // Another UIDVALIDITY starts afresh.
        assert_eq!(State::load(&dir, 8).unwrap().highest, 1);
        fs::remove_dir_all(&dir).unwrap();
    }
}

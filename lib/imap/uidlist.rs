//! imapd's persistent UIDs: the folder's `pipemail-uidlist` state file
//! (read, appended, rewritten) and the scan that brings it up to date with
//! new/ and cur/.
//!
//! A first line `1 V<uidvalidity> N<nextuid>` then one `<uid> <base>` line
//! per message in ascending UID order, where base is the file name without
//! the `:2,` info. It is changed only under the folder's lock
//! ([`crate::maildir::lock`]): appended (and fsync'd) when only new
//! messages arrived, rewritten in a temporary file and renamed when
//! messages went away, so a crash leaves the old or the new list, never a
//! torn one (a partial last line is ignored, and UIDs never go back because
//! the next UID is the larger of N and the last UID + 1).

use crate::maildir::flags::{base_of, flags_of, name_with};
use crate::maildir::{locked, names, path as p, replace};
use std::collections::{HashMap, HashSet};
use std::fs;
use std::io::{self, Write};
use std::path::Path;

pub const UIDLIST: &str = "pipemail-uidlist";
pub const VALIDITY: &str = "pipemail-uidvalidity";

/// A UIDVALIDITY for a new state file in folder `dir`: the clock, but
/// always above the last one given out in the same Maildir++ tree (kept in
/// the root's `pipemail-uidvalidity`), so a folder deleted and created
/// again within one second does not get the old one (RFC 3501 §2.3.1.1).
fn new_validity(dir: &Path) -> io::Result<u32> {
    let root = match dir.parent() {
        Some(p) if dir.join("maildirfolder").exists() => p,
        _ => dir,
    };
    let mut f = locked(&root.join(VALIDITY))?;
    let mut old = Vec::new();
    io::Read::read_to_end(&mut f, &mut old)?;
    let last = crate::parse::number(crate::parse::trim(&old)).unwrap_or(0);
    let v = (crate::sys::now() as u32)
        .max(1)
        .max(last.min(u32::MAX as u64 - 1) as u32 + 1);
    f.set_len(0)?;
    std::os::unix::fs::FileExt::write_all_at(&f, format!("{}\n", v).as_bytes(), 0)?;
    f.sync_data()?;
    Ok(v)
}

/// The parsed state file.
pub struct Uidlist {
    pub validity: u32,
    pub next: u32,
    pub entries: Vec<(u32, Vec<u8>)>,
}

pub fn read_uidlist(dir: &Path) -> io::Result<Option<Uidlist>> {
    let data = match fs::read(dir.join(UIDLIST)) {
        Ok(d) => d,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut lines = data.split_inclusive(|&c| c == b'\n');
    let head = lines.next().unwrap_or(b"");
    let mut validity = 0;
    let mut next = 1;
    for w in head.split(|&c| c == b' ' || c == b'\n') {
        if let Some(n) = w.strip_prefix(b"V").and_then(crate::parse::number) {
            validity = n as u32;
        }
        if let Some(n) = w.strip_prefix(b"N").and_then(crate::parse::number) {
            next = n as u32;
        }
    }
    if validity == 0 {
        return Ok(None);
    }
    let mut entries = Vec::new();
    let mut sorted = true;
    for l in lines {
        if l.last() != Some(&b'\n') {
            break; // torn last line: never acknowledged
        }
        let l = &l[..l.len() - 1];
        let sp = match memchr::memchr(b' ', l) {
            Some(i) => i,
            None => continue,
        };
        let uid = match crate::parse::number(&l[..sp]) {
            Some(u) if u > 0 && u < u32::MAX as u64 => u as u32,
            _ => continue,
        };
        if entries
            .last()
            .map(|e: &(u32, Vec<u8>)| e.0 >= uid)
            .unwrap_or(false)
        {
            sorted = false;
        }
        entries.push((uid, l[sp + 1..].to_vec()));
    }
    if !sorted {
        entries.sort_by_key(|e| e.0);
        entries.dedup_by_key(|e| e.0);
    }
    if let Some(last) = entries.last() {
        next = next.max(last.0 + 1);
    }
    Ok(Some(Uidlist {
        validity,
        next,
        entries,
    }))
}

fn uidlist_text(ul: &Uidlist) -> Vec<u8> {
    let mut out = Vec::with_capacity(ul.entries.len() * 48 + 32);
    out.extend_from_slice(format!("1 V{} N{}\n", ul.validity, ul.next).as_bytes());
    for (u, b) in &ul.entries {
        out.extend_from_slice(u.to_string().as_bytes());
        out.push(b' ');
        out.extend_from_slice(b);
        out.push(b'\n');
    }
    out
}

fn write_uidlist(dir: &Path, ul: &Uidlist) -> io::Result<()> {
    replace(&dir.join(UIDLIST), &uidlist_text(ul))
}

/// Appends new entries and a fresh header is not needed: the reader takes
/// the next UID from the last line.
fn append_uidlist(dir: &Path, added: &[(u32, Vec<u8>)]) -> io::Result<()> {
    let mut out = Vec::new();
    for (u, b) in added {
        out.extend_from_slice(u.to_string().as_bytes());
        out.push(b' ');
        out.extend_from_slice(b);
        out.push(b'\n');
    }
    let mut f = fs::OpenOptions::new()
        .append(true)
        .open(dir.join(UIDLIST))?;
    f.write_all(&out)?;
    f.sync_data()
}

/// The scan of one folder under its lock: entries in UID order with their
/// current file names, and the bases this call moved out of new/.
pub struct Scan {
    pub validity: u32,
    pub next: u32,
    pub list: Vec<Entry>,
    pub fresh: HashSet<Vec<u8>>,
    /// HIGHESTMODSEQ; None when the folder cannot keep mod-sequences.
    pub highest: Option<u64>,
}

/// FNV-1a: file names are not chosen by an attacker, and the default
/// SipHash costs more than the rest of a 100 000-message SELECT.
#[derive(Default)]
pub struct Fnv(u64);

impl std::hash::Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, b: &[u8]) {
        let mut h = if self.0 == 0 {
            0xcbf29ce484222325
        } else {
            self.0
        };
        for &c in b {
            h ^= c as u64;
            h = h.wrapping_mul(0x100000001b3);
        }
        self.0 = h;
    }
}

pub type FastMap<K, V> = HashMap<K, V, std::hash::BuildHasherDefault<Fnv>>;

/// Base name to (file name, whether in new/) for cur/ and, with `new`,
/// new/ (a name in both, moved while we looked, counts as in cur/).
/// Base name to (file name, in new/).
pub type Located = FastMap<Vec<u8>, (Vec<u8>, bool)>;

pub fn located(dir: &Path, new: bool) -> io::Result<Located> {
    let mut m = FastMap::default();
    if new {
        for n in names(&dir.join("new"))? {
            m.insert(base_of(&n).to_vec(), (n, true));
        }
    }
    for n in names(&dir.join("cur"))? {
        m.insert(base_of(&n).to_vec(), (n, false));
    }
    Ok(m)
}

/// One message of a [`Scan`].
pub struct Entry {
    pub uid: u32,
    pub base: Vec<u8>,
    pub name: Vec<u8>,
    /// In new/: not yet taken by a session, so \Recent for the next one.
    pub new: bool,
    pub modseq: u64,
}

/// Brings the state file up to date with new/ and cur/: every message gets
/// a UID. With `take_new` files in new/ move to cur/ first and `fresh`
/// holds their bases (\Recent for this session); without it (EXAMINE,
/// STATUS) they stay in new/, \Recent for the next session that takes
/// them. Call with the lock held.
pub fn scan(dir: &Path, take_new: bool) -> io::Result<Scan> {
    let mut ul = match read_uidlist(dir)? {
        Some(u) => u,
        None => Uidlist {
            validity: new_validity(dir)?,
            next: 1,
            entries: Vec::new(),
        },
    };
    let had_file = dir.join(UIDLIST).exists();
    let mut fresh = HashSet::new();
    for n in names(&dir.join("new"))? {
        if !take_new {
            break;
        }
        let target = if memchr::memmem::find(&n, b":2,").is_some() {
            n.clone()
        } else {
            name_with(&n, flags_of(&n))
        };
        match fs::rename(p(dir, "new", &n), p(dir, "cur", &target)) {
            Ok(()) => {
                fresh.insert(base_of(&n).to_vec());
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    // A file that lands in new/ after the moves waits for the next sync
    // (listed now it would lose its \Recent).
    let mut cur = located(dir, !take_new)?;
    let mut list = Vec::with_capacity(ul.entries.len() + 16);
    let mut missing = Vec::new();
    for (uid, base) in std::mem::take(&mut ul.entries) {
        match cur.remove(&base) {
            Some((name, new)) => list.push(Entry {
                uid,
                base,
                name,
                new,
                modseq: 0,
            }),
            None => missing.push((uid, base)),
        }
    }
    let mut dropped = false;
    if !missing.is_empty() {
        // A rename by a program that does not take our lock may hide a
        // name from one readdir: look again before calling it gone.
        let again = located(dir, true)?;
        for (uid, base) in missing {
            match again.get(&base) {
                Some((name, new)) => list.push(Entry {
                    uid,
                    base,
                    name: name.clone(),
                    new: *new,
                    modseq: 0,
                }),
                None => dropped = true,
            }
        }
        list.sort_by_key(|e| e.uid);
    }
    // New names get UIDs in name order: Maildir names start with the
    // delivery time, and ours carry zero-padded microseconds and a counter,
    // so copies keep their order (COPYUID pairs source and target UIDs).
    let mut rest: Vec<_> = cur.into_iter().collect();
    rest.sort();
    let mut added = Vec::new();
    for (base, (name, new)) in rest {
        let uid = ul.next;
        ul.next += 1;
        added.push((uid, base.clone()));
        list.push(Entry {
            uid,
            base,
            name,
            new,
            modseq: 0,
        });
    }
    ul.entries = list.iter().map(|e| (e.uid, e.base.clone())).collect();
    if dropped || !had_file {
        write_uidlist(dir, &ul)?;
    } else if !added.is_empty() {
        append_uidlist(dir, &added)?;
    }
    let highest = track_modseqs(dir, ul.validity, &mut list);
    Ok(Scan {
        validity: ul.validity,
        next: ul.next,
        list,
        fresh,
        highest,
    })
}

/// Gives the entries their mod-sequences; None (NOMODSEQ) when the
/// state file cannot be read or written.
fn track_modseqs(dir: &Path, validity: u32, list: &mut [Entry]) -> Option<u64> {
    match super::modseq::track(dir, validity, list) {
        Ok(h) => Some(h),
        Err(e) => {
            crate::exit::warn(&[
                b"unable to keep mod-sequences: ",
                crate::exit::errtext(&e).as_bytes(),
            ]);
            None
        }
    }
}

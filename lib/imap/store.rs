//! The Maildir++ store behind imapd.
//!
//! INBOX is the Maildir itself; folder `a.b` is the directory `.a.b`
//! (names in modified UTF-7, `.` the hierarchy separator). Each folder
//! keeps `pipemail-uidlist`: a first line `1 V<uidvalidity> N<nextuid>`
//! then one `<uid> <base>` line per message in ascending UID order, where
//! base is the file name without the `:2,` info. It is changed only under
//! an flock(2) on `pipemail-uidlist.lock`: appended (and fsync'd) when only
//! new messages arrived, rewritten in a temporary file and renamed when
//! messages went away, so a crash leaves the old or the new list, never a
//! torn one (a partial last line is ignored, and UIDs never go back because
//! the next UID is the larger of N and the last UID + 1). Flags are the
//! Maildir info letters (S R F T D), keywords the letters a-z through the
//! folder's `dovecot-keywords` file (`N name` lines, N = 0 for `a`).

use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::fs;
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

pub const UIDLIST: &str = "pipemail-uidlist";
pub const LOCKFILE: &str = "pipemail-uidlist.lock";
pub const KEYWORDS: &str = "dovecot-keywords";
pub const VALIDITY: &str = "pipemail-uidvalidity";

/// The system flags with their Maildir letters.
pub const SYSFLAGS: [(&[u8], u8); 5] = [
    (b"\\Answered", b'R'),
    (b"\\Flagged", b'F'),
    (b"\\Deleted", b'T'),
    (b"\\Seen", b'S'),
    (b"\\Draft", b'D'),
];

pub fn bit(letter: u8) -> u64 {
    match letter {
        b'A'..=b'Z' => 1 << (letter - b'A'),
        b'a'..=b'z' => 1 << (26 + letter - b'a'),
        _ => 0,
    }
}

pub const SEEN: u64 = 1 << (b'S' - b'A');
pub const ANSWERED: u64 = 1 << (b'R' - b'A');
pub const FLAGGED: u64 = 1 << (b'F' - b'A');
pub const DELETED: u64 = 1 << (b'T' - b'A');
pub const DRAFT: u64 = 1 << (b'D' - b'A');
/// The letters imapd manages (system flags and keywords); others are kept.
pub const MANAGED: u64 = SEEN | ANSWERED | FLAGGED | DELETED | DRAFT | (((1u64 << 26) - 1) << 26);

/// The file name without the `:2,` info.
pub fn base_of(name: &[u8]) -> &[u8] {
    match memchr::memchr(b':', name) {
        Some(i) => &name[..i],
        None => name,
    }
}

/// The letters after `:2,` as a bit set.
pub fn flags_of(name: &[u8]) -> u64 {
    match memchr::memchr(b':', name) {
        Some(i) if name[i + 1..].starts_with(b"2,") => {
            name[i + 3..].iter().fold(0, |a, &c| a | bit(c))
        }
        _ => 0,
    }
}

/// `base:2,LETTERS` with the letters in ASCII order.
pub fn name_with(base: &[u8], flags: u64) -> Vec<u8> {
    let mut v = base.to_vec();
    v.extend_from_slice(b":2,");
    for c in (b'A'..=b'Z').chain(b'a'..=b'z') {
        if flags & bit(c) != 0 {
            v.push(c);
        }
    }
    v
}

/// `,S=n` or `,W=n` from a base name.
pub fn name_size(base: &[u8], key: u8) -> Option<u64> {
    let pat = [b',', key, b'='];
    let i = memchr::memmem::find(base, &pat)? + 3;
    let end = base[i..]
        .iter()
        .position(|c| !c.is_ascii_digit())
        .map(|e| i + e)
        .unwrap_or(base.len());
    crate::parse::number(&base[i..end])
}

/// One message as a session sees it.
#[derive(Clone, Debug)]
pub struct Msg {
    pub uid: u32,
    pub base: Vec<u8>,
    pub name: Vec<u8>,
    pub flags: u64,
    pub recent: bool,
    pub size: Option<u64>,
    /// Still in new/ (an EXAMINE session does not move files).
    pub new: bool,
    /// Its mod-sequence (RFC 7162, see modseq.rs).
    pub modseq: u64,
}

/// What changed since the last look, for untagged responses.
#[derive(Default, Debug)]
pub struct Changes {
    /// Sequence numbers gone, highest first (send in this order).
    pub expunged: Vec<u32>,
    pub exists: bool,
    pub recent: usize,
    /// Sequence numbers (after the expunges) whose flags changed.
    pub flags: Vec<u32>,
    /// UIDs of the expunged messages (QRESYNC's VANISHED).
    pub vanished: Vec<u32>,
}

/// The flock on a folder; released when dropped.
pub struct Lock(#[allow(dead_code)] fs::File);

pub fn lock(dir: &Path) -> io::Result<Lock> {
    locked(&dir.join(LOCKFILE)).map(Lock)
}

/// Opens (or creates, mode 0600) `path` and takes an exclusive flock on it.
fn locked(path: &Path) -> io::Result<fs::File> {
    let f = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)?;
    crate::sys::locks::lock(f.as_raw_fd())?;
    Ok(f)
}

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

/// The names in a directory that do not start with `.`.
pub fn names(dir: &Path) -> io::Result<Vec<Vec<u8>>> {
    let mut v = Vec::new();
    for e in fs::read_dir(dir)? {
        let e = e?;
        let n = e.file_name();
        let b = n.as_bytes();
        if !b.is_empty() && b[0] != b'.' {
            v.push(b.to_vec());
        }
    }
    Ok(v)
}

fn p(dir: &Path, sub: &str, name: &[u8]) -> PathBuf {
    dir.join(sub).join(OsStr::from_bytes(name))
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

/// Replaces a small file atomically: temporary file, fsync, rename.
pub fn replace(path: &Path, data: &[u8]) -> io::Result<()> {
    let mut tmp = path.as_os_str().to_os_string();
    tmp.push(format!(".tmp{}", std::process::id()));
    let tmp = PathBuf::from(tmp);
    let r = (|| {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if r.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    r
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
type Located = FastMap<Vec<u8>, (Vec<u8>, bool)>;

fn located(dir: &Path, new: bool) -> io::Result<Located> {
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

/// A selected (or examined) folder.
pub struct Folder {
    pub dir: PathBuf,
    pub validity: u32,
    pub next_uid: u32,
    pub msgs: Vec<Msg>,
    pub keywords: Vec<Vec<u8>>,
    pub readonly: bool,
    /// ENVELOPE/BODY/BODYSTRUCTURE answers (see cache.rs), loaded lazily.
    pub cache: Option<super::cache::Cache>,
    /// Answers computed in this command, to append to the cache file.
    pub cache_new: Vec<(u32, u8, Vec<u8>)>,
    /// What cur/, new/ and the state file looked like after the last sync.
    pub stamp: Option<Vec<(i64, i64, u64, u64)>>,
    /// HIGHESTMODSEQ; None: NOMODSEQ.
    pub highest: Option<u64>,
}

impl Folder {
    pub fn open(dir: PathBuf, readonly: bool) -> io::Result<Folder> {
        if !dir.join("cur").is_dir() {
            return Err(io::Error::from_raw_os_error(libc::ENOENT));
        }
        let mut f = Folder {
            dir,
            validity: 0,
            next_uid: 1,
            msgs: Vec::new(),
            keywords: Vec::new(),
            readonly,
            cache: None,
            cache_new: Vec::new(),
            stamp: None,
            highest: None,
        };
        f.sync()?;
        Ok(f)
    }

    pub fn lock(&self) -> io::Result<Lock> {
        lock(&self.dir)
    }

    /// Looks at the disk and returns what changed for this session.
    pub fn sync(&mut self) -> io::Result<Changes> {
        // Nothing changed when cur/, new/ and the state file look as they
        // did after the last sync (a cheap NOOP on a big folder).
        if self.stamp.is_some() && self.stamp == self.stamp_now() {
            return Ok(Changes::default());
        }
        let _l = self.lock()?;
        self.sync_locked()
    }

    /// Modification times, inodes and sizes of what a change touches; None
    /// when one of them changed in the last two seconds (a change in the
    /// same clock tick could then go unseen).
    fn stamp_now(&self) -> Option<Vec<(i64, i64, u64, u64)>> {
        let now = crate::sys::now() as i64;
        let mut v = Vec::with_capacity(3);
        for p in [
            self.dir.join("cur"),
            self.dir.join("new"),
            self.dir.join(UIDLIST),
            self.dir.join(KEYWORDS),
        ] {
            match fs::metadata(&p) {
                Ok(m) => {
                    if m.mtime() >= now - 2 {
                        return None;
                    }
                    v.push((m.mtime(), m.mtime_nsec(), m.ino(), m.size()));
                }
                Err(_) => v.push((0, 0, 0, 0)),
            }
        }
        Some(v)
    }

    pub fn sync_locked(&mut self) -> io::Result<Changes> {
        let r = self.sync_scan();
        self.stamp = if r.is_ok() { self.stamp_now() } else { None };
        r
    }

    fn sync_scan(&mut self) -> io::Result<Changes> {
        let s = scan(&self.dir, !self.readonly)?;
        self.keywords = read_keywords(&self.dir);
        self.validity = s.validity;
        self.next_uid = s.next;
        self.highest = s.highest;
        let old = std::mem::take(&mut self.msgs);
        let mut ch = Changes::default();
        let mut msgs = Vec::with_capacity(s.list.len());
        let mut oi = 0;
        for Entry {
            uid,
            base,
            name,
            new,
            modseq,
        } in s.list
        {
            while oi < old.len() && old[oi].uid < uid {
                ch.expunged.push(oi as u32 + 1);
                ch.vanished.push(old[oi].uid);
                oi += 1;
            }
            let flags = flags_of(&name);
            if oi < old.len() && old[oi].uid == uid {
                let o = &old[oi];
                if o.flags != flags || o.modseq != modseq {
                    ch.flags.push(msgs.len() as u32 + 1);
                }
                msgs.push(Msg {
                    uid,
                    base,
                    name,
                    flags,
                    recent: o.recent,
                    size: o.size,
                    new,
                    modseq,
                });
                oi += 1;
            } else {
                let recent = new || s.fresh.contains(&base);
                if recent {
                    ch.recent += 1;
                }
                ch.exists = true;
                msgs.push(Msg {
                    uid,
                    base,
                    name,
                    flags,
                    recent,
                    size: None,
                    new,
                    modseq,
                });
            }
        }
        while oi < old.len() {
            ch.expunged.push(oi as u32 + 1);
            ch.vanished.push(old[oi].uid);
            oi += 1;
        }
        ch.expunged.reverse();
        self.msgs = msgs;
        // The session's cache keeps only messages that are still there.
        if let (Some(c), false) = (self.cache.as_mut(), ch.expunged.is_empty()) {
            let live: HashSet<u32> = self.msgs.iter().map(|m| m.uid).collect();
            c.retain(|k, _| live.contains(&k.0));
        }
        Ok(ch)
    }

    /// Re-reads the names in cur/ (another session renamed files).
    pub fn refresh_names(&mut self) -> io::Result<()> {
        let m = located(&self.dir, true)?;
        for msg in &mut self.msgs {
            if let Some((n, new)) = m.get(&msg.base) {
                msg.flags = flags_of(n);
                msg.name = n.clone();
                msg.new = *new;
            }
        }
        Ok(())
    }

    pub fn path(&self, i: usize) -> PathBuf {
        let m = &self.msgs[i];
        p(&self.dir, if m.new { "new" } else { "cur" }, &m.name)
    }

    /// The message bytes as stored (None when it went away).
    pub fn read(&mut self, i: usize) -> io::Result<Option<Vec<u8>>> {
        for attempt in 0..2 {
            match fs::read(self.path(i)) {
                Ok(d) => return Ok(Some(d)),
                Err(e) if e.kind() == io::ErrorKind::NotFound && attempt == 0 => {
                    self.refresh_names()?
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(e),
            }
        }
        Ok(None)
    }

    /// RFC822.SIZE: the size with CRLF line ends (`,W=` when the name has it).
    pub fn size(&mut self, i: usize) -> io::Result<u64> {
        if let Some(s) = self.msgs[i].size {
            return Ok(s);
        }
        let s = match name_size(&self.msgs[i].base, b'W') {
            Some(w) => w,
            None => match self.read(i)? {
                Some(d) => crlf_size(&d),
                None => 0,
            },
        };
        self.msgs[i].size = Some(s);
        Ok(s)
    }

    /// INTERNALDATE: the file's mtime.
    pub fn date(&mut self, i: usize) -> i64 {
        for attempt in 0..2 {
            match fs::metadata(self.path(i)) {
                Ok(m) => return m.mtime(),
                Err(_) if attempt == 0 => {
                    let _ = self.refresh_names();
                }
                Err(_) => {}
            }
        }
        0
    }

    /// Sets message `i`'s flags to `f(current)`, reading the current flags
    /// from disk when another session changed them. Call with the lock held.
    pub fn set_flags(&mut self, i: usize, f: &dyn Fn(u64) -> u64) -> io::Result<bool> {
        for attempt in 0..2 {
            let m = &self.msgs[i];
            let nf = (f(m.flags) & MANAGED) | (m.flags & !MANAGED);
            if nf == m.flags {
                return Ok(false);
            }
            let nn = name_with(&m.base, nf);
            match fs::rename(p(&self.dir, "cur", &m.name), p(&self.dir, "cur", &nn)) {
                Ok(()) => {
                    let m = &mut self.msgs[i];
                    m.name = nn;
                    m.flags = nf;
                    self.stamp = None;
                    return Ok(true);
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound && attempt == 0 => {
                    self.refresh_names()?
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
                Err(e) => return Err(e),
            }
        }
        Ok(false)
    }

    /// The keyword letter for `name`, allocating one (under the lock held
    /// by the caller) when `create`. None when all 26 are taken.
    pub fn keyword(&mut self, name: &[u8], create: bool) -> io::Result<Option<u8>> {
        keyword_letter(&self.dir, &mut self.keywords, name, create)
    }

    /// Index of the message with `uid`.
    pub fn by_uid(&self, uid: u32) -> Option<usize> {
        self.msgs.binary_search_by_key(&uid, |m| m.uid).ok()
    }

    /// Deletes the files of messages with \Deleted (and `pick(uid)`),
    /// under the lock; the next sync reports them.
    pub fn expunge_files(&mut self, pick: &dyn Fn(u32) -> bool) -> io::Result<Vec<u32>> {
        let _l = self.lock()?;
        self.stamp = None;
        self.refresh_names()?;
        let mut gone = Vec::new();
        for m in &self.msgs {
            if m.flags & DELETED != 0 && pick(m.uid) {
                match fs::remove_file(p(&self.dir, "cur", &m.name)) {
                    Ok(()) => gone.push(m.uid),
                    Err(e) if e.kind() == io::ErrorKind::NotFound => gone.push(m.uid),
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(gone)
    }
}

/// The size of a stored message as IMAP sends it ([`to_crlf`]): the
/// Maildir rule (lib/maildir.rs [`crate::maildir::Sizes::sent`]) that
/// deliveries write into `,W=` and pop3d counts too.
pub fn crlf_size(d: &[u8]) -> u64 {
    let mut s = crate::maildir::Sizes::default();
    s.add(d);
    s.sent()
}

/// The message as sent: every bare LF made CRLF, and a last line without
/// its line end completed (as pop3d sends it), so that BODY[] has exactly
/// the RFC822.SIZE that `,W=` says.
pub fn to_crlf(d: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(d.len() + d.len() / 30 + 2);
    let mut last = 0;
    for i in memchr::memchr_iter(b'\n', d) {
        if i == 0 || d[i - 1] != b'\r' {
            out.extend_from_slice(&d[last..i]);
            out.extend_from_slice(b"\r\n");
        } else {
            out.extend_from_slice(&d[last..=i]);
        }
        last = i + 1;
    }
    out.extend_from_slice(&d[last..]);
    match out.last() {
        None | Some(b'\n') => {}
        Some(b'\r') => out.push(b'\n'),
        Some(_) => out.extend_from_slice(b"\r\n"),
    }
    out
}

/// The message with CRLF made LF (how deliveries store mail).
pub fn to_lf(d: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(d.len());
    let mut i = 0;
    while i < d.len() {
        if d[i] == b'\r' && d.get(i + 1) == Some(&b'\n') {
            i += 1;
            continue;
        }
        out.push(d[i]);
        i += 1;
    }
    out
}

/// The letter of keyword `name` in folder `dir` (`kw` is its cached
/// table), allocating one when `create` (caller holds the lock). None when
/// unknown or when all 26 letters are taken.
pub fn keyword_letter(
    dir: &Path,
    kw: &mut Vec<Vec<u8>>,
    name: &[u8],
    create: bool,
) -> io::Result<Option<u8>> {
    if let Some(i) = kw.iter().position(|k| k.eq_ignore_ascii_case(name)) {
        return Ok(Some(b'a' + i as u8));
    }
    if !create {
        return Ok(None);
    }
    *kw = read_keywords(dir);
    if let Some(i) = kw.iter().position(|k| k.eq_ignore_ascii_case(name)) {
        return Ok(Some(b'a' + i as u8));
    }
    let i = match kw.iter().position(|k| k.is_empty()) {
        Some(i) => i,
        None if kw.len() < 26 => {
            kw.push(Vec::new());
            kw.len() - 1
        }
        None => return Ok(None),
    };
    kw[i] = name.to_vec();
    write_keywords(dir, kw)?;
    Ok(Some(b'a' + i as u8))
}

pub fn read_keywords(dir: &Path) -> Vec<Vec<u8>> {
    let data = fs::read(dir.join(KEYWORDS)).unwrap_or_default();
    let mut v: Vec<Vec<u8>> = Vec::new();
    for l in data.split(|&c| c == b'\n') {
        let sp = match memchr::memchr(b' ', l) {
            Some(i) => i,
            None => continue,
        };
        let i = match crate::parse::number(&l[..sp]) {
            Some(i) if i < 26 => i as usize,
            _ => continue,
        };
        if v.len() <= i {
            v.resize(i + 1, Vec::new());
        }
        v[i] = l[sp + 1..].to_vec();
    }
    v
}

fn write_keywords(dir: &Path, k: &[Vec<u8>]) -> io::Result<()> {
    let mut out = Vec::new();
    for (i, n) in k.iter().enumerate() {
        if !n.is_empty() {
            out.extend_from_slice(format!("{} ", i).as_bytes());
            out.extend_from_slice(n);
            out.push(b'\n');
        }
    }
    replace(&dir.join(KEYWORDS), &out)
}

/// A unique Maildir base name carrying `,S=` and `,W=`.
pub fn unique(lf_size: u64, crlf: u64) -> Vec<u8> {
    static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let now = crate::sys::now_us();
    let host: Vec<u8> = crate::sys::hostname()
        .iter()
        .map(|&c| {
            if c == b'/' || c == b':' || c == b',' {
                b'_'
            } else {
                c
            }
        })
        .collect();
    let mut v = format!(
        "{}.M{:06}P{}Q{:06}R{}.",
        now / 1_000_000,
        now % 1_000_000,
        std::process::id(),
        SEQ.fetch_add(1, std::sync::atomic::Ordering::SeqCst),
        crate::sys::random_hex(4)
    )
    .into_bytes();
    v.extend_from_slice(&host);
    v.extend_from_slice(format!(",S={},W={}", lf_size, crlf).as_bytes());
    v
}

/// Creates a message file: mode 0600 as deliveries do, whatever the umask.
fn new_file(path: &Path) -> io::Result<fs::File> {
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
}

/// The name of a message written into new/ (APPEND, COPY, MOVE): \Recent
/// for the session that takes it; flags, when there are any, ride along.
fn new_name(base: &[u8], flags: u64) -> Vec<u8> {
    if flags == 0 {
        base.to_vec()
    } else {
        name_with(base, flags)
    }
}

/// Writes `msg` (CRLF or LF; stored with LF) into folder `dir` as new/
/// with `flags` and mtime `date`; returns the base name. Durable on return.
pub fn deliver(dir: &Path, msg: &[u8], flags: u64, date: Option<i64>) -> io::Result<Vec<u8>> {
    let lf = to_lf(msg);
    let base = unique(lf.len() as u64, crlf_size(&lf));
    let tmp = p(dir, "tmp", &base);
    let r = (|| {
        let mut f = new_file(&tmp)?;
        f.write_all(&lf)?;
        f.sync_all()?;
        drop(f);
        if let Some(t) = date {
            crate::sys::fs::set_mtime(&tmp, t)?;
        }
        fs::rename(&tmp, p(dir, "new", &new_name(&base, flags)))?;
        crate::sys::fsync_dir(&dir.join("new"))
    })();
    if r.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    r.map(|_| base)
}

/// Links (or copies) the file `src` into folder `dir` as a new message
/// (in new/) with `flags`; returns the new base. The mtime (INTERNALDATE)
/// is kept. The caller syncs new/.
pub fn copy_in(dir: &Path, src: &Path, src_base: &[u8], flags: u64) -> io::Result<Vec<u8>> {
    let s = name_size(src_base, b'S');
    let w = name_size(src_base, b'W');
    let (s, w) = match (s, w) {
        (Some(s), Some(w)) => (s, w),
        _ => {
            let d = fs::read(src)?;
            (d.len() as u64, crlf_size(&d))
        }
    };
    let base = unique(s, w);
    let dst = p(dir, "new", &new_name(&base, flags));
    match fs::hard_link(src, &dst) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(e),
        Err(_) => {
            let d = fs::read(src)?;
            let t = fs::metadata(src)?.mtime();
            let tmp = p(dir, "tmp", &base);
            let mut f = new_file(&tmp)?;
            f.write_all(&d)?;
            f.sync_all()?;
            crate::sys::fs::set_mtime(&tmp, t)?;
            fs::rename(&tmp, &dst)?;
        }
    }
    Ok(base)
}

/// Whether `name` can be a folder name (modified UTF-7, no empty
/// components, nothing that walks the file system).
pub fn valid_name(name: &[u8]) -> bool {
    !name.is_empty()
        && name.len() <= 512
        && !name.contains(&b'/')
        && name.split(|&c| c == b'.').all(|c| !c.is_empty())
        && super::utf7::decode(name).is_some()
}

pub fn is_inbox(name: &[u8]) -> bool {
    name.eq_ignore_ascii_case(b"INBOX")
}

/// The directory of folder `name` under `root`; None when the name is bad.
pub fn folder_dir(root: &Path, name: &[u8]) -> Option<PathBuf> {
    if is_inbox(name) {
        return Some(root.to_path_buf());
    }
    if !valid_name(name) {
        return None;
    }
    let mut d = b".".to_vec();
    d.extend_from_slice(name);
    Some(root.join(OsStr::from_bytes(&d)))
}

/// Every folder except INBOX, sorted.
pub fn folders(root: &Path) -> io::Result<Vec<Vec<u8>>> {
    let mut v = Vec::new();
    for e in fs::read_dir(root)? {
        let e = e?;
        let n = e.file_name();
        let b = n.as_bytes();
        // A name that is not modified UTF-7 can be neither listed nor
        // selected: maildir-make and CREATE never make one.
        if b.len() > 1
            && b[0] == b'.'
            && b != b".."
            && valid_name(&b[1..])
            && e.path().join("cur").is_dir()
        {
            v.push(b[1..].to_vec());
        }
    }
    v.sort();
    Ok(v)
}

/// Creates folder `name`: built in tmp/ and renamed into place, so it
/// appears whole or not at all. AlreadyExists when it is there.
pub fn create(root: &Path, name: &[u8]) -> io::Result<()> {
    let dir = folder_dir(root, name).ok_or_else(|| io::Error::from_raw_os_error(libc::EINVAL))?;
    if dir.exists() {
        return Err(io::Error::from(io::ErrorKind::AlreadyExists));
    }
    let tmp = root.join("tmp").join(format!(
        ".create.{}.{}",
        std::process::id(),
        crate::sys::random_hex(6)
    ));
    let made = (|| {
        let mut b = fs::DirBuilder::new();
        b.mode(0o700).create(&tmp)?;
        for s in ["cur", "new", "tmp"] {
            b.create(tmp.join(s))?;
        }
        new_file(&tmp.join("maildirfolder")).map(drop)
    })();
    if let Err(e) = made {
        let _ = fs::remove_dir_all(&tmp);
        return Err(e);
    }
    match fs::rename(&tmp, &dir) {
        Ok(()) => Ok(()),
        Err(e) => {
            let _ = fs::remove_dir_all(&tmp);
            if e.raw_os_error() == Some(libc::ENOTEMPTY) || e.raw_os_error() == Some(libc::EEXIST) {
                Err(io::Error::from(io::ErrorKind::AlreadyExists))
            } else {
                Err(e)
            }
        }
    }
}

/// Deletes folder `name` (not its children): renamed into tmp/ first.
pub fn delete(root: &Path, name: &[u8]) -> io::Result<()> {
    let dir = folder_dir(root, name).ok_or_else(|| io::Error::from_raw_os_error(libc::EINVAL))?;
    let tmp = root.join("tmp").join(format!(
        ".deleted.{}.{}",
        std::process::id(),
        crate::sys::random_hex(6)
    ));
    fs::rename(&dir, &tmp)?;
    fs::remove_dir_all(&tmp)
}

/// Renames folder `old` and its children to `new`. INBOX as `old` moves
/// its messages into a new folder and leaves INBOX empty (RFC 3501).
pub fn rename(root: &Path, old: &[u8], new: &[u8]) -> io::Result<()> {
    let nd = folder_dir(root, new).ok_or_else(|| io::Error::from_raw_os_error(libc::EINVAL))?;
    if is_inbox(new) || nd.exists() {
        return Err(io::Error::from(io::ErrorKind::AlreadyExists));
    }
    if is_inbox(old) {
        create(root, new)?;
        let _l = lock(root)?;
        for sub in ["new", "cur"] {
            for n in names(&root.join(sub))? {
                match fs::rename(p(root, sub, &n), p(&nd, sub, &n)) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e),
                }
            }
        }
        return Ok(());
    }
    let od = folder_dir(root, old).ok_or_else(|| io::Error::from_raw_os_error(libc::EINVAL))?;
    let all = folders(root)?;
    let mut prefix = old.to_vec();
    prefix.push(b'.');
    let children: Vec<Vec<u8>> = all
        .iter()
        .filter(|f| f.starts_with(&prefix))
        .cloned()
        .collect();
    for c in &children {
        let mut n = new.to_vec();
        n.extend_from_slice(&c[old.len()..]);
        if folder_dir(root, &n).map(|d| d.exists()).unwrap_or(true) {
            return Err(io::Error::from(io::ErrorKind::AlreadyExists));
        }
    }
    if od.exists() {
        fs::rename(&od, &nd)?;
    } else if children.is_empty() {
        return Err(io::Error::from(io::ErrorKind::NotFound));
    }
    for c in &children {
        let mut n = new.to_vec();
        n.extend_from_slice(&c[old.len()..]);
        if let (Some(a), Some(b)) = (folder_dir(root, c), folder_dir(root, &n)) {
            fs::rename(a, b)?;
        }
    }
    Ok(())
}

/// The subscribed names, one per line of `subscriptions`.
pub fn subscriptions(root: &Path) -> Vec<Vec<u8>> {
    let d = fs::read(root.join("subscriptions")).unwrap_or_default();
    d.split(|&c| c == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| l.to_vec())
        .collect()
}

pub fn set_subscribed(root: &Path, name: &[u8], on: bool) -> io::Result<()> {
    let _l = lock(root)?;
    let mut s = subscriptions(root);
    let had = s.iter().any(|x| x == name);
    if on == had {
        return Ok(());
    }
    if on {
        s.push(name.to_vec());
    } else {
        s.retain(|x| x != name);
    }
    let mut out = Vec::new();
    for n in s {
        out.extend_from_slice(&n);
        out.push(b'\n');
    }
    replace(&root.join("subscriptions"), &out)
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn names_and_flags() {
        assert_eq!(base_of(b"123.M1P2.h,S=10:2,FS"), b"123.M1P2.h,S=10");
        assert_eq!(flags_of(b"x:2,FSa"), FLAGGED | SEEN | bit(b'a'));
        assert_eq!(
            name_with(b"x", SEEN | FLAGGED | bit(b'b') | bit(b'P')),
            b"x:2,FPSb"
        );
        assert_eq!(name_size(b"1.2.h,S=10,W=12", b'W'), Some(12));
        assert_eq!(name_size(b"1.2.h", b'S'), None);
        // A last line without its line end is completed, in the size too.
        for (d, sent) in [
            (&b"a\nb\r\nc"[..], &b"a\r\nb\r\nc\r\n"[..]),
            (b"a\nb\r\n", b"a\r\nb\r\n"),
            (b"x\r", b"x\r\n"),
            (b"", b""),
        ] {
            assert_eq!(to_crlf(d), sent);
            assert_eq!(crlf_size(d), sent.len() as u64);
        }
        assert_eq!(to_lf(b"a\r\nb\rc"), b"a\nb\rc");
    }
    #[test]
    fn folder_names() {
        assert!(valid_name(b"a.b"));
        assert!(!valid_name(b"a..b"));
        assert!(!valid_name(b".a"));
        assert!(!valid_name(b"a/b"));
        assert!(!valid_name(b"a."));
        assert!(!valid_name(b"\xc3\xbc"));
    }
}

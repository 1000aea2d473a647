//! The selected folder of an imapd session: its messages with UIDs
//! (from [`super::uidlist`]), flags and sizes, what changed since the last
//! look, and writing messages in (APPEND, COPY, MOVE). Names, sizes, flag
//! letters and the folder tree are the Maildir module's ([`crate::maildir`]).

use super::keywords::KEYWORDS;
use super::uidlist::{located, UIDLIST};
use crate::maildir::flags::{name_with, MANAGED};
use crate::maildir::lines::{sent_size, to_lf};
use crate::maildir::name::{size_in, Unique};
use crate::maildir::{path as p, Lock};
use std::collections::HashSet;
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

// What session.rs (and the condstore branch's modseq.rs) reach through
// `store::` while session.rs is being split on another branch; each name
// is owned by the module it comes from, and this block goes when the
// callers name those modules.
pub use super::keywords::{keyword_letter, read_keywords};
pub use super::uidlist::{scan, Entry, FastMap};
pub use crate::maildir::flags::{bit, flags_of, DELETED, SEEN, SYSFLAGS};
pub use crate::maildir::folder::{
    create, delete, folder_dir, folders, is_inbox, rename, set_subscribed, subscriptions,
    valid_name,
};
pub use crate::maildir::lines::to_crlf;
pub use crate::maildir::{lock, replace};

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
            c.retain(&|u| live.contains(&u));
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
        let s = match size_in(&self.msgs[i].base, b'W') {
            Some(w) => w,
            None => match self.read(i)? {
                Some(d) => sent_size(&d),
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

/// A message written and synced in a folder's tmp/, not yet in the
/// folder; removed when dropped before [`deliver`] moved it.
pub struct Written {
    tmp: PathBuf,
    base: Vec<u8>,
    done: bool,
}

impl Drop for Written {
    fn drop(&mut self) {
        if !self.done {
            let _ = fs::remove_file(&self.tmp);
        }
    }
}

/// Writes `msg` (CRLF or LF; stored with LF) into tmp/ of folder `dir`
/// with mtime `date` and syncs it. Needs no lock: sessions that APPEND at
/// once write and sync their messages at once.
pub fn write_tmp(dir: &Path, msg: &[u8], date: Option<i64>) -> io::Result<Written> {
    let lf = to_lf(msg);
    let base = Unique::new().name(None, Some((lf.len() as u64, sent_size(&lf))));
    let w = Written {
        tmp: p(dir, "tmp", &base),
        base,
        done: false,
    };
    let mut f = new_file(&w.tmp)?;
    f.write_all(&lf)?;
    f.sync_all()?;
    drop(f);
    if let Some(t) = date {
        crate::sys::fs::set_mtime(&w.tmp, t)?;
    }
    Ok(w)
}

/// Moves a written message into new/ of its folder with `flags`; returns
/// the base name. Durable on return.
pub fn deliver(dir: &Path, mut w: Written, flags: u64) -> io::Result<Vec<u8>> {
    fs::rename(&w.tmp, p(dir, "new", &new_name(&w.base, flags)))?;
    w.done = true;
    crate::sys::fsync_dir(&dir.join("new"))?;
    Ok(std::mem::take(&mut w.base))
}

/// Links (or copies) the file `src` into folder `dir` as a new message
/// (in new/) with `flags`; returns the new base. The mtime (INTERNALDATE)
/// is kept. The caller syncs new/.
pub fn copy_in(dir: &Path, src: &Path, src_base: &[u8], flags: u64) -> io::Result<Vec<u8>> {
    let s = size_in(src_base, b'S');
    let w = size_in(src_base, b'W');
    let (s, w) = match (s, w) {
        (Some(s), Some(w)) => (s, w),
        _ => {
            let d = fs::read(src)?;
            (d.len() as u64, sent_size(&d))
        }
    };
    let base = Unique::new().name(None, Some((s, w)));
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

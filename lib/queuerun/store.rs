//! The queue on disk (pipemail-queue(5)). Everything under queue/ except
//! drop/ and trigger belongs to queue-run:
//!
//! - `mess/ID`  the message (queue-inject's `Received:` line first), 0600;
//!   **its existence is the job's existence** once the journal has its
//!   record;
//! - `jobs`     the journal: one record per job (birth, submitter uid,
//!   size, sender, recipients with their channel), appended and
//!   fdatasync'd once per takeover batch ([`Journal`]);
//! - `info/ID`  the job as queues before the journal kept it (read, never
//!   written); the directory itself is queue-run's lock;
//! - `state/ID` append-only outcome records, each NUL-terminated and
//!   fsync'd before the delivery is forgotten;
//! - `tmp/` scratch, emptied at start; `quarantine/` drop files that
//!   failed validation; `ctl` the administrator's fifo (queue-ctl(8)).
//!
//! Takeover of `drop/ID` (one file: message, envelope section, tail; see
//! queue.rs), a scan's submissions in one batch, each step idempotent:
//!
//! 1. validate; our own file is renamed to `mess/ID` as it is, another
//!    uid's message part is copied (fsync'd; mess/ fsync'd once);
//! 2. append every job's record to `jobs` and fdatasync it once: the
//!    commit point (no file is created per job);
//! 3. cut a moved file back to its message part; remove a copy's original.
//!
//! After a crash: `mess/ID` without a record that still ends with its own
//! tail goes back to drop/ (step 1 again); a record with its file still in
//! drop/ moves it; a `mess/ID` longer than its record's size is cut again.
//! Removal of a finished job: `mess/ID` and `state/ID`, one fsync of mess/
//! for the batch (the commit point); a record without `mess/ID` is dead.

use crate::queue::{parse_section, received_uid, tail_offset, Envelope, MAX_ENVELOPE, TAIL_LEN};
use crate::users::{route, Route};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Half-made drop files older than this are removed (qmail's OSSIFIED).
pub const OSSIFIED: u64 = 129600;
/// An envelope that does not parse is left alone this many seconds before
/// it is quarantined: a hand-made submission may still be being written.
pub const YOUNG: u64 = 600;

/// The queue's directories.
#[derive(Clone, Debug)]
pub struct Dirs {
    pub queue: PathBuf,
}

impl Dirs {
    pub fn new() -> Dirs {
        Dirs {
            queue: crate::queue::queue_dir(),
        }
    }
    pub fn sub(&self, name: &str) -> PathBuf {
        self.queue.join(name)
    }
    pub fn drop_dir(&self) -> PathBuf {
        self.sub("drop")
    }
    pub fn mess(&self, id: &str) -> PathBuf {
        self.queue.join("mess").join(id)
    }
    pub fn info(&self, id: &str) -> PathBuf {
        self.queue.join("info").join(id)
    }
    pub fn state(&self, id: &str) -> PathBuf {
        self.queue.join("state").join(id)
    }
    /// Creates the private directories (mode 0700) when missing.
    pub fn create(&self) -> io::Result<()> {
        use std::os::unix::fs::DirBuilderExt;
        for d in ["mess", "info", "state", "tmp", "quarantine"] {
            let p = self.sub(d);
            if !p.is_dir() {
                fs::DirBuilder::new().mode(0o700).create(&p)?;
            }
        }
        Ok(())
    }
    /// The ids in a directory (names that are valid ids), sorted.
    pub fn ids(&self, dir: &str) -> io::Result<Vec<String>> {
        let mut v = Vec::new();
        for e in fs::read_dir(self.sub(dir))? {
            let e = e?;
            if let Some(n) = e.file_name().to_str() {
                if super::valid_id(n.as_bytes()) {
                    v.push(n.to_string());
                }
            }
        }
        v.sort();
        Ok(v)
    }
}

impl Default for Dirs {
    fn default() -> Self {
        Dirs::new()
    }
}

/// One recipient: the address as submitted, and for the local channel the
/// address deliver-local gets (after virtualdomains); None = remote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rcpt {
    pub addr: Vec<u8>,
    pub local: Option<Vec<u8>>,
}

/// A job: a journal record (queue/jobs) or, in an old queue, `info/ID`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Info {
    pub birth: u64,
    pub uid: u32,
    pub size: u64,
    pub sender: Vec<u8>,
    pub rcpts: Vec<Rcpt>,
}

impl Info {
    /// `b`birth NUL `u`uid NUL `s`size NUL `F`sender NUL, then per
    /// recipient `L`addr NUL rewritten NUL or `R`addr NUL.
    pub fn encode(&self) -> Vec<u8> {
        let mut v = format!("b{}\0u{}\0s{}\0", self.birth, self.uid, self.size).into_bytes();
        v.push(b'F');
        v.extend_from_slice(&self.sender);
        v.push(0);
        for r in &self.rcpts {
            match &r.local {
                Some(l) => {
                    v.push(b'L');
                    v.extend_from_slice(&r.addr);
                    v.push(0);
                    v.extend_from_slice(l);
                    v.push(0);
                }
                None => {
                    v.push(b'R');
                    v.extend_from_slice(&r.addr);
                    v.push(0);
                }
            }
        }
        v
    }

    pub fn decode(b: &[u8]) -> Option<Info> {
        let mut f = b.split(|&c| c == 0);
        let num = |x: Option<&[u8]>, k: u8| -> Option<u64> {
            let x = x?;
            if x.first() != Some(&k) {
                return None;
            }
            crate::parse::number(&x[1..])
        };
        let birth = num(f.next(), b'b')?;
        let uid = num(f.next(), b'u')? as u32;
        let size = num(f.next(), b's')?;
        let s = f.next()?;
        if s.first() != Some(&b'F') {
            return None;
        }
        let sender = s[1..].to_vec();
        let mut rcpts = Vec::new();
        while let Some(r) = f.next() {
            match r.first() {
                None => continue, // the split's empty tail
                Some(b'L') => rcpts.push(Rcpt {
                    addr: r[1..].to_vec(),
                    local: Some(f.next()?.to_vec()),
                }),
                Some(b'R') => rcpts.push(Rcpt {
                    addr: r[1..].to_vec(),
                    local: None,
                }),
                _ => return None,
            }
        }
        if rcpts.is_empty() || !b.ends_with(b"\0") {
            return None;
        }
        Some(Info {
            birth,
            uid,
            size,
            sender,
            rcpts,
        })
    }
}

/// One outcome record in `state/ID`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rec {
    /// `K`i: recipient i delivered.
    Done(usize),
    /// `D`i text: recipient i failed for good (goes into the bounce).
    Failed(usize, Vec<u8>),
    /// `Z`i time text: recipient i deferred at time.
    Deferred(usize, u64, Vec<u8>),
    /// `X`i: recipient i removed by the administrator, no bounce.
    Removed(usize),
    /// `H` / `U`: held / released by the administrator.
    Hold,
    Release,
    /// `B`: the failures before it are bounced (or need no bounce).
    Bounced,
    /// `W`: the delay notice for this job is queued.
    Warned,
}

fn clean_text(t: &[u8]) -> Vec<u8> {
    t.iter().map(|&c| if c == 0 { b' ' } else { c }).collect()
}

impl Rec {
    pub fn encode(&self) -> Vec<u8> {
        let mut v = match self {
            Rec::Done(i) => format!("K{}", i).into_bytes(),
            Rec::Failed(i, t) => {
                let mut v = format!("D{} ", i).into_bytes();
                v.extend_from_slice(&clean_text(t));
                v
            }
            Rec::Deferred(i, at, t) => {
                let mut v = format!("Z{} {} ", i, at).into_bytes();
                v.extend_from_slice(&clean_text(t));
                v
            }
            Rec::Removed(i) => format!("X{}", i).into_bytes(),
            Rec::Hold => b"H".to_vec(),
            Rec::Release => b"U".to_vec(),
            Rec::Bounced => b"B".to_vec(),
            Rec::Warned => b"W".to_vec(),
        };
        v.push(0);
        v
    }

    pub fn decode(r: &[u8]) -> Option<Rec> {
        let (&k, rest) = r.split_first()?;
        let word = |b: &[u8]| -> (Option<u64>, Vec<u8>) {
            match memchr::memchr(b' ', b) {
                Some(i) => (crate::parse::number(&b[..i]), b[i + 1..].to_vec()),
                None => (crate::parse::number(b), Vec::new()),
            }
        };
        Some(match k {
            b'K' => Rec::Done(crate::parse::number(rest)? as usize),
            b'X' => Rec::Removed(crate::parse::number(rest)? as usize),
            b'D' => {
                let (i, t) = word(rest);
                Rec::Failed(i? as usize, t)
            }
            b'Z' => {
                let (i, t) = word(rest);
                let (at, t) = word(&t);
                Rec::Deferred(i? as usize, at?, t)
            }
            b'H' => Rec::Hold,
            b'U' => Rec::Release,
            b'B' => Rec::Bounced,
            b'W' => Rec::Warned,
            _ => return None,
        })
    }
}

/// Appends one record; with `sync`, fsyncs it before returning.
pub fn append(path: &Path, rec: &Rec, sync: bool) -> io::Result<()> {
    let mut f = OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .custom_flags(libc::O_CLOEXEC)
        .open(path)?;
    f.write_all(&rec.encode())?;
    if sync {
        f.sync_data()?;
    }
    Ok(())
}

/// The records of a state file (missing file: none). A torn last record
/// (power loss in the middle of an append) is cut off.
pub fn load_state(path: &Path, repair: bool) -> io::Result<Vec<Rec>> {
    let b = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let end = memchr::memrchr(0, &b).map(|i| i + 1).unwrap_or(0);
    if repair && end != b.len() {
        OpenOptions::new()
            .write(true)
            .open(path)?
            .set_len(end as u64)?;
    }
    Ok(b[..end]
        .split(|&c| c == 0)
        .filter(|r| !r.is_empty())
        .filter_map(Rec::decode)
        .collect())
}

/// Reads and decodes `info/ID`.
pub fn load_info(d: &Dirs, id: &str) -> io::Result<Info> {
    let b = fs::read(d.info(id))?;
    Info::decode(&b).ok_or_else(|| io::Error::from_raw_os_error(libc::EINVAL))
}

fn open_nofollow(p: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY | libc::O_CLOEXEC)
        .open(p)
}

/// What became of one `drop/ID`.
#[derive(Debug)]
pub enum Took {
    /// Taken over: the job to schedule (its record is written in step 2).
    New(String, Info),
    /// Already a job of this message size (a crash came after step 2):
    /// the drop file only moves.
    Already(String, u64),
    /// Refused with this reason: quarantined (or removed, past the cap).
    Junk(String, String),
    /// A temporary problem (logged); left for the next scan.
    Later(String, String),
}

/// Limits on what queue-run takes from drop/ (pipemail-queue(5)).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest message part from a uid other than queue-run's own
    /// (control/submitbytes, default databytes); 0: none.
    pub bytes: u64,
}

/// Refused or half-made files one uid may have quarantined, or left in
/// drop/, per scan; past it they are removed.
pub const MAX_JUNK_PER_UID: usize = 100;

/// Validates an opened drop file against its lstat: same inode, a regular
/// file, one link, owned by `uid` (None: any owner; the owner is returned).
fn check_file(p: &Path, uid: Option<u32>) -> Result<(File, fs::Metadata), String> {
    let l = fs::symlink_metadata(p)
        .map_err(|e| format!("unable to stat: {}", crate::exit::errtext(&e)))?;
    if !l.file_type().is_file() {
        return Err("not a regular file".into());
    }
    if l.nlink() != 1 {
        return Err("more than one link".into());
    }
    if let Some(u) = uid {
        if l.uid() != u {
            return Err(format!("owned by uid {} instead of {}", l.uid(), u));
        }
    }
    let f =
        open_nofollow(p).map_err(|e| format!("unable to open: {}", crate::exit::errtext(&e)))?;
    let m = f
        .metadata()
        .map_err(|e| format!("unable to stat: {}", crate::exit::errtext(&e)))?;
    if m.ino() != l.ino()
        || m.dev() != l.dev()
        || !m.file_type().is_file()
        || m.nlink() != 1
        || m.uid() != l.uid()
    {
        return Err("changed while being checked".into());
    }
    Ok((f, m))
}

fn first_line_uid(head: &[u8]) -> Option<u32> {
    let nl = memchr::memchr(b'\n', head)?;
    received_uid(&head[..nl])
}

fn read_head(f: &mut File) -> io::Result<Vec<u8>> {
    let mut head = vec![0u8; 1024];
    let mut n = 0;
    while n < head.len() {
        let r = f.read(&mut head[n..])?;
        if r == 0 {
            break;
        }
        n += r;
    }
    head.truncate(n);
    Ok(head)
}

fn read_exact_at(f: &File, len: u64, at: u64) -> io::Result<Vec<u8>> {
    use std::os::unix::fs::FileExt;
    let mut b = vec![0u8; len as usize];
    f.read_exact_at(&mut b, at)?;
    Ok(b)
}

/// A drop file read: its envelope, the length of its message part and the
/// message's first bytes (the file position is after them).
pub struct Sub {
    pub envelope: Envelope,
    pub len: u64,
    pub head: Vec<u8>,
}

/// Reads a queue-inject file of `size` bytes named `id` that `uid` made:
/// Err(reason) when it is not one. (pipemail-queue(5), queue.rs.)
pub fn read_sub(f: &mut File, id: &str, size: u64, uid: u32) -> Result<Sub, String> {
    let io = |e: io::Error| format!("unable to read: {}", crate::exit::errtext(&e));
    if size < crate::queue::TAIL_LEN as u64 {
        return Err("no pipemail-queue-v1 tail".into());
    }
    let tail = read_exact_at(f, TAIL_LEN as u64, size - TAIL_LEN as u64).map_err(io)?;
    let len = tail_offset(&tail, size).ok_or("no pipemail-queue-v1 tail")?;
    let sec_len = size - TAIL_LEN as u64 - len;
    if sec_len > MAX_ENVELOPE as u64 + 128 {
        return Err("envelope too large".into());
    }
    let sec = read_exact_at(f, sec_len, len).map_err(io)?;
    let envelope = parse_section(id, &sec).ok_or("envelope does not parse")?;
    let mut head = read_head(f).map_err(io)?;
    head.truncate(len.min(head.len() as u64) as usize);
    if first_line_uid(&head) != Some(uid) {
        return Err(format!(
            "message does not start with the Received line of uid {}",
            uid
        ));
    }
    Ok(Sub {
        envelope,
        len,
        head,
    })
}

fn io_text(what: &str, e: &io::Error) -> String {
    format!("{}: {}", what, crate::exit::errtext(e))
}

/// Step 1 for one id: validate, route, move or copy the message.
pub fn prepare(
    d: &Dirs,
    id: &str,
    birth: u64,
    lim: Limits,
    known: &dyn Fn(&str) -> Option<u64>,
) -> Took {
    let junk = |why: String| Took::Junk(id.to_string(), why);
    let later = |why: String| Took::Later(id.to_string(), why);
    if let Some(size) = known(id) {
        return Took::Already(id.to_string(), size);
    }
    let msgp = d.drop_dir().join(id);
    let (mut f, m) = match check_file(&msgp, None) {
        Ok(x) => x,
        Err(w) => return junk(format!("message {}", w)),
    };
    let uid = m.uid();
    let mine = uid == crate::sys::geteuid();
    let sub = match read_sub(&mut f, id, m.len(), uid) {
        Ok(s) => s,
        Err(w) => return junk(w),
    };
    if !mine && lim.bytes > 0 && sub.len > lim.bytes {
        return junk(format!(
            "message of {} bytes is over the limit of {} (control/submitbytes)",
            sub.len, lim.bytes
        ));
    }
    let rcpts = match route_all(&sub.envelope) {
        Ok(r) => r,
        Err(e) => return later(e),
    };
    let mess = d.mess(id);
    if mine {
        // Our own file: it moves as it is; the section and tail go after
        // the journal record is committed (truncate_mess).
        if let Err(e) = fs::rename(&msgp, &mess) {
            return later(io_text("unable to move message to mess/", &e));
        }
    } else {
        match copy_from(&mut f, &sub.head, sub.len, &mess) {
            Ok(()) => {}
            Err(e) => {
                let _ = fs::remove_file(&mess);
                if e.kind() == io::ErrorKind::UnexpectedEof {
                    return junk("message changed while being copied".into());
                }
                return later(io_text("unable to copy message to mess/", &e));
            }
        }
    }
    Took::New(
        id.to_string(),
        Info {
            birth,
            uid,
            size: sub.len,
            sender: sub.envelope.sender,
            rcpts,
        },
    )
}

/// Routes every recipient once (control/locals, virtualdomains).
fn route_all(env: &Envelope) -> Result<Vec<Rcpt>, String> {
    let mut rcpts = Vec::with_capacity(env.recipients.len());
    for r in &env.recipients {
        rcpts.push(match route(r).map_err(|e| e.to_string())? {
            Route::Local { local, domain } => {
                let mut l = local;
                l.push(b'@');
                l.extend_from_slice(&domain);
                Rcpt {
                    addr: r.clone(),
                    local: Some(l),
                }
            }
            Route::Remote => Rcpt {
                addr: r.clone(),
                local: None,
            },
        });
    }
    Ok(rcpts)
}

/// Step 1 for a submission in the format before version 1 (`drop/ID`
/// and its envelope in `drop/ID.env`, left by an older queue-inject
/// across an upgrade): validated as then, and always copied.
pub fn prepare_legacy(
    d: &Dirs,
    id: &str,
    birth: u64,
    lim: Limits,
    known: &dyn Fn(&str) -> Option<u64>,
) -> Took {
    let junk = |why: String| Took::Junk(format!("{}.env", id), why);
    if let Some(size) = known(id) {
        return Took::Already(id.to_string(), size);
    }
    let drop = d.drop_dir();
    let (ef, em) = match check_file(&drop.join(format!("{}.env", id)), None) {
        Ok(x) => x,
        Err(w) => return junk(format!("envelope {}", w)),
    };
    let uid = em.uid();
    let mut env = Vec::new();
    if let Err(e) = ef.take(MAX_ENVELOPE as u64 + 1).read_to_end(&mut env) {
        return Took::Later(id.to_string(), io_text("unable to read envelope", &e));
    }
    let Ok(envelope) = crate::queue::parse_envelope(&env) else {
        return junk("envelope does not parse".into());
    };
    let (mut f, m) = match check_file(&drop.join(id), Some(uid)) {
        Ok(x) => x,
        Err(w) => return junk(format!("message {}", w)),
    };
    let head = match read_head(&mut f) {
        Ok(h) => h,
        Err(e) => return Took::Later(id.to_string(), io_text("unable to read message", &e)),
    };
    if first_line_uid(&head) != Some(uid) {
        return junk(format!(
            "message does not start with the Received line of uid {}",
            uid
        ));
    }
    if uid != crate::sys::geteuid() && lim.bytes > 0 && m.len() > lim.bytes {
        return junk(format!(
            "message of {} bytes is over the limit of {} (control/submitbytes)",
            m.len(),
            lim.bytes
        ));
    }
    let rcpts = match route_all(&envelope) {
        Ok(r) => r,
        Err(e) => return Took::Later(id.to_string(), e),
    };
    if let Err(e) = copy_from(&mut f, &head, m.len(), &d.mess(id)) {
        let _ = fs::remove_file(d.mess(id));
        return Took::Later(
            id.to_string(),
            io_text("unable to copy message to mess/", &e),
        );
    }
    Took::New(
        id.to_string(),
        Info {
            birth,
            uid,
            size: m.len(),
            sender: envelope.sender,
            rcpts,
        },
    )
}

/// Copies the message part of `f` (`len` bytes, whose first bytes are
/// `head`) into a file of our own and fsyncs it. A file that is shorter
/// than it said is UnexpectedEof.
fn copy_from(f: &mut File, head: &[u8], len: u64, to: &Path) -> io::Result<()> {
    let mut out = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .custom_flags(libc::O_CLOEXEC)
        .open(to)?;
    out.write_all(head)?;
    let rest = len - head.len() as u64;
    if io::copy(&mut f.take(rest), &mut out)? != rest {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    out.sync_data()
}

/// Cuts the envelope section and tail off `mess/ID` (a moved drop file),
/// leaving `size` bytes: the message deliveries read.
pub fn truncate_mess(d: &Dirs, id: &str, size: u64) -> io::Result<()> {
    let f = OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(d.mess(id))?;
    if f.metadata()?.len() > size {
        f.set_len(size)?;
    }
    Ok(())
}

/// Writes `info/ID` as queue-run wrote a job before the journal (tests of
/// upgrades use it: such jobs are still read).
pub fn write_info(d: &Dirs, id: &str, info: &Info) -> io::Result<()> {
    let tmp = d.sub("tmp").join(id);
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .custom_flags(libc::O_CLOEXEC)
        .open(&tmp)?;
    f.write_all(&info.encode())?;
    f.sync_all()?;
    fs::rename(tmp, d.info(id))
}

/// Moves a refused drop file (and any copy of it) to quarantine/. Not a
/// commit: a rename lost in a crash only repeats the refusal.
pub fn quarantine(d: &Dirs, name: &std::ffi::OsStr) {
    let qd = d.sub("quarantine");
    let _ = fs::rename(d.drop_dir().join(name), qd.join(name));
    if let Some(id) = name.to_str().filter(|n| super::valid_id(n.as_bytes())) {
        let _ = fs::remove_file(d.mess(id));
    }
}

/// Per-uid count of refused files in one scan, to enforce
/// [`MAX_JUNK_PER_UID`].
struct JunkCount(std::collections::HashMap<u32, usize>);

impl JunkCount {
    /// Quarantines `name` (owned by `uid`) while its uid is under the cap,
    /// removes it past the cap. True when it was quarantined.
    fn refuse(&mut self, d: &Dirs, name: &std::ffi::OsStr, uid: u32) -> bool {
        let n = self.0.entry(uid).or_insert(0);
        *n += 1;
        if *n <= MAX_JUNK_PER_UID {
            quarantine(d, name);
            return true;
        }
        let _ = fs::remove_file(d.drop_dir().join(name));
        false
    }
    fn report(&self) {
        for (uid, n) in &self.0 {
            if *n > MAX_JUNK_PER_UID {
                crate::exit::warn(&[
                    b"removed ",
                    &crate::parse::fmt((n - MAX_JUNK_PER_UID) as u64),
                    b" more refused files of uid ",
                    &crate::parse::fmt(*uid as u64),
                    b" from drop/ (limit ",
                    &crate::parse::fmt(MAX_JUNK_PER_UID as u64),
                    b" a scan)",
                ]);
            }
        }
    }
}

/// Scans drop/ once (linear in its entries): takes every submission over
/// (steps 1-3), refuses the rest, removes half-made `.tmp` files older
/// than [`OSSIFIED`]. Returns the new jobs; logs refusals and temporary
/// problems.
pub fn takeover_all(
    d: &Dirs,
    now: u64,
    lim: Limits,
    journal: &mut Journal,
    known: &dyn Fn(&str) -> Option<u64>,
) -> io::Result<Vec<(String, Info)>> {
    use std::os::unix::ffi::OsStrExt;
    let drop = d.drop_dir();
    let mut subs = Vec::new();
    let mut junk = JunkCount(Default::default());
    let mut tmps: std::collections::HashMap<u32, Vec<(std::ffi::OsString, u64)>> =
        Default::default();
    for e in fs::read_dir(&drop)? {
        let e = e?;
        let name = e.file_name();
        let b = name.as_bytes();
        let id_ok = super::valid_id(b);
        if id_ok && !b.ends_with(b".tmp") {
            subs.push(name.to_string_lossy().into_owned());
            continue;
        }
        let Ok(m) = fs::symlink_metadata(drop.join(&name)) else {
            continue;
        };
        if id_ok && m.file_type().is_file() {
            tmps.entry(m.uid())
                .or_default()
                .push((name, m.mtime().max(0) as u64));
        } else if junk.refuse(d, &name, m.uid()) {
            crate::exit::warn(&[b"quarantine: bad name in drop/: ", &crate::log::field(b)]);
        }
    }
    // Submissions of the format before version 1: ID with ID.env.
    let legacy: std::collections::HashSet<String> = subs
        .iter()
        .filter_map(|n| n.strip_suffix(".env"))
        .filter(|id| super::valid_id(id.as_bytes()))
        .map(String::from)
        .collect();
    subs.retain(|n| {
        !legacy.contains(n) && !n.strip_suffix(".env").is_some_and(|i| legacy.contains(i))
    });
    subs.extend(legacy.iter().map(|id| format!("{}.env", id)));
    subs.sort();
    let me = crate::sys::geteuid();
    let moved = |id: &str, info: &Info| info.uid == me && !legacy.contains(id);
    let mut fresh = Vec::new();
    let mut finished = Vec::new();
    let mut copied = false;
    for name in &subs {
        let took = match name.strip_suffix(".env").filter(|id| legacy.contains(*id)) {
            Some(id) => prepare_legacy(d, id, now, lim, known),
            None => prepare(d, name, now, lim, known),
        };
        match took {
            Took::New(id, info) => {
                copied |= !moved(&id, &info);
                fresh.push((id, info))
            }
            Took::Already(id, size) => finished.push((id, size)),
            Took::Junk(id, why) => {
                let uid = fs::symlink_metadata(drop.join(&id))
                    .map(|m| m.uid())
                    .unwrap_or(u32::MAX);
                if junk.refuse(d, id.as_ref(), uid) {
                    crate::exit::warn(&[b"quarantine msg ", id.as_bytes(), b": ", why.as_bytes()]);
                }
                // A legacy envelope takes its message file along.
                if let Some(base) = id.strip_suffix(".env").filter(|b| legacy.contains(*b)) {
                    if drop.join(base).exists() {
                        junk.refuse(d, base.as_ref(), uid);
                    }
                }
            }
            Took::Later(id, why) => {
                crate::exit::warn(&[
                    b"unable to take over msg ",
                    id.as_bytes(),
                    b": ",
                    why.as_bytes(),
                ]);
            }
        }
    }
    if copied {
        // A copy's directory entry must be durable before its job is.
        crate::sys::fsync_dir(&d.sub("mess"))?;
    }
    if !fresh.is_empty() {
        if let Err(e) = journal.append(&fresh) {
            // Not committed: undo the moves (and the copies) for the next
            // scan; a moved file that cannot go back stays: the next start
            // does it.
            for (id, info) in &fresh {
                if moved(id, info) {
                    let _ = fs::rename(d.mess(id), drop.join(id));
                } else {
                    let _ = fs::remove_file(d.mess(id));
                }
            }
            return Err(e);
        }
    }
    // Step 3: copies leave drop/; moved files lose their tail.
    for (id, info) in &fresh {
        if legacy.contains(id) {
            let _ = fs::remove_file(drop.join(format!("{}.env", id)));
        }
        if moved(id, info) {
            let _ = truncate_mess(d, id, info.size);
        } else {
            let _ = fs::remove_file(drop.join(id));
        }
    }
    for (id, size) in &finished {
        if legacy.contains(id) {
            let _ = fs::remove_file(drop.join(format!("{}.env", id)));
        }
        finish_move(d, id, *size);
    }
    // Half-made submissions (named-file fallback, a crash before the link).
    let sys_now = crate::sys::now();
    for (uid, v) in tmps {
        let over = v.len() > MAX_JUNK_PER_UID;
        for (n, mtime) in &v {
            if over || sys_now.saturating_sub(*mtime) > OSSIFIED {
                let _ = fs::remove_file(drop.join(n));
            }
        }
        if over {
            crate::exit::warn(&[
                b"removed ",
                &crate::parse::fmt(v.len() as u64),
                b" half-made files of uid ",
                &crate::parse::fmt(uid as u64),
                b" from drop/ (limit ",
                &crate::parse::fmt(MAX_JUNK_PER_UID as u64),
                b")",
            ]);
        } else {
            for (n, mtime) in &v {
                if sys_now.saturating_sub(*mtime) > OSSIFIED {
                    crate::exit::info(&[b"removed half-made submission drop/", n.as_bytes()]);
                }
            }
        }
    }
    junk.report();
    Ok(fresh)
}

/// drop/ID of a committed job (`size` bytes of message): a copy's
/// original goes; a moved file whose rename was lost in a crash moves
/// again.
fn finish_move(d: &Dirs, id: &str, size: u64) {
    let p = d.drop_dir().join(id);
    if d.mess(id).exists() {
        let _ = fs::remove_file(&p);
        return;
    }
    if let Ok(m) = fs::symlink_metadata(&p) {
        if m.file_type().is_file() && m.uid() == crate::sys::geteuid() {
            if fs::rename(&p, d.mess(id)).is_ok() {
                let _ = truncate_mess(d, id, size);
            }
            return;
        }
    }
    let _ = fs::remove_file(&p);
}

/// Start-up cleanup, given every committed job (the journal's records and
/// old info/ files): empties tmp/; a job whose message is still in drop/
/// (a rename lost in a crash) is moved; a `mess/ID` of no job is either
/// our own submission moved by a takeover that crashed before its commit
/// (it still ends with its tail: it goes back to drop/ to be taken over
/// again) or a leftover (a copy, or a finished job): removed. `state/ID`
/// of no job whose message is not in drop/ is a leftover too.
pub fn cleanup(d: &Dirs, jobs: &[(String, Info)]) -> io::Result<()> {
    for e in fs::read_dir(d.sub("tmp"))? {
        let _ = fs::remove_file(e?.path());
    }
    let known: std::collections::HashSet<&str> = jobs.iter().map(|(id, _)| id.as_str()).collect();
    let mess: std::collections::HashSet<String> = d.ids("mess")?.into_iter().collect();
    for (id, info) in jobs {
        if !mess.contains(id) && d.drop_dir().join(id).exists() {
            finish_move(d, id, info.size);
        }
    }
    let me = crate::sys::geteuid();
    for id in &mess {
        if known.contains(id.as_str()) {
            continue;
        }
        let p = d.mess(id);
        let ours = check_file(&p, Some(me))
            .ok()
            .is_some_and(|(mut f, m)| read_sub(&mut f, id, m.len(), me).is_ok());
        if !(ours && fs::rename(&p, d.drop_dir().join(id)).is_ok()) {
            let _ = fs::remove_file(&p);
        }
    }
    for id in d.ids("state")? {
        if !known.contains(id.as_str()) && !d.drop_dir().join(&id).exists() {
            let _ = fs::remove_file(d.state(&id));
        }
    }
    Ok(())
}

/// Removes finished jobs: their mess/ID, then one fsync of mess/ for the
/// batch (the commit point: this removal is what records the last
/// successes; the journal record is dead from then on), then state/ID
/// (and the info/ID of a job of an old queue, when `old` says so). A
/// removal lost in a crash repeats those deliveries (a duplicate, never a
/// loss); a state/ID without its job goes at the next start. One result
/// per id.
pub fn remove_jobs(d: &Dirs, ids: &[String], old: &dyn Fn(&str) -> bool) -> Vec<io::Result<()>> {
    let mut res: Vec<io::Result<()>> = ids
        .iter()
        .map(|id| match fs::remove_file(d.mess(id)) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            r => r,
        })
        .collect();
    if let Err(e) = crate::sys::fsync_dir(&d.sub("mess")) {
        // Not durable: the caller keeps the jobs and tries again later.
        for r in res.iter_mut().filter(|r| r.is_ok()) {
            *r = Err(io::Error::new(e.kind(), e.to_string()));
        }
        return res;
    }
    for (id, _) in ids.iter().zip(&res).filter(|(_, r)| r.is_ok()) {
        let _ = fs::remove_file(d.state(id));
        if old(id) {
            let _ = fs::remove_file(d.info(id));
        }
    }
    res
}

/// `queue/jobs`, the journal of jobs: one record per job taken over,
/// appended and fdatasync'd once for a batch (the takeover's commit
/// point), so no file is created per job. A record is live while its
/// `mess/ID` exists; the journal is rewritten without dead records at
/// start and when they outnumber the live ones (past [`COMPACT_AT`]).
///
/// Record: `+` LEN SP PAYLOAD HASH LF, where PAYLOAD is LEN bytes (`ID`
/// NUL, then [`Info::encode`]) and HASH is the FNV-1a hash of PAYLOAD in
/// 8 hex digits. A torn record (a crash in the middle of an append that
/// was never acknowledged) fails its length or hash and is skipped.
pub struct Journal {
    f: File,
    path: PathBuf,
    len: u64,
    /// Records of jobs removed since the last rewrite.
    pub dead: usize,
}

/// Dead records that make the running queue-run rewrite the journal
/// (when they also outnumber the live jobs).
pub const COMPACT_AT: usize = 1000;

fn fnv(b: &[u8]) -> u32 {
    b.iter().fold(0x811c9dc5u32, |h, &c| {
        (h ^ c as u32).wrapping_mul(0x01000193)
    })
}

/// One journal record.
pub fn job_record(id: &str, info: &Info) -> Vec<u8> {
    let mut p = id.as_bytes().to_vec();
    p.push(0);
    p.extend_from_slice(&info.encode());
    let mut v = format!("+{} ", p.len()).into_bytes();
    v.extend_from_slice(&p);
    v.extend_from_slice(format!("{:08x}\n", fnv(&p)).as_bytes());
    v
}

/// The record at the start of `b`: (id, info, its length).
fn one_record(b: &[u8]) -> Option<(String, Info, usize)> {
    let rest = b.strip_prefix(b"+")?;
    let sp = memchr::memchr(b' ', &rest[..rest.len().min(12)])?;
    let len = crate::parse::number(&rest[..sp])? as usize;
    let p = rest.get(sp + 1..sp + 1 + len)?;
    let tail = rest.get(sp + 1 + len..sp + 10 + len)?;
    if tail[8] != b'\n' || tail[..8] != *format!("{:08x}", fnv(p)).as_bytes() {
        return None;
    }
    let nul = memchr::memchr(0, p)?;
    let id = std::str::from_utf8(&p[..nul]).ok()?;
    if !super::valid_id(id.as_bytes()) {
        return None;
    }
    let info = Info::decode(&p[nul + 1..])?;
    Some((id.to_string(), info, 1 + sp + 1 + len + 9))
}

/// Every whole record of a journal's bytes, in order, and where the last
/// one ends (what follows it is torn or garbage).
pub fn parse_journal(b: &[u8]) -> (Vec<(String, Info)>, usize) {
    let mut v = Vec::new();
    let (mut i, mut good) = (0, 0);
    while i < b.len() {
        match one_record(&b[i..]) {
            Some((id, info, n)) => {
                v.push((id, info));
                i += n;
                good = i;
            }
            // Skip to the next line that starts a record.
            None => match memchr::memmem::find(&b[i + 1..], b"\n+") {
                Some(k) => i += k + 2,
                None => break,
            },
        }
    }
    (v, good)
}

impl Journal {
    fn path(d: &Dirs) -> PathBuf {
        d.sub("jobs")
    }

    /// Opens (creates) the journal for appending; returns it and its
    /// records. A torn tail is cut off.
    pub fn open(d: &Dirs) -> io::Result<(Journal, Vec<(String, Info)>)> {
        let path = Journal::path(d);
        let mut f = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .mode(0o600)
            .custom_flags(libc::O_CLOEXEC | libc::O_NOFOLLOW)
            .open(&path)?;
        let mut b = Vec::new();
        f.read_to_end(&mut b)?;
        let (recs, good) = parse_journal(&b);
        if good < b.len() {
            f.set_len(good as u64)?;
        }
        Ok((
            Journal {
                f,
                path,
                len: good as u64,
                dead: 0,
            },
            recs,
        ))
    }

    /// Appends the records of `jobs` and makes them durable (one
    /// fdatasync): the commit point of a takeover batch. On an error
    /// nothing of it counts (the journal is cut back).
    pub fn append(&mut self, jobs: &[(String, Info)]) -> io::Result<()> {
        let mut b = Vec::with_capacity(256 * jobs.len());
        for (id, info) in jobs {
            b.extend_from_slice(&job_record(id, info));
        }
        let r = self.f.write_all(&b).and_then(|_| self.f.sync_data());
        match r {
            Ok(()) => {
                self.len += b.len() as u64;
                Ok(())
            }
            Err(e) => {
                let _ = self.f.set_len(self.len);
                Err(e)
            }
        }
    }

    /// Rewrites the journal with `live` only (tmp/jobs, fdatasync,
    /// rename, fsync of queue/).
    pub fn compact<'a>(
        &mut self,
        d: &Dirs,
        live: impl Iterator<Item = (&'a String, &'a Info)>,
    ) -> io::Result<()> {
        let tmp = d.sub("tmp").join("jobs");
        let mut b = Vec::new();
        for (id, info) in live {
            b.extend_from_slice(&job_record(id, info));
        }
        let mut f = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .custom_flags(libc::O_CLOEXEC | libc::O_APPEND)
            .open(&tmp)?;
        f.write_all(&b)?;
        f.sync_data()?;
        fs::rename(&tmp, &self.path)?;
        crate::sys::fsync_dir(&d.queue)?;
        self.f = f;
        self.len = b.len() as u64;
        self.dead = 0;
        Ok(())
    }
}

/// The jobs as a reader sees them (queue-list): the journal's records and
/// the info/ files of queues written before it, those whose `mess/ID`
/// exists. Never writes.
pub fn read_jobs(d: &Dirs) -> io::Result<Vec<(String, Info)>> {
    let b = match fs::read(Journal::path(d)) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(e),
    };
    let mut all: std::collections::BTreeMap<String, Info> =
        parse_journal(&b).0.into_iter().collect();
    for (id, info) in legacy_infos(d)? {
        all.entry(id).or_insert(info);
    }
    let mess: std::collections::HashSet<String> = d.ids("mess")?.into_iter().collect();
    Ok(all
        .into_iter()
        .filter(|(id, _)| mess.contains(id))
        .collect())
}

/// The jobs of `info/ID` files, left by a queue-run before the journal
/// (an unreadable one is logged and skipped).
pub fn legacy_infos(d: &Dirs) -> io::Result<Vec<(String, Info)>> {
    let mut v = Vec::new();
    for id in d.ids("info")? {
        match load_info(d, &id) {
            Ok(i) => v.push((id, i)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => crate::exit::warn(&[
                b"unable to read info/",
                id.as_bytes(),
                b": ",
                crate::exit::errtext(&e).as_bytes(),
            ]),
        }
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn info_round_trip() {
        let i = Info {
            birth: 17,
            uid: 1000,
            size: 55,
            sender: b"".to_vec(),
            rcpts: vec![
                Rcpt {
                    addr: b"a@x".to_vec(),
                    local: Some(b"v-a@x".to_vec()),
                },
                Rcpt {
                    addr: b"b@y".to_vec(),
                    local: None,
                },
            ],
        };
        assert_eq!(Info::decode(&i.encode()), Some(i.clone()));
        assert_eq!(Info::decode(b"b1\0u2\0s3\0Fx\0"), None);
        assert_eq!(Info::decode(b"garbage"), None);
    }
    #[test]
    fn journal_records() {
        let i = Info {
            birth: 17,
            uid: 1000,
            size: 55,
            sender: b"s@x".to_vec(),
            rcpts: vec![Rcpt {
                addr: b"b@y".to_vec(),
                local: None,
            }],
        };
        let mut b = job_record("1.2.ab", &i);
        let one = b.len();
        b.extend_from_slice(&job_record("1.2.cd", &i));
        let (v, end) = parse_journal(&b);
        assert_eq!(
            v,
            vec![("1.2.ab".into(), i.clone()), ("1.2.cd".into(), i.clone())]
        );
        assert_eq!(end, b.len());
        // A torn last record (cut anywhere, or zeros after a crash) is not
        // a record; what came before stays.
        for cut in one..b.len() {
            let (v, end) = parse_journal(&b[..cut]);
            assert_eq!((v.len(), end), (1, one), "cut at {}", cut);
            let mut z = b[..cut].to_vec();
            z.resize(b.len(), 0);
            assert_eq!(parse_journal(&z).0.len(), 1);
        }
        // A damaged record in the middle is skipped, later ones are read.
        let mut c = b.clone();
        c[5] ^= 1;
        assert_eq!(parse_journal(&c), (vec![("1.2.cd".into(), i)], b.len()));
    }
    #[test]
    fn records_round_trip() {
        for r in [
            Rec::Done(3),
            Rec::Failed(0, b"no such user (#5.1.1)".to_vec()),
            Rec::Deferred(2, 99, b"try later\nRemote host said: 451".to_vec()),
            Rec::Deferred(2, 99, b"".to_vec()),
            Rec::Removed(1),
            Rec::Hold,
            Rec::Release,
            Rec::Bounced,
        ] {
            let e = r.encode();
            assert_eq!(Rec::decode(&e[..e.len() - 1]), Some(r));
        }
    }
}

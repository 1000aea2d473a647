//! The queue on disk (pipemail-queue(5)). Everything under queue/ except
//! drop/ and trigger belongs to queue-run:
//!
//! - `mess/ID`  the message (queue-inject's `Received:` line first), 0600;
//! - `info/ID`  the job: birth, submitter uid, size, sender, recipients
//!   with their channel; written in `tmp/`, fsync'd, renamed. **Its
//!   existence is the job's existence.**
//! - `state/ID` append-only outcome records, each NUL-terminated and
//!   fsync'd before the delivery is forgotten;
//! - `tmp/` scratch, emptied at start; `quarantine/` drop files that
//!   failed validation; `lock` held by the running queue-run; `ctl` the
//!   administrator's fifo (queue-ctl(8)).
//!
//! Takeover of `drop/ID` + `drop/ID.env` (commit order, each step idempotent):
//! 1. validate; move (same uid: rename) or copy+fsync the message to `mess/ID`;
//! 2. fsync mess/; write `info/ID` (tmp, fsync, rename); fsync info/;
//! 3. unlink `drop/ID.env` and `drop/ID`; fsync drop/.
//! A crash after 1 leaves `mess/ID` and the `.env`: takeover resumes. After
//! 2, `info/ID` exists: the drop files are only removed. Removal of a
//! finished job: `info/ID` first (fsync info/), then `mess/ID`, `state/ID`;
//! `mess/ID` without `info/ID` and without `drop/ID.env` is such a leftover.

use crate::queue::{parse_envelope, received_uid, Envelope, MAX_ENVELOPE};
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

/// A job as stored in `info/ID`.
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
    /// `B`: the bounce for this job is queued (or needs none).
    Bounced,
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

/// What became of one `drop/ID.env`.
#[derive(Debug)]
pub enum Took {
    /// Taken over: the job to schedule (its info file is written in phase 2).
    New(String, Info),
    /// Already a job (a crash came after step 2): only the drop files go.
    Already(String),
    /// Moved to quarantine/ with this reason.
    Quarantined(String, String),
    /// A temporary problem (logged); left for the next scan.
    Later(String, String),
    /// An envelope still being written: left for the next scan, silently.
    Wait,
}

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

/// Step 1 for one id: validate, route, move or copy the message.
pub fn prepare(d: &Dirs, id: &str, birth: u64) -> Took {
    let q = |why: &str| Took::Quarantined(id.to_string(), why.to_string());
    let later = |why: String| Took::Later(id.to_string(), why);
    if d.info(id).exists() {
        return Took::Already(id.to_string());
    }
    let drop = d.drop_dir();
    let envp = drop.join(format!("{}.env", id));
    let (mut ef, em) = match check_file(&envp, None) {
        Ok(x) => x,
        Err(w) => return q(&format!("envelope {}", w)),
    };
    let uid = em.uid();
    let mut env = Vec::new();
    if let Err(e) = (&mut ef)
        .take(MAX_ENVELOPE as u64 + 1)
        .read_to_end(&mut env)
    {
        return later(format!(
            "unable to read envelope: {}",
            crate::exit::errtext(&e)
        ));
    }
    let envelope: Envelope = match parse_envelope(&env) {
        Ok(e) => e,
        // Not queue-inject's (it commits by rename): someone may still be
        // writing it by hand; quarantine it once it is old.
        Err(_) if crate::sys::now().saturating_sub(em.mtime().max(0) as u64) < YOUNG => {
            return Took::Wait
        }
        Err(_) => return q("envelope does not parse"),
    };
    let mut rcpts = Vec::with_capacity(envelope.recipients.len());
    for r in &envelope.recipients {
        match route(r) {
            Ok(Route::Local { local, domain }) => {
                let mut l = local;
                l.push(b'@');
                l.extend_from_slice(&domain);
                rcpts.push(Rcpt {
                    addr: r.clone(),
                    local: Some(l),
                });
            }
            Ok(Route::Remote) => rcpts.push(Rcpt {
                addr: r.clone(),
                local: None,
            }),
            Err(e) => return later(e.to_string()),
        }
    }
    let msgp = drop.join(id);
    let mess = d.mess(id);
    match fs::symlink_metadata(&msgp) {
        Ok(_) => {
            let (mut mf, _) = match check_file(&msgp, Some(uid)) {
                Ok(x) => x,
                Err(w) => return q(&format!("message {}", w)),
            };
            let head = match read_head(&mut mf) {
                Ok(h) => h,
                Err(e) => {
                    return later(format!(
                        "unable to read message: {}",
                        crate::exit::errtext(&e)
                    ))
                }
            };
            if first_line_uid(&head) != Some(uid) {
                return q(&format!(
                    "message does not start with the Received line of uid {}",
                    uid
                ));
            }
            let r = if uid == crate::sys::geteuid() {
                fs::rename(&msgp, &mess)
            } else {
                copy_from(&mut mf, &head, &mess)
            };
            if let Err(e) = r {
                return later(format!(
                    "unable to move message to mess/: {}",
                    crate::exit::errtext(&e)
                ));
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            // Moved by a takeover that crashed before writing info/ID.
            let head = match File::open(&mess).and_then(|mut f| read_head(&mut f)) {
                Ok(h) => h,
                Err(_) => return q("message file is missing"),
            };
            if first_line_uid(&head) != Some(uid) {
                return q(&format!(
                    "message does not start with the Received line of uid {}",
                    uid
                ));
            }
        }
        Err(e) => {
            return later(format!(
                "unable to stat message: {}",
                crate::exit::errtext(&e)
            ))
        }
    }
    let size = match fs::metadata(&mess) {
        Ok(m) => m.len(),
        Err(e) => {
            return later(format!(
                "unable to stat mess/: {}",
                crate::exit::errtext(&e)
            ))
        }
    };
    Took::New(
        id.to_string(),
        Info {
            birth,
            uid,
            size,
            sender: envelope.sender,
            rcpts,
        },
    )
}

/// Copies the rest of `f` (whose first bytes are `head`) into a file of
/// our own and fsyncs it.
fn copy_from(f: &mut File, head: &[u8], to: &Path) -> io::Result<()> {
    let mut out = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .custom_flags(libc::O_CLOEXEC)
        .open(to)?;
    out.write_all(head)?;
    io::copy(f, &mut out)?;
    out.sync_all()
}

/// Step 2, first half: writes `tmp/ID` (not yet fsync'd: see [`commit_infos`]).
fn write_info_tmp(d: &Dirs, id: &str, info: &Info) -> io::Result<File> {
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .custom_flags(libc::O_CLOEXEC)
        .open(d.sub("tmp").join(id))?;
    f.write_all(&info.encode())?;
    Ok(f)
}

/// Step 2 for a batch: every info file is written first and fsync'd after,
/// so one journal commit carries the whole batch; then each is renamed
/// into info/ and info/ is fsync'd once. Returns the jobs that made it.
fn commit_infos(d: &Dirs, fresh: Vec<(String, Info)>) -> io::Result<Vec<(String, Info)>> {
    let mut written = Vec::new();
    for (id, info) in fresh {
        match write_info_tmp(d, &id, &info) {
            Ok(f) => written.push((id, info, f)),
            Err(e) => warn_info(&id, &e),
        }
    }
    let mut ok = Vec::new();
    for (id, info, f) in written {
        match f
            .sync_all()
            .and_then(|_| fs::rename(d.sub("tmp").join(&id), d.info(&id)))
        {
            Ok(()) => ok.push((id, info)),
            Err(e) => warn_info(&id, &e),
        }
    }
    crate::sys::fsync_dir(&d.sub("info"))?;
    Ok(ok)
}

fn warn_info(id: &str, e: &io::Error) {
    crate::exit::warn(&[
        b"unable to write info/",
        id.as_bytes(),
        b": ",
        crate::exit::errtext(e).as_bytes(),
    ]);
}

/// Step 2 for one job (used by tests and tools).
pub fn write_info(d: &Dirs, id: &str, info: &Info) -> io::Result<()> {
    let f = write_info_tmp(d, id, info)?;
    f.sync_all()?;
    drop(f);
    fs::rename(d.sub("tmp").join(id), d.info(id))
}

/// Moves whatever exists of a bad submission to quarantine/.
pub fn quarantine(d: &Dirs, name_env: &str, id: Option<&str>) {
    let qd = d.sub("quarantine");
    let _ = fs::rename(d.drop_dir().join(name_env), qd.join(name_env));
    if let Some(id) = id {
        let _ = fs::rename(d.drop_dir().join(id), qd.join(id));
        let _ = fs::rename(d.mess(id), qd.join(format!("{}.mess", id)));
    }
    let _ = crate::sys::fsync_dir(&qd);
}

/// Scans drop/: takes every committed submission over (steps 1-3) and
/// removes half-made ones older than [`OSSIFIED`]. Returns the new jobs;
/// logs quarantines and temporary problems.
pub fn takeover_all(d: &Dirs, now: u64) -> io::Result<Vec<(String, Info)>> {
    let drop = d.drop_dir();
    let mut envs = Vec::new();
    let mut others = Vec::new();
    for e in fs::read_dir(&drop)? {
        let e = e?;
        let name = e.file_name();
        let Some(n) = name.to_str() else {
            // Not UTF-8, so not queue-inject's: quarantine by raw name.
            let _ = fs::rename(drop.join(&name), d.sub("quarantine").join(&name));
            crate::exit::warn(&[b"quarantine: file with a bad name in drop/"]);
            continue;
        };
        match n.strip_suffix(".env") {
            Some(id) => envs.push((n.to_string(), id.to_string())),
            None => others.push(n.to_string()),
        }
    }
    envs.sort();
    let mut fresh = Vec::new();
    let mut finished = Vec::new();
    for (name, id) in &envs {
        if !super::valid_id(id.as_bytes()) {
            quarantine(d, name, None);
            crate::exit::warn(&[
                b"quarantine: envelope with a bad name in drop/: ",
                name.as_bytes(),
            ]);
            continue;
        }
        match prepare(d, id, now) {
            Took::New(id, info) => fresh.push((id, info)),
            Took::Already(id) => finished.push(id),
            Took::Quarantined(id, why) => {
                quarantine(d, name, Some(&id));
                crate::exit::warn(&[b"quarantine msg ", id.as_bytes(), b": ", why.as_bytes()]);
            }
            Took::Wait => {}
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
    if !fresh.is_empty() {
        crate::sys::fsync_dir(&d.sub("mess"))?;
        fresh = commit_infos(d, fresh)?;
    }
    for id in fresh.iter().map(|(i, _)| i).chain(finished.iter()) {
        let _ = fs::remove_file(drop.join(format!("{}.env", id)));
        let _ = fs::remove_file(drop.join(id));
    }
    if !fresh.is_empty() || !finished.is_empty() {
        crate::sys::fsync_dir(&drop)?;
    }
    // Half-made submissions (a crash before the commit rename).
    let sys_now = crate::sys::now();
    for n in others {
        let base = n.strip_suffix(".tmp").unwrap_or(&n);
        if envs.iter().any(|(_, id)| id == base) {
            continue;
        }
        if let Ok(m) = fs::symlink_metadata(drop.join(&n)) {
            if sys_now.saturating_sub(m.mtime().max(0) as u64) > OSSIFIED {
                let _ = fs::remove_file(drop.join(&n));
                crate::exit::info(&[b"removed half-made submission drop/", n.as_bytes()]);
            }
        }
    }
    Ok(fresh)
}

/// Start-up cleanup: empties tmp/, removes leftovers of finished jobs
/// (mess/ or state/ files without info/ and without a pending drop/ID.env).
pub fn cleanup(d: &Dirs) -> io::Result<()> {
    for e in fs::read_dir(d.sub("tmp"))? {
        let _ = fs::remove_file(e?.path());
    }
    for dir in ["mess", "state"] {
        for id in d.ids(dir)? {
            if !d.info(&id).exists() && !d.drop_dir().join(format!("{}.env", id)).exists() {
                let _ = fs::remove_file(d.sub(dir).join(&id));
            }
        }
    }
    Ok(())
}

/// Removes a finished job: info/ first (durably), then its other files.
pub fn remove_job(d: &Dirs, id: &str) -> io::Result<()> {
    remove_jobs(d, &[id.to_string()]).pop().unwrap_or(Ok(()))
}

/// Removes finished jobs: every info/ID first, one fsync of info/ for the
/// batch (the commit point), then their other files. One result per id.
pub fn remove_jobs(d: &Dirs, ids: &[String]) -> Vec<io::Result<()>> {
    let mut res: Vec<io::Result<()>> = ids.iter().map(|id| fs::remove_file(d.info(id))).collect();
    if let Err(e) = crate::sys::fsync_dir(&d.sub("info")) {
        // Not durable: the caller keeps the jobs and tries again later.
        for r in res.iter_mut().filter(|r| r.is_ok()) {
            *r = Err(io::Error::new(e.kind(), e.to_string()));
        }
        return res;
    }
    for (id, r) in ids.iter().zip(&res) {
        if r.is_ok() {
            let _ = fs::remove_file(d.mess(id));
            let _ = fs::remove_file(d.state(id));
        }
    }
    res
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

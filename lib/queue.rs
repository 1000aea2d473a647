//! The submission side of the queue: the drop directory (queue-inject(8)).
//!
//! Any uid may submit. queue-inject writes into `queue/drop/`, a directory
//! owned by the queue user with mode 1733: everyone may create files there,
//! nobody but the owner may list it, and the sticky bit stops anyone from
//! removing or renaming another uid's files. Names carry 64 random bits, so
//! a file can be opened only by whoever made it (and queue-run).
//!
//! One submission, id `SECS.PID.RANDOM`:
//!
//! 1. `drop/ID` is created (O_EXCL, mode 0644), the `Received:` line and the
//!    message are written, the file is fsync'd and closed;
//! 2. `drop/ID.tmp` gets the envelope exactly as read from fd 1
//!    (`F` sender NUL, `T` rcpt NUL ..., NUL), and is fsync'd;
//! 3. **commit point:** `rename(drop/ID.tmp, drop/ID.env)`, then drop/ is
//!    fsync'd so the rename is durable before queue-inject exits 0 (a
//!    submitter that may not open drop/ for reading calls syncfs(2) instead);
//! 4. one byte is written to the fifo `queue/trigger` if anyone listens.
//!
//! A crash before step 3 leaves `ID` and maybe `ID.tmp`, never `ID.env`:
//! queue-run ignores them and removes them after 36 hours. (Creating
//! `ID.env` directly would save a journal commit, but a submitter killed
//! while writing it would leave a half-made envelope behind.) queue-run trusts
//! only the kernel's record (st_uid) of who made both files, and checks that
//! the first line is this module's `Received:` line naming that same uid.

use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Longest address in an envelope, as qmail-queue (ADDR 1003 with the NUL).
pub const MAX_ADDR: usize = 1002;
/// Largest envelope queue-inject accepts (exit 91 past it).
pub const MAX_ENVELOPE: usize = 16 << 20;

/// qmail-queue's exit codes that queue-inject itself uses.
pub mod code {
    pub const ADDR_TOO_LONG: i32 = 11;
    pub const WRITE: i32 = 53;
    pub const READ: i32 = 54;
    pub const HOME: i32 = 61;
    pub const QUEUE_DIR: i32 = 62;
    pub const ENVELOPE: i32 = 91;
}

pub fn queue_dir() -> PathBuf {
    crate::control::path("queue")
}

pub fn drop_dir() -> PathBuf {
    crate::control::path("queue/drop")
}

pub fn trigger_path() -> PathBuf {
    crate::control::path("queue/trigger")
}

/// The `Received:` line queue-inject prepends for a submission by `uid`.
pub fn received_line(pid: u32, uid: u32, date: &str) -> Vec<u8> {
    format!(
        "Received: (pipemail {} invoked by uid {}); {}\n",
        pid, uid, date
    )
    .into_bytes()
}

/// The uid named by a `Received: (pipemail PID invoked by uid UID); ...`
/// first line, or None when the first line is not one.
pub fn received_uid(first_line: &[u8]) -> Option<u32> {
    let rest = first_line.strip_prefix(b"Received: (pipemail ")?;
    let sp = memchr::memchr(b' ', rest)?;
    crate::parse::number(&rest[..sp])?;
    let rest = rest[sp..].strip_prefix(b" invoked by uid ")?;
    let end = memchr::memchr(b')', rest)?;
    crate::parse::number(&rest[..end]).map(|n| n as u32)
}

/// A parsed envelope.
#[derive(Debug, PartialEq, Eq, Clone)]
pub struct Envelope {
    pub sender: Vec<u8>,
    pub recipients: Vec<Vec<u8>>,
}

impl Envelope {
    /// The qmail-queue envelope bytes: `F`sender NUL `T`rcpt NUL ... NUL.
    pub fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(64);
        v.push(b'F');
        v.extend_from_slice(&self.sender);
        v.push(0);
        for r in &self.recipients {
            v.push(b'T');
            v.extend_from_slice(r);
            v.push(0);
        }
        v.push(0);
        v
    }
}

/// Parses a complete envelope. Err is the qmail-queue exit code:
/// 11 for an address over [`MAX_ADDR`], 91 for any format error
/// (not `F` first, a record not `T`, no recipient, missing final NUL,
/// bytes after it).
pub fn parse_envelope(b: &[u8]) -> Result<Envelope, i32> {
    let mut fields = Vec::new();
    let mut rest = b;
    loop {
        let Some(nul) = memchr::memchr(0, rest) else {
            return Err(code::ENVELOPE);
        };
        let f = &rest[..nul];
        rest = &rest[nul + 1..];
        if f.is_empty() {
            break;
        }
        if f.len() - 1 > MAX_ADDR {
            return Err(code::ADDR_TOO_LONG);
        }
        fields.push(f);
    }
    if !rest.is_empty() || fields.len() < 2 {
        return Err(code::ENVELOPE);
    }
    if fields[0][0] != b'F' || fields[1..].iter().any(|f| f[0] != b'T' || f.len() < 2) {
        return Err(code::ENVELOPE);
    }
    Ok(Envelope {
        sender: fields[0][1..].to_vec(),
        recipients: fields[1..].iter().map(|f| f[1..].to_vec()).collect(),
    })
}

/// Where the envelope ends in `b` (index after the final NUL), if it does.
pub fn envelope_end(b: &[u8]) -> Option<usize> {
    let mut i = 0;
    loop {
        let nul = memchr::memchr(0, &b[i..])?;
        if nul == 0 {
            return Some(i + 1);
        }
        i += nul + 1;
    }
}

/// Wakes queue-run through `queue/trigger`; silent when nobody listens.
pub fn pull_trigger() {
    if let Ok(c) = crate::sys::cpath(&trigger_path()) {
        let fd = unsafe {
            libc::open(
                c.as_ptr(),
                libc::O_WRONLY | libc::O_NONBLOCK | libc::O_CLOEXEC,
            )
        };
        if fd >= 0 {
            let _ = unsafe { libc::write(fd, b"x".as_ptr() as *const libc::c_void, 1) };
            crate::sys::close(fd);
        }
    }
}

/// One submission in progress. Dropping it uncommitted removes its files.
pub struct Inject {
    id: String,
    dir: PathBuf,
    out: io::BufWriter<File>,
    committed: bool,
}

fn open_new(p: &Path) -> io::Result<File> {
    let f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .custom_flags(libc::O_CLOEXEC)
        .open(p)?;
    // The umask must not make the file unreadable for queue-run.
    f.set_permissions(std::fs::Permissions::from_mode(0o644))?;
    Ok(f)
}

impl Inject {
    /// Creates `drop/ID` and writes the `Received:` line. Err is an exit code.
    pub fn create() -> Result<Inject, i32> {
        let home = crate::control::home();
        if !home.is_dir() {
            return Err(code::HOME);
        }
        let dir = drop_dir();
        let pid = std::process::id();
        for _ in 0..5 {
            let id = format!(
                "{}.{}.{}",
                crate::sys::now(),
                pid,
                crate::sys::random_hex(8)
            );
            match open_new(&dir.join(&id)) {
                Ok(f) => {
                    let mut inj = Inject {
                        id,
                        dir,
                        out: io::BufWriter::with_capacity(65536, f),
                        committed: false,
                    };
                    let line = received_line(pid, crate::sys::geteuid(), &crate::date::now());
                    inj.write(&line)?;
                    return Ok(inj);
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(_) => return Err(code::QUEUE_DIR),
            }
        }
        Err(code::QUEUE_DIR)
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// Appends message bytes. Err(53) on a write error (disk full).
    pub fn write(&mut self, b: &[u8]) -> Result<(), i32> {
        self.out.write_all(b).map_err(|_| code::WRITE)
    }

    /// Validates the envelope, makes message and envelope durable and
    /// commits (steps 1-4 above). Err is an exit code; nothing is queued then.
    pub fn commit(mut self, envelope: &[u8]) -> Result<String, i32> {
        parse_envelope(envelope)?;
        self.out.flush().map_err(|_| code::WRITE)?;
        self.out.get_ref().sync_all().map_err(|_| code::WRITE)?;
        let tmp = self.dir.join(format!("{}.tmp", self.id));
        let mut f = open_new(&tmp).map_err(|_| code::QUEUE_DIR)?;
        let r = f.write_all(envelope).and_then(|_| f.sync_all());
        if r.is_err() {
            drop(f);
            let _ = std::fs::remove_file(&tmp);
            return Err(code::WRITE);
        }
        if std::fs::rename(&tmp, self.dir.join(format!("{}.env", self.id))).is_err() {
            let _ = std::fs::remove_file(&tmp);
            return Err(code::QUEUE_DIR);
        }
        self.committed = true;
        // The rename is the commit point; the fsync makes it durable.
        match crate::sys::fsync_dir(&self.dir) {
            Err(e) if e.raw_os_error() == Some(libc::EACCES) => {
                crate::sys::syncfs(&f).map_err(|_| code::QUEUE_DIR)?
            }
            r => r.map_err(|_| code::QUEUE_DIR)?,
        }
        pull_trigger();
        Ok(self.id.clone())
    }
}

impl Drop for Inject {
    fn drop(&mut self) {
        if !self.committed {
            let _ = self.out.get_ref().set_len(0);
            let _ = std::fs::remove_file(self.dir.join(&self.id));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn envelopes() {
        let e = parse_envelope(b"Fa@b\0Tc@d\0Te@f\0\0").unwrap();
        assert_eq!(e.sender, b"a@b");
        assert_eq!(e.recipients, vec![b"c@d".to_vec(), b"e@f".to_vec()]);
        assert_eq!(e.encode(), b"Fa@b\0Tc@d\0Te@f\0\0");
        assert_eq!(parse_envelope(b"F\0Tc@d\0\0").unwrap().sender, b"");
        assert_eq!(parse_envelope(b"Xa\0Tc\0\0"), Err(91));
        assert_eq!(parse_envelope(b"Fa\0Xc\0\0"), Err(91));
        assert_eq!(parse_envelope(b"Fa\0Tc\0"), Err(91));
        assert_eq!(parse_envelope(b"Fa\0\0"), Err(91));
        assert_eq!(parse_envelope(b"Fa\0Tc\0\0junk"), Err(91));
        let mut long = b"Fa\0T".to_vec();
        long.extend(std::iter::repeat(b'x').take(1003));
        long.extend_from_slice(b"\0\0");
        assert_eq!(parse_envelope(&long), Err(11));
        assert_eq!(envelope_end(b"Fa\0Tb\0\0rest"), Some(7));
        assert_eq!(envelope_end(b"Fa\0Tb\0"), None);
    }
    #[test]
    fn received_uid_round_trip() {
        let l = received_line(42, 65534, "Sun, 29 Nov 2026 07:09:07 +0000");
        assert_eq!(received_uid(&l), Some(65534));
        assert_eq!(received_uid(b"Received: from x"), None);
    }
}

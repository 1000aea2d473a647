//! The submission side of the queue: the drop directory (queue-inject(8),
//! pipemail-queue(5)).
//!
//! Any uid may submit. queue-inject writes into `queue/drop/`, a directory
//! owned by the queue user with mode 1733: everyone may create files there,
//! nobody but the owner may list it, and the sticky bit stops anyone from
//! removing or renaming another uid's files. Names carry 64 random bits, so
//! a file can be opened only by whoever made it (and queue-run).
//!
//! One submission is one file, `drop/ID` (ID = `SECS.PID.RANDOM`), made
//! durable by one file fsync and one directory fsync:
//!
//! 1. an unnamed file is opened in drop/ (O_TMPFILE; where the file system
//!    lacks it, `drop/ID.tmp`), mode 0644; the `Received:` line and the
//!    message are written;
//! 2. the envelope section and the tail are appended (format below);
//! 3. **commit point:** the file gets its name `drop/ID` (linkat, or a
//!    link of the .tmp), then the file is fsync'd (data and inode, and on
//!    ext4, XFS and btrfs the new name with them); on other file systems
//!    drop/ is fsync'd too, so the name is durable before queue-inject
//!    exits 0 (a submitter that may not open drop/ for reading calls
//!    syncfs(2) instead of that second fsync);
//! 4. one byte is written to the fifo `queue/trigger` if anyone listens.
//!
//! A crash before step 3 leaves nothing (or an `ID.tmp` that queue-run
//! removes); a named `drop/ID` is always whole. The file, version 1:
//!
//! ```text
//! MESSAGE    the Received: line, then the message bytes as read from fd 0
//! ENVELOPE   `I` ID NUL `F` sender NUL (`T` recipient NUL)... NUL
//! TAIL       "\n#pipemail-queue-v1 " + 20 decimal digits (MESSAGE's length) + "\n"
//! ```
//!
//! The tail is found from the file's end; its version word lets a later
//! format add records. queue-run trusts only the kernel's record (st_uid)
//! of who made the file, checks that the first line is this module's
//! `Received:` line naming that same uid and that the `I` record names
//! the file itself.

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

/// Writes `line` into `queue/trigger` (anyone may); silent when queue-run
/// is not running (nobody has the FIFO open).
fn trigger(line: &[u8]) -> std::io::Result<()> {
    let Ok(fd) = crate::sys::fs::open_fifo_writer(&trigger_path()) else {
        return Ok(());
    };
    let r = crate::sys::write_all(fd, line);
    crate::sys::close(fd);
    r
}

/// Wakes queue-run through `queue/trigger`; silent when nobody listens.
pub fn pull_trigger() {
    let _ = trigger(b"x");
}

/// ETRN (RFC 1985) for smtp-recv and others: asks a running queue-run to
/// retry the remote recipients in `domain` now, by writing `E`domain LF
/// into `queue/trigger`. Silent when queue-run is not running.
pub fn etrn(domain: &[u8]) -> std::io::Result<()> {
    if domain.is_empty() || domain.len() > 255 || domain.iter().any(|&c| c <= b' ' || c >= 0x7f) {
        return Err(std::io::Error::from_raw_os_error(libc::EINVAL));
    }
    trigger(&[b"E", domain, b"\n"].concat())
}

/// The tail's fixed part; 20 digits and a newline follow.
pub const TAIL_MAGIC: &[u8] = b"\n#pipemail-queue-v1 ";
/// Length of the whole tail.
pub const TAIL_LEN: usize = TAIL_MAGIC.len() + 21;

/// The envelope section and tail that end a drop file whose message part
/// is `msg_len` bytes long.
pub fn trailer(id: &str, envelope: &[u8], msg_len: u64) -> Vec<u8> {
    let mut v = Vec::with_capacity(id.len() + envelope.len() + TAIL_LEN + 2);
    v.push(b'I');
    v.extend_from_slice(id.as_bytes());
    v.push(0);
    v.extend_from_slice(envelope);
    v.extend_from_slice(TAIL_MAGIC);
    v.extend_from_slice(format!("{:020}\n", msg_len).as_bytes());
    v
}

/// Where the message part of a drop file of `size` bytes ends, from its
/// last [`TAIL_LEN`] bytes; None when that is not a version 1 tail.
pub fn tail_offset(tail: &[u8], size: u64) -> Option<u64> {
    let digits = tail.strip_prefix(TAIL_MAGIC)?.strip_suffix(b"\n")?;
    if digits.len() != 20 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let off = crate::parse::number(&digits[1..]).filter(|_| digits[0] == b'0')?;
    (off <= size.checked_sub(TAIL_LEN as u64)?).then_some(off)
}

/// Parses the envelope section (between the message and the tail) of the
/// drop file named `id`. None when the `I` record names another file or
/// the envelope does not parse.
pub fn parse_section(id: &str, sec: &[u8]) -> Option<Envelope> {
    let rest = sec.strip_prefix(b"I")?;
    let nul = memchr::memchr(0, rest)?;
    if &rest[..nul] != id.as_bytes() {
        return None;
    }
    parse_envelope(&rest[nul + 1..]).ok()
}

/// One submission in progress. Dropping it uncommitted removes its file.
pub struct Inject {
    dir: PathBuf,
    out: io::BufWriter<File>,
    /// Bytes of the message part written so far.
    len: u64,
    /// The `.tmp` name when the file system has no O_TMPFILE.
    tmp: Option<PathBuf>,
}

fn new_id() -> String {
    format!(
        "{}.{}.{}",
        crate::sys::now(),
        std::process::id(),
        crate::sys::random_hex(8)
    )
}

/// An unnamed file in `dir` (O_TMPFILE), mode 0644; None when the file
/// system (or a missing /proc, needed to name it) does not allow one.
fn open_unnamed(dir: &Path) -> io::Result<Option<File>> {
    if !Path::new("/proc/self/fd").is_dir() {
        return Ok(None);
    }
    match std::fs::OpenOptions::new()
        .write(true)
        .mode(0o644)
        .custom_flags(libc::O_TMPFILE | libc::O_CLOEXEC)
        .open(dir)
    {
        Ok(f) => Ok(Some(f)),
        Err(e)
            if matches!(
                e.raw_os_error(),
                Some(libc::EOPNOTSUPP) | Some(libc::EISDIR) | Some(libc::EINVAL)
            ) =>
        {
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

fn open_new(p: &Path) -> io::Result<File> {
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .custom_flags(libc::O_CLOEXEC)
        .open(p)
}

impl Inject {
    /// Opens the submission's file and writes the `Received:` line. Err is
    /// an exit code.
    pub fn create() -> Result<Inject, i32> {
        let home = crate::control::home();
        if !home.is_dir() {
            return Err(code::HOME);
        }
        let dir = drop_dir();
        let (f, tmp) = match open_unnamed(&dir) {
            Ok(Some(f)) => (f, None),
            Ok(None) => {
                let p = dir.join(format!("{}.tmp", new_id()));
                (open_new(&p).map_err(|_| code::QUEUE_DIR)?, Some(p))
            }
            Err(_) => return Err(code::QUEUE_DIR),
        };
        // The umask must not make the file unreadable for queue-run.
        f.set_permissions(std::fs::Permissions::from_mode(0o644))
            .map_err(|_| code::QUEUE_DIR)?;
        let mut inj = Inject {
            dir,
            out: io::BufWriter::with_capacity(65536, f),
            len: 0,
            tmp,
        };
        let line = received_line(
            std::process::id(),
            crate::sys::geteuid(),
            &crate::date::now(),
        );
        inj.write(&line)?;
        Ok(inj)
    }

    /// Appends message bytes. Err(53) on a write error (disk full).
    pub fn write(&mut self, b: &[u8]) -> Result<(), i32> {
        self.len += b.len() as u64;
        self.out.write_all(b).map_err(|_| code::WRITE)
    }

    /// Validates the envelope, makes the file durable and names it (steps
    /// 2-4 above). Returns the queue id; Err is an exit code and nothing
    /// is queued then.
    pub fn commit(mut self, envelope: &[u8]) -> Result<String, i32> {
        parse_envelope(envelope)?;
        let id = new_id();
        let t = trailer(&id, envelope, self.len);
        self.out.write_all(&t).map_err(|_| code::WRITE)?;
        self.out.flush().map_err(|_| code::WRITE)?;
        let name = self.dir.join(&id);
        // Both refuse an existing name (a 64-bit clash fails like any
        // queue error).
        let r = match &self.tmp {
            None => crate::sys::fs::link_unnamed(self.out.get_ref(), &name),
            Some(tmp) => std::fs::hard_link(tmp, &name).and_then(|_| std::fs::remove_file(tmp)),
        };
        r.map_err(|_| code::QUEUE_DIR)?;
        self.tmp = None;
        // The name is the commit point. One fsync makes the data and the
        // inode (its link) durable, and on the usual Linux file systems
        // the new name with them; elsewhere one more fsync, of drop/.
        let f = self.out.get_ref();
        let r = f.sync_all().map_err(|_| code::WRITE).and_then(|_| {
            if crate::sys::fsync_covers_new_name(f) {
                return Ok(());
            }
            match crate::sys::fsync_dir(&self.dir) {
                Err(e) if e.raw_os_error() == Some(libc::EACCES) => crate::sys::syncfs(f),
                r => r,
            }
            .map_err(|_| code::QUEUE_DIR)
        });
        if let Err(c) = r {
            // Not acknowledged: withdraw it (if queue-run took it already,
            // it is delivered anyway: a duplicate at worst, never a loss).
            let _ = std::fs::remove_file(&name);
            return Err(c);
        }
        pull_trigger();
        Ok(id)
    }
}

impl Drop for Inject {
    fn drop(&mut self) {
        if let Some(tmp) = &self.tmp {
            let _ = self.out.get_ref().set_len(0);
            let _ = std::fs::remove_file(tmp);
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
    fn trailers() {
        let env = b"Fa@b\0Tc@d\0\0";
        let mut f = b"Received: x\nbody\n".to_vec();
        let n = f.len() as u64;
        f.extend_from_slice(&trailer("1.2.ab", env, n));
        let size = f.len() as u64;
        let off = tail_offset(&f[f.len() - TAIL_LEN..], size).unwrap();
        assert_eq!(off, n);
        let sec = &f[off as usize..f.len() - TAIL_LEN];
        assert_eq!(
            parse_section("1.2.ab", sec).unwrap().recipients,
            vec![b"c@d".to_vec()]
        );
        assert_eq!(parse_section("1.2.ac", sec), None);
        assert_eq!(tail_offset(&f[f.len() - TAIL_LEN..], 10), None);
        assert_eq!(
            tail_offset(b"\n#pipemail-queue-v2 00000000000000000001\n", 99),
            None
        );
    }
    #[test]
    fn received_uid_round_trip() {
        let l = received_line(42, 65534, "Sun, 29 Nov 2026 07:09:07 +0000");
        assert_eq!(received_uid(&l), Some(65534));
        assert_eq!(received_uid(b"Received: from x"), None);
    }
}

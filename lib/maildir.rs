//! Maildir delivery (deliver-maildir(8)): write in tmp/, fsync, link into
//! new/ under a name that is never reused, fsync new/. Readers never see
//! a partial file; a failure leaves nothing behind in tmp/.
//!
//! Names: `SECS.M<usec>P<pid>V<dev>I<inode>Q<count>.HOST,S=<size>,W=<size
//! with CRLF>` (V and I in hex); in HOST `/`, `:` and `,` are written as
//! `\057`, `\072` and `\054`.

use crate::deliver::Fail;
use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI32, AtomicU64, AtomicUsize, Ordering};

/// Deliveries by this process (the `Q` part of names).
static COUNT: AtomicU64 = AtomicU64::new(0);

/// local-spawn's group commit: a socket to send new/'s descriptor to
/// instead of fsyncing it here, or -1.
static DEFER_SYNC: AtomicI32 = AtomicI32::new(-1);
static DEFERRED: AtomicUsize = AtomicUsize::new(0);
/// Most directories one delivery hands over; past it, it syncs them itself.
pub const DEFER_MAX: usize = 16;

/// From now on new/ is not fsync'd here: its descriptor goes to `sock`,
/// whose reader (local-spawn) syncs it, with the other deliveries that
/// finished together, before it reports success.
pub fn defer_dir_syncs(sock: i32) {
    DEFER_SYNC.store(sock, Ordering::SeqCst);
}

/// Makes new/'s entries durable: fsync, or hands it to the group commit.
fn sync_new(dir: &Path) -> io::Result<()> {
    let new = dir.join("new");
    let sock = DEFER_SYNC.load(Ordering::SeqCst);
    if sock >= 0 && DEFERRED.fetch_add(1, Ordering::SeqCst) < DEFER_MAX {
        let fd = crate::sys::fs::open(&new, libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC)?;
        let r = crate::sys::net::send_with_fd(sock, b"S", fd);
        crate::sys::close(fd);
        if r.is_ok() {
            return Ok(());
        }
    }
    crate::sys::fsync_dir(&new)
}

/// The host name as it may appear in a unique name.
pub fn escaped_host(h: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(h.len());
    for &c in h {
        match c {
            b'/' => v.extend_from_slice(b"\\057"),
            b':' => v.extend_from_slice(b"\\072"),
            b',' => v.extend_from_slice(b"\\054"),
            _ => v.push(c),
        }
    }
    v
}

/// Sizes of the stored file: bytes, and bytes with every LF as CRLF.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Sizes {
    pub size: u64,
    pub crlf: u64,
    /// The last byte counted (meaningful when size > 0).
    pub tail: u8,
}

impl Sizes {
    /// Counts `b`: an LF not after a CR costs one more byte when sent.
    pub fn add(&mut self, b: &[u8]) {
        let Some(&last) = b.last() else { return };
        let prev = self.last();
        self.size += b.len() as u64;
        self.crlf += b.len() as u64;
        for i in memchr::memchr_iter(b'\n', b) {
            if (if i == 0 { prev } else { b[i - 1] }) != b'\r' {
                self.crlf += 1;
            }
        }
        self.tail = last;
    }

    fn last(&self) -> u8 {
        if self.size == 0 {
            b'\n'
        } else {
            self.tail
        }
    }

    /// The size as POP3 and IMAP send it: every line end CRLF, and a last
    /// line without one completed (as pop3d's crlf_size counts it).
    pub fn sent(&self) -> u64 {
        match self.last() {
            b'\n' => self.crlf,
            b'\r' => self.crlf + 1,
            _ => self.crlf + 2,
        }
    }
}

/// The name in new/ for a message.
#[allow(clippy::too_many_arguments)]
pub fn unique_name(
    secs: u64,
    usec: u64,
    pid: u32,
    dev: u64,
    ino: u64,
    q: u64,
    host: &[u8],
    s: Sizes,
) -> Vec<u8> {
    let mut n = format!("{}.M{}P{}V{:x}I{:x}Q{}.", secs, usec, pid, dev, ino, q).into_bytes();
    n.extend_from_slice(&escaped_host(host));
    n.extend_from_slice(format!(",S={},W={}", s.size, s.sent()).as_bytes());
    n
}

fn p(dir: &Path, sub: &str, name: &[u8]) -> PathBuf {
    dir.join(sub).join(OsStr::from_bytes(name))
}

/// Delivers `pre` (the added header lines) and the message read from `fd`
/// to the Maildir `dir`. Ok: the path of the file in new/. Every failure
/// is temporary (111).
pub fn deliver(dir: &Path, pre: &[u8], fd: i32) -> Result<PathBuf, Fail> {
    crate::sys::signal_ignore(libc::SIGXFSZ, true);
    let host = crate::sys::hostname();
    let pid = std::process::id();
    let mut tries = 0;
    let (tmp, file, q, now) = loop {
        let q = COUNT.fetch_add(1, Ordering::SeqCst);
        let now = crate::sys::now_us();
        let mut name =
            format!("{}.M{}P{}Q{}.", now / 1_000_000, now % 1_000_000, pid, q).into_bytes();
        name.extend_from_slice(&escaped_host(&host));
        let tmp = p(dir, "tmp", &name);
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_CLOEXEC)
            .open(&tmp)
        {
            Ok(f) => break (tmp, f, q, now),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && tries < 5 => tries += 1,
            Err(e) => {
                return Err(Fail::sys(
                    &[
                        b"Unable to create a file in ",
                        crate::control::bytes(&dir.join("tmp")),
                    ]
                    .concat(),
                    &e,
                ))
            }
        }
    };
    let r = write_and_link(dir, &tmp, file, pre, fd, pid, q, now, &host);
    let _ = std::fs::remove_file(&tmp);
    r
}

#[allow(clippy::too_many_arguments)]
fn write_and_link(
    dir: &Path,
    tmp: &Path,
    file: File,
    pre: &[u8],
    fd: i32,
    pid: u32,
    q: u64,
    now: u64,
    host: &[u8],
) -> Result<PathBuf, Fail> {
    let wfail = |e: &io::Error| {
        Fail::sys(
            &[b"Unable to write ", crate::control::bytes(tmp)].concat(),
            e,
        )
    };
    let mut sizes = Sizes::default();
    let mut out = io::BufWriter::with_capacity(65536, file);
    out.write_all(pre).map_err(|e| wfail(&e))?;
    sizes.add(pre);
    // Read into, never zeroed: a forked delivery would memset and fault
    // in 64 KiB for a 4 KiB message.
    let mut buf = Vec::with_capacity(65536);
    loop {
        buf.clear();
        match crate::sys::read_spare(fd, &mut buf) {
            Ok(0) => break,
            Ok(_) => {
                out.write_all(&buf).map_err(|e| wfail(&e))?;
                sizes.add(&buf);
            }
            Err(e) => return Err(Fail::sys(b"Unable to read message", &e)),
        }
    }
    let file = out.into_inner().map_err(|e| wfail(e.error()))?;
    file.sync_all().map_err(|e| wfail(&e))?;
    let m = file.metadata().map_err(|e| wfail(&e))?;
    drop(file);
    let mut q = q;
    for _ in 0..5 {
        let name = unique_name(
            now / 1_000_000,
            now % 1_000_000,
            pid,
            m.dev(),
            m.ino(),
            q,
            host,
            sizes,
        );
        let new = p(dir, "new", &name);
        match link_noreplace(tmp, &new) {
            Ok(()) => {
                if let Err(e) = sync_new(dir) {
                    let _ = std::fs::remove_file(&new);
                    return Err(Fail::sys(b"Unable to sync new/", &e));
                }
                return Ok(new);
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                q = COUNT.fetch_add(1, Ordering::SeqCst)
            }
            Err(e) => {
                return Err(Fail::sys(
                    &[
                        b"Unable to link message into ",
                        crate::control::bytes(&dir.join("new")),
                    ]
                    .concat(),
                    &e,
                ))
            }
        }
    }
    Err(Fail::temp(b"Unable to find a free name in new/. (#4.3.0)"))
}

/// link(2); where the file system has no hard links, a rename that
/// refuses to replace. Never overwrites.
fn link_noreplace(from: &Path, to: &Path) -> io::Result<()> {
    match std::fs::hard_link(from, to) {
        Ok(()) => Ok(()),
        Err(e)
            if matches!(
                e.raw_os_error(),
                Some(libc::EPERM | libc::EOPNOTSUPP | libc::ENOSYS)
            ) =>
        {
            crate::sys::fs::rename_noreplace(from, to)
        }
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn names() {
        let mut s = Sizes::default();
        s.add(b"a\nbc\n");
        assert_eq!((s.size, s.crlf, s.sent()), (5, 7, 7));
        let mut t = Sizes::default();
        t.add(b"a\r");
        t.add(b"\nb");
        assert_eq!(
            (t.size, t.sent()),
            (4, 6),
            "CRLF split across writes; last line completed"
        );
        assert_eq!(
            unique_name(1700000000, 42, 7, 0x801, 0xabc, 3, b"h/o:s,t", s),
            b"1700000000.M42P7V801IabcQ3.h\\057o\\072s\\054t,S=5,W=7".to_vec()
        );
    }
}

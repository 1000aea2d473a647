//! Maildir delivery (deliver-maildir(8)): write in tmp/, fsync, link into
//! new/ under a name that is never reused, fsync new/. Readers never see
//! a partial file; a failure leaves nothing behind in tmp/.
//!
//! Names come from [`super::name`]: in tmp/ without the inode and sizes,
//! in new/ with them.

use crate::deliver::Fail;
use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI32, AtomicUsize, Ordering};

use super::name::Unique;
use super::{path as p, Sizes};

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

/// Delivers `pre` (the added header lines) and the message read from `fd`
/// to the Maildir `dir`. Ok: the path of the file in new/. Every failure
/// is temporary (111).
pub fn deliver(dir: &Path, pre: &[u8], fd: i32) -> Result<PathBuf, Fail> {
    crate::sys::signal_ignore(libc::SIGXFSZ, true);
    let mut tries = 0;
    let (tmp, file, u) = loop {
        let u = Unique::new();
        let tmp = p(dir, "tmp", &u.name(None, None));
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_CLOEXEC)
            .open(&tmp)
        {
            Ok(f) => break (tmp, f, u),
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
    let r = write_and_link(dir, &tmp, file, pre, fd, u);
    let _ = std::fs::remove_file(&tmp);
    r
}

fn write_and_link(
    dir: &Path,
    tmp: &Path,
    file: File,
    pre: &[u8],
    fd: i32,
    mut u: Unique,
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
    for _ in 0..5 {
        let name = u.name(Some((m.dev(), m.ino())), Some((sizes.size, sizes.sent())));
        let new = p(dir, "new", &name);
        match link_noreplace(tmp, &new) {
            Ok(()) => {
                if let Err(e) = sync_new(dir) {
                    let _ = std::fs::remove_file(&new);
                    return Err(Fail::sys(b"Unable to sync new/", &e));
                }
                return Ok(new);
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => u.bump(),
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

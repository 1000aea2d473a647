//! Maildir and Maildir++ (maildir(5)): the one owner of message names,
//! sizes, flags and folders, which deliveries, pop3d, imapd and the
//! maildir tools share.
//!
//! - [`name`]: the one unique-name generator and what a name carries
//! - [`lines`]: line ends as stored (LF) and as sent (CRLF), sizes both ways
//! - [`flags`]: the `:2,` info letters of a file name
//! - [`folder`]: folder names (the one check, modified UTF-7 on disk) and
//!   the Maildir++ tree (create, delete, rename, list, subscriptions)
//! - [`utf7`]: modified UTF-7, the folder names' encoding on disk and on
//!   the IMAP wire
//! - [`deliver`], [`make`], [`clean`]: deliver-maildir, maildir-make,
//!   maildir-clean

pub mod clean;
pub mod deliver;
pub mod flags;
pub mod folder;
pub mod lines;
pub mod make;
pub mod name;
pub mod utf7;

pub use deliver::{defer_dir_syncs, deliver, DEFER_MAX};
pub use lines::Sizes;

use std::fs;
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

/// The lock file of a folder: its flock(2) serialises the changes that
/// readers must see whole (imapd's uidlist and keywords, the tree's
/// subscriptions, moving INBOX).
pub const LOCKFILE: &str = "pipemail-uidlist.lock";

/// The flock on a folder; released when dropped.
pub struct Lock(#[allow(dead_code)] fs::File);

/// Takes the folder `dir`'s lock (waits for it).
pub fn lock(dir: &Path) -> io::Result<Lock> {
    locked(&dir.join(LOCKFILE)).map(Lock)
}

/// Opens (or creates, mode 0600) `path` and takes an exclusive flock on it.
pub fn locked(path: &Path) -> io::Result<fs::File> {
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

/// `dir/sub/name`.
pub fn path(dir: &Path, sub: &str, name: &[u8]) -> PathBuf {
    dir.join(sub).join(std::ffi::OsStr::from_bytes(name))
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

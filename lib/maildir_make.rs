//! maildir-make: create a Maildir, or a Maildir++ folder inside one
//! (maildir-make(1)).
//!
//! A Maildir is a directory with tmp/, new/ and cur/, all mode 0700. A
//! Maildir++ folder `F` of the Maildir `dir` is the Maildir `dir/.F` with an
//! empty file `maildirfolder` in it; `.` separates levels (`Lists.rust`).

use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// A failed step: the path it was about and the error.
#[derive(Debug)]
pub struct MakeError {
    pub path: PathBuf,
    pub verb: &'static str,
    pub err: io::Error,
}

/// Whether `f` is a usable folder name: not empty, no `/` or NUL, no
/// leading or trailing `.`, no empty level (`..`), at most 200 bytes.
pub fn folder_ok(f: &[u8]) -> bool {
    !f.is_empty()
        && f.len() <= 200
        && !f.contains(&b'/')
        && !f.contains(&0)
        && f[0] != b'.'
        && f[f.len() - 1] != b'.'
        && !f.windows(2).any(|w| w == b"..")
}

/// The directory name of folder `f` (UTF-8) without its dot: modified
/// UTF-7 (RFC 3501 §5.1.3), the one encoding on disk, which imapd lists
/// and selects. ASCII that is already modified UTF-7 is kept (`Entw&APw-rfe`),
/// anything else is encoded (`Entwürfe`, `R&D`). None when `f` is not UTF-8.
pub fn folder_on_disk(f: &[u8]) -> Option<Vec<u8>> {
    if f.is_ascii() && crate::imap::utf7::decode(f).is_some() {
        return Some(f.to_vec());
    }
    std::str::from_utf8(f).ok().map(crate::imap::utf7::encode)
}

fn mkdir(p: &Path, exist_ok: bool) -> Result<(), MakeError> {
    match std::fs::DirBuilder::new().mode(0o700).create(p) {
        Ok(()) => Ok(()),
        Err(e) if exist_ok && e.kind() == io::ErrorKind::AlreadyExists && p.is_dir() => Ok(()),
        Err(err) => Err(MakeError {
            path: p.to_path_buf(),
            verb: "mkdir",
            err,
        }),
    }
}

fn maildir(dir: &Path, exist_ok: bool) -> Result<(), MakeError> {
    mkdir(dir, exist_ok)?;
    for sub in ["tmp", "new", "cur"] {
        mkdir(&dir.join(sub), exist_ok)?;
    }
    Ok(())
}

/// Makes the Maildir `dir` (with `parents`: its parent directories too,
/// and an existing Maildir is fine), or with `folder` the folder `.F` in
/// `dir` (with `parents`, `dir` is made as a Maildir first).
pub fn make(dir: &Path, parents: bool, folder: Option<&[u8]>) -> Result<(), MakeError> {
    if parents {
        if let Some(up) = dir.parent().filter(|u| !u.as_os_str().is_empty()) {
            std::fs::create_dir_all(up).map_err(|err| MakeError {
                path: up.to_path_buf(),
                verb: "mkdir",
                err,
            })?;
        }
    }
    let f = match folder {
        None => return maildir(dir, parents),
        Some(f) => f,
    };
    if parents {
        maildir(dir, true)?;
    }
    let mut name = b".".to_vec();
    name.extend_from_slice(&folder_on_disk(f).unwrap_or_else(|| f.to_vec()));
    let fdir = dir.join(<std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(&name));
    maildir(&fdir, parents)?;
    let mf = fdir.join("maildirfolder");
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&mf)
        .map(|_| ())
        .map_err(|err| MakeError {
            path: mf,
            verb: "create",
            err,
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn folder_names() {
        for good in [&b"Sent"[..], b"Lists.rust", b"a b", b"\xc3\xa9t\xc3\xa9"] {
            assert!(folder_ok(good));
        }
        for bad in [
            &b""[..],
            b".Sent",
            b"Sent.",
            b"a..b",
            b"a/b",
            b"..",
            b".",
            b"a\0b",
        ] {
            assert!(!folder_ok(bad), "{:?}", bad);
        }
    }
}

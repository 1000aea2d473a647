//! maildir-make: create a Maildir, or a Maildir++ folder inside one
//! (maildir-make(1)).
//!
//! A Maildir is a directory with tmp/, new/ and cur/, all mode 0700. A
//! Maildir++ folder `F` of the Maildir `dir` is the Maildir `dir/.F` with an
//! empty file `maildirfolder` in it; `.` separates levels (`Lists.rust`),
//! names are checked and encoded by [`super::folder`].

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
    let Some(name) = super::folder::name_from_utf8(f) else {
        return Err(MakeError {
            path: dir.to_path_buf(),
            verb: "name a folder in",
            err: io::Error::from_raw_os_error(libc::EINVAL),
        });
    };
    let fdir = super::folder::folder_dir(dir, &name).unwrap_or_default();
    if !parents {
        // Built whole in tmp/ and renamed into place, as imapd's CREATE.
        return super::folder::create(dir, &name).map_err(|err| MakeError {
            path: fdir.clone(),
            verb: "mkdir",
            err: match err.kind() {
                io::ErrorKind::AlreadyExists => io::Error::from_raw_os_error(libc::EEXIST),
                _ => err,
            },
        });
    }
    maildir(&fdir, true)?;
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

//! Maildir++ folders: the one check of a folder name, the one encoding of
//! names on disk (modified UTF-7, RFC 3501 §5.1.3, which imapd lists and
//! selects as they are), and the tree: list, create, delete, rename,
//! subscriptions.
//!
//! INBOX is the Maildir itself; folder `a.b` is the directory `.a.b` with
//! an empty `maildirfolder` file (`.` the hierarchy separator).

use super::{lock, names, path as p, replace};
use std::ffi::OsStr;
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// The longest folder name on disk: the directory `.NAME` must fit in one
/// file name (NAME_MAX, 255 bytes).
pub const MAX_NAME: usize = 254;

/// The name on disk of folder `f` given in UTF-8 (maildir-make -f,
/// maildir-clean -T): ASCII that is already modified UTF-7 is kept
/// (`Entw&APw-rfe`), anything else is encoded (`Entwürfe`, `R&D`). None
/// when `f` is not UTF-8.
pub fn from_utf8(f: &[u8]) -> Option<Vec<u8>> {
    if f.is_ascii() && super::utf7::decode(f).is_some() {
        return Some(f.to_vec());
    }
    std::str::from_utf8(f).ok().map(super::utf7::encode)
}

/// The name on disk of a folder a person names in UTF-8, when it is a
/// folder name ([`valid_name`], and not INBOX, which is the Maildir).
pub fn name_from_utf8(f: &[u8]) -> Option<Vec<u8>> {
    from_utf8(f).filter(|n| valid_name(n) && !is_inbox(n))
}

/// Whether `name` can be a folder name (modified UTF-7, no empty
/// components, nothing that walks the file system).
pub fn valid_name(name: &[u8]) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME
        && !name.contains(&b'/')
        && name.split(|&c| c == b'.').all(|c| !c.is_empty())
        && super::utf7::decode(name).is_some()
}

pub fn is_inbox(name: &[u8]) -> bool {
    name.eq_ignore_ascii_case(b"INBOX")
}

/// The directory of folder `name` under `root`; None when the name is bad.
pub fn folder_dir(root: &Path, name: &[u8]) -> Option<PathBuf> {
    if is_inbox(name) {
        return Some(root.to_path_buf());
    }
    if !valid_name(name) {
        return None;
    }
    let mut d = b".".to_vec();
    d.extend_from_slice(name);
    Some(root.join(OsStr::from_bytes(&d)))
}

/// Every folder except INBOX, sorted.
pub fn folders(root: &Path) -> io::Result<Vec<Vec<u8>>> {
    let mut v = Vec::new();
    for e in fs::read_dir(root)? {
        let e = e?;
        let n = e.file_name();
        let b = n.as_bytes();
        // A name that is not modified UTF-7 can be neither listed nor
        // selected: maildir-make and CREATE never make one.
        if b.len() > 1
            && b[0] == b'.'
            && b != b".."
            && valid_name(&b[1..])
            && e.path().join("cur").is_dir()
        {
            v.push(b[1..].to_vec());
        }
    }
    v.sort();
    Ok(v)
}

/// Creates folder `name`: built in tmp/ and renamed into place, so it
/// appears whole or not at all. AlreadyExists when it is there.
pub fn create(root: &Path, name: &[u8]) -> io::Result<()> {
    let dir = folder_dir(root, name).ok_or_else(|| io::Error::from_raw_os_error(libc::EINVAL))?;
    if dir.exists() {
        return Err(io::Error::from(io::ErrorKind::AlreadyExists));
    }
    let tmp = root.join("tmp").join(format!(
        ".create.{}.{}",
        std::process::id(),
        crate::sys::random_hex(6)
    ));
    let made = (|| {
        let mut b = fs::DirBuilder::new();
        b.mode(0o700).create(&tmp)?;
        for s in ["cur", "new", "tmp"] {
            b.create(tmp.join(s))?;
        }
        fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(tmp.join("maildirfolder"))
            .map(drop)
    })();
    if let Err(e) = made {
        let _ = fs::remove_dir_all(&tmp);
        return Err(e);
    }
    match fs::rename(&tmp, &dir) {
        Ok(()) => Ok(()),
        Err(e) => {
            let _ = fs::remove_dir_all(&tmp);
            if e.raw_os_error() == Some(libc::ENOTEMPTY) || e.raw_os_error() == Some(libc::EEXIST) {
                Err(io::Error::from(io::ErrorKind::AlreadyExists))
            } else {
                Err(e)
            }
        }
    }
}

/// Deletes folder `name` (not its children): renamed into tmp/ first.
pub fn delete(root: &Path, name: &[u8]) -> io::Result<()> {
    let dir = folder_dir(root, name).ok_or_else(|| io::Error::from_raw_os_error(libc::EINVAL))?;
    let tmp = root.join("tmp").join(format!(
        ".deleted.{}.{}",
        std::process::id(),
        crate::sys::random_hex(6)
    ));
    fs::rename(&dir, &tmp)?;
    fs::remove_dir_all(&tmp)
}

/// Renames folder `old` and its children to `new`. INBOX as `old` moves
/// its messages into a new folder and leaves INBOX empty (RFC 3501).
pub fn rename(root: &Path, old: &[u8], new: &[u8]) -> io::Result<()> {
    let nd = folder_dir(root, new).ok_or_else(|| io::Error::from_raw_os_error(libc::EINVAL))?;
    if is_inbox(new) || nd.exists() {
        return Err(io::Error::from(io::ErrorKind::AlreadyExists));
    }
    if is_inbox(old) {
        create(root, new)?;
        let _l = lock(root)?;
        for sub in ["new", "cur"] {
            for n in names(&root.join(sub))? {
                match fs::rename(p(root, sub, &n), p(&nd, sub, &n)) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e),
                }
            }
        }
        return Ok(());
    }
    let od = folder_dir(root, old).ok_or_else(|| io::Error::from_raw_os_error(libc::EINVAL))?;
    let all = folders(root)?;
    let mut prefix = old.to_vec();
    prefix.push(b'.');
    let children: Vec<Vec<u8>> = all
        .iter()
        .filter(|f| f.starts_with(&prefix))
        .cloned()
        .collect();
    for c in &children {
        let mut n = new.to_vec();
        n.extend_from_slice(&c[old.len()..]);
        if folder_dir(root, &n).map(|d| d.exists()).unwrap_or(true) {
            return Err(io::Error::from(io::ErrorKind::AlreadyExists));
        }
    }
    if od.exists() {
        fs::rename(&od, &nd)?;
    } else if children.is_empty() {
        return Err(io::Error::from(io::ErrorKind::NotFound));
    }
    for c in &children {
        let mut n = new.to_vec();
        n.extend_from_slice(&c[old.len()..]);
        if let (Some(a), Some(b)) = (folder_dir(root, c), folder_dir(root, &n)) {
            fs::rename(a, b)?;
        }
    }
    Ok(())
}

/// The subscribed names, one per line of `subscriptions`.
pub fn subscriptions(root: &Path) -> Vec<Vec<u8>> {
    let d = fs::read(root.join("subscriptions")).unwrap_or_default();
    d.split(|&c| c == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| l.to_vec())
        .collect()
}

pub fn set_subscribed(root: &Path, name: &[u8], on: bool) -> io::Result<()> {
    let _l = lock(root)?;
    let mut s = subscriptions(root);
    let had = s.iter().any(|x| x == name);
    if on == had {
        return Ok(());
    }
    if on {
        s.push(name.to_vec());
    } else {
        s.retain(|x| x != name);
    }
    let mut out = Vec::new();
    for n in s {
        out.extend_from_slice(&n);
        out.push(b'\n');
    }
    replace(&root.join("subscriptions"), &out)
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn folder_names() {
        for good in [&b"a.b"[..], b"Sent", b"Lists.rust", b"a b", b"Entw&APw-rfe"] {
            assert!(valid_name(good), "{:?}", good);
        }
        for bad in [
            &b""[..],
            b".Sent",
            b"Sent.",
            b"a..b",
            b"a/b",
            b"..",
            b".",
            b"\xc3\xbc",
            b"R&D",
        ] {
            assert!(!valid_name(bad), "{:?}", bad);
        }
        assert!(valid_name(&[b'x'; MAX_NAME]));
        assert!(!valid_name(&[b'x'; MAX_NAME + 1]));
        assert_eq!(from_utf8("Entwürfe".as_bytes()).unwrap(), b"Entw&APw-rfe");
        assert_eq!(from_utf8(b"Entw&APw-rfe").unwrap(), b"Entw&APw-rfe");
        assert_eq!(from_utf8(b"R&D").unwrap(), b"R&-D");
        assert_eq!(from_utf8(b"\xff"), None);
    }
}

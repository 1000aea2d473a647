//! users/passwd: the mail accounts check-password knows before the system
//! ones. One account a line, `name:hash:uid:gid:home:`; blank lines and
//! lines starting with `#` are skipped. `hash` is a crypt(3) string.
//! A malformed line is an error naming the file and line.

use crate::control::ControlError;
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Longest accepted name.
pub const MAX_NAME: usize = 255;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub name: Vec<u8>,
    pub hash: Vec<u8>,
    pub uid: u32,
    pub gid: u32,
    pub home: Vec<u8>,
}

impl Entry {
    /// The line for the file, with its newline.
    pub fn line(&self) -> Vec<u8> {
        let mut l = Vec::new();
        for f in [
            &self.name[..],
            &self.hash,
            self.uid.to_string().as_bytes(),
            self.gid.to_string().as_bytes(),
            &self.home,
        ] {
            l.extend_from_slice(f);
            l.push(b':');
        }
        l.push(b'\n');
        l
    }
}

/// The path of the file: $PIPEMAIL_HOME/users/passwd.
pub fn path() -> PathBuf {
    crate::control::path("users/passwd")
}

/// Whether `b` may be a field of the file (no colon, newline or NUL).
pub fn field_ok(b: &[u8]) -> bool {
    !b.iter()
        .any(|&c| c == b':' || c == b'\n' || c == b'\0' || c == b'\r')
}

/// Parses one non-comment line.
pub fn parse_line(l: &[u8]) -> Option<Entry> {
    let f: Vec<&[u8]> = l.split(|&c| c == b':').collect();
    if f.len() < 5 || f[0].is_empty() || f[0].len() > MAX_NAME || f[4].is_empty() {
        return None;
    }
    if f.len() > 5 && f[5..].iter().any(|x| !x.is_empty()) {
        return None;
    }
    let uid = crate::parse::number(f[2]).filter(|&n| n <= u32::MAX as u64)? as u32;
    let gid = crate::parse::number(f[3]).filter(|&n| n <= u32::MAX as u64)? as u32;
    Some(Entry {
        name: f[0].to_vec(),
        hash: f[1].to_vec(),
        uid,
        gid,
        home: f[4].to_vec(),
    })
}

fn cerr(file: &Path, line: usize, what: String) -> ControlError {
    ControlError {
        file: file.to_path_buf(),
        line,
        what,
    }
}

/// Every entry of `text` (the file at `file`, for error messages).
pub fn parse(file: &Path, text: &[u8]) -> Result<Vec<Entry>, ControlError> {
    let mut v = Vec::new();
    for (i, raw) in text.split(|&c| c == b'\n').enumerate() {
        let l = raw.strip_suffix(b"\r").unwrap_or(raw);
        if l.is_empty() || l[0] == b'#' {
            continue;
        }
        match parse_line(l) {
            Some(e) => v.push(e),
            None => {
                return Err(cerr(
                    file,
                    i + 1,
                    "malformed line, want name:hash:uid:gid:home:".into(),
                ))
            }
        }
    }
    Ok(v)
}

/// The whole file; an empty list when it does not exist.
pub fn read(file: &Path) -> Result<Vec<Entry>, ControlError> {
    match std::fs::read(file) {
        Ok(b) => parse(file, &b),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(cerr(
            file,
            0,
            format!("unable to read: {}", crate::exit::errtext(&e)),
        )),
    }
}

/// The entry for `name` (exact, case-sensitive match) in users/passwd.
pub fn lookup(name: &[u8]) -> Result<Option<Entry>, ControlError> {
    Ok(read(&path())?.into_iter().find(|e| e.name == name))
}

/// Writes `entries` to `file` atomically: a temporary file beside it,
/// mode 0600, fsync, rename, fsync of the directory. A file that exists
/// keeps its owner, group and group-read bit (mode 0640 root:pmaild lets
/// smtp-recv check AUTH without root; see check-password(8)).
pub fn write(file: &Path, entries: &[Entry]) -> io::Result<()> {
    use std::io::Write;
    let dir = file.parent().unwrap_or(Path::new("."));
    let mut tmpname = file.as_os_str().to_os_string();
    tmpname.push(format!(".tmp.{}", std::process::id()));
    let tmp = PathBuf::from(tmpname);
    let _ = std::fs::remove_file(&tmp);
    let res = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        let mut text = Vec::new();
        for e in entries {
            text.extend_from_slice(&e.line());
        }
        f.write_all(&text)?;
        if let Ok(old) = std::fs::metadata(file) {
            use std::os::unix::fs::{MetadataExt, PermissionsExt};
            std::os::unix::fs::fchown(&f, Some(old.uid()), Some(old.gid()))?;
            f.set_permissions(std::fs::Permissions::from_mode(old.mode() & 0o640))?;
        }
        f.sync_all()?;
        std::fs::rename(&tmp, file)?;
        crate::sys::fsync_dir(dir)
    })();
    if res.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    res
}

/// Adds `e` or replaces the entry with its name, keeping the order.
pub fn upsert(entries: &mut Vec<Entry>, e: Entry) {
    match entries.iter_mut().find(|x| x.name == e.name) {
        Some(x) => *x = e,
        None => entries.push(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn parses_lines() {
        let t = b"# mail accounts\n\nann:$6$s$h:65534:65534:/home/ann:\nbob:$y$x:1:2:/b:\r\n";
        let v = parse(Path::new("/h/users/passwd"), t).unwrap();
        assert_eq!(v.len(), 2);
        assert_eq!(
            v[0],
            Entry {
                name: b"ann".to_vec(),
                hash: b"$6$s$h".to_vec(),
                uid: 65534,
                gid: 65534,
                home: b"/home/ann".to_vec()
            }
        );
        assert_eq!(v[1].line(), b"bob:$y$x:1:2:/b:\n".to_vec());
    }
    #[test]
    fn malformed_names_line() {
        let e = parse(
            Path::new("/h/users/passwd"),
            b"ok:h:1:1:/x:\nbad:h:x:1:/x:\n",
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "/h/users/passwd line 2: malformed line, want name:hash:uid:gid:home:"
        );
        assert!(parse_line(b"a:h:1:1:").is_none());
        assert!(parse_line(b"a:h:1:1:/x:extra").is_none());
        assert!(parse_line(b":h:1:1:/x:").is_none());
        assert!(parse_line(b"a:h:1:1:/x").is_some());
    }
    #[test]
    fn upsert_replaces_in_place() {
        let mut v = vec![
            parse_line(b"a:h:1:1:/a:").unwrap(),
            parse_line(b"b:h:1:1:/b:").unwrap(),
        ];
        upsert(&mut v, parse_line(b"a:g:2:2:/a:").unwrap());
        upsert(&mut v, parse_line(b"c:g:2:2:/c:").unwrap());
        assert_eq!(
            v.iter().map(|e| e.name.clone()).collect::<Vec<_>>(),
            vec![b"a".to_vec(), b"b".to_vec(), b"c".to_vec()]
        );
        assert_eq!(v[0].hash, b"g");
    }
}

/// `uid:gid` as two numbers.
pub fn parse_ids(b: &[u8]) -> Option<(u32, u32)> {
    let c = memchr::memchr(b':', b)?;
    let u = crate::parse::number(&b[..c]).filter(|&n| n <= u32::MAX as u64)?;
    let g = crate::parse::number(&b[c + 1..]).filter(|&n| n <= u32::MAX as u64)?;
    Some((u as u32, g as u32))
}

/// The first line of `fd` (without its CR LF or LF), at most 1024 bytes,
/// read unbuffered.
pub fn read_password(fd: i32) -> io::Result<Vec<u8>> {
    let mut v = Vec::new();
    let mut b = [0u8; 1];
    while v.len() <= 1024 {
        if crate::sys::read(fd, &mut b)? == 0 || b[0] == b'\n' {
            break;
        }
        v.push(b[0]);
    }
    if v.len() > 1024 {
        return Err(io::Error::from_raw_os_error(libc::E2BIG));
    }
    if v.last() == Some(&b'\r') {
        v.pop();
    }
    Ok(v)
}

/// Adds or changes `name` in `file` under an exclusive lock on
/// `file.lock`. A new entry needs `ids` and `home`; a change keeps the
/// old ones unless given. Err((exit code, message)).
pub fn update(
    file: &Path,
    name: &[u8],
    hash: &[u8],
    ids: Option<(u32, u32)>,
    home: Option<&[u8]>,
) -> Result<(), (i32, Vec<u8>)> {
    use std::os::fd::AsRawFd;
    let temp = |what: &str, e: io::Error| {
        (
            crate::exit::TEMP,
            format!(
                "unable to {} {}: {}",
                what,
                file.display(),
                crate::exit::errtext(&e)
            )
            .into_bytes(),
        )
    };
    let mut lockname = file.as_os_str().to_os_string();
    lockname.push(".lock");
    let lock = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&lockname)
        .map_err(|e| temp("open the lock of", e))?;
    crate::sys::locks::lock(lock.as_raw_fd()).map_err(|e| temp("lock", e))?;
    let mut entries = read(file).map_err(|e| (crate::exit::TEMP, e.text()))?;
    let old = entries.iter().find(|e| e.name == name).cloned();
    let (uid, gid) = match (ids, &old) {
        (Some(i), _) => i,
        (None, Some(o)) => (o.uid, o.gid),
        (None, None) => {
            return Err((
                crate::exit::PERM,
                b"a new account needs -u uid:gid and -d home".to_vec(),
            ))
        }
    };
    let home = match (home, &old) {
        (Some(h), _) => h.to_vec(),
        (None, Some(o)) => o.home.clone(),
        (None, None) => {
            return Err((
                crate::exit::PERM,
                b"a new account needs -u uid:gid and -d home".to_vec(),
            ))
        }
    };
    upsert(
        &mut entries,
        Entry {
            name: name.to_vec(),
            hash: hash.to_vec(),
            uid,
            gid,
            home,
        },
    );
    write(file, &entries).map_err(|e| temp("write", e))
}

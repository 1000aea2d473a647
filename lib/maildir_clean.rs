//! maildir-clean: remove what a Maildir accumulates (maildir-clean(1)).
//!
//! tmp/ files that nobody has touched for 36 hours or more are left by deliveries
//! that died (the Maildir rule: a delivery that takes longer is broken), in
//! the Maildir and in each Maildir++ folder. Optionally, messages in the
//! trash folder that have been there longer than N days.
//!
//! Every step works beneath a directory descriptor opened without following
//! symbolic links (openat, fstatat, unlinkat with AT_SYMLINK_NOFOLLOW), so a
//! Maildir owner who swaps tmp/ for a link cannot make a root cron job
//! remove files elsewhere. Only files are removed, never directories.

use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// tmp/ files older than this (seconds) are stale: 36 hours.
pub const TMP_AGE: u64 = 36 * 3600;

pub struct Opts {
    /// Expire trash messages older than this many days.
    pub trash_days: Option<u64>,
    /// The trash folder's name (without the leading dot).
    pub trash: Vec<u8>,
    /// Only say what would be removed.
    pub dry_run: bool,
}

#[derive(Default)]
pub struct Report {
    /// Files removed (or, with dry_run, to remove), relative to the Maildir.
    pub removed: Vec<Vec<u8>>,
    /// What could not be read or removed: path and error.
    pub errors: Vec<(Vec<u8>, io::Error)>,
}

struct Fd(i32);

impl Drop for Fd {
    fn drop(&mut self) {
        crate::sys::close(self.0);
    }
}

fn open_dir(at: i32, name: &[u8]) -> io::Result<Fd> {
    let fl = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC;
    crate::sys::fs::openat(at, name, fl).map(Fd)
}

/// The names in the directory `d` (without `.` and `..`).
fn names(d: &Fd) -> io::Result<Vec<Vec<u8>>> {
    crate::sys::fs::read_dir_fd(d.0)
}

fn stat_at(d: &Fd, name: &[u8]) -> io::Result<libc::stat> {
    crate::sys::fs::lstat_at(d.0, name)
}

fn is_dir(st: &libc::stat) -> bool {
    st.st_mode & libc::S_IFMT == libc::S_IFDIR
}

/// Which subdirectory, how old (seconds) and by which time stamp.
struct Rule<'a> {
    sub: &'a [u8],
    max: u64,
    age_of: fn(&libc::stat) -> i64,
}

fn tmp_rule() -> Rule<'static> {
    Rule {
        sub: b"tmp",
        max: TMP_AGE,
        age_of: tmp_time,
    }
}

/// Removes the non-directories of `sub` (in `d`) whose age, by `age_of`,
/// is `max` seconds or more. `rel` names `d` in the report.
fn sweep(d: &Fd, rel: &[u8], rule: Rule, now: u64, o: &Opts, r: &mut Report) {
    let Rule { sub, max, age_of } = rule;
    let path = [rel, sub].concat();
    let sd = match open_dir(d.0, sub) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return,
        Err(e) => return r.errors.push((path, e)),
    };
    let list = match names(&sd) {
        Ok(l) => l,
        Err(e) => return r.errors.push((path, e)),
    };
    for n in list {
        let p = [&path[..], b"/", &n].concat();
        let st = match stat_at(&sd, &n) {
            Ok(s) => s,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => {
                r.errors.push((p, e));
                continue;
            }
        };
        let t = age_of(&st).max(0) as u64;
        if is_dir(&st) || now.saturating_sub(t) < max {
            continue;
        }
        if !o.dry_run {
            if let Err(e) = crate::sys::fs::unlink_at(sd.0, &n) {
                if e.kind() != io::ErrorKind::NotFound {
                    r.errors.push((p, e));
                }
                continue;
            }
        }
        r.removed.push(p);
    }
}

/// tmp/ age: the later of access and modification (atime is what the
/// Maildir rule names; mtime covers file systems mounted noatime).
fn tmp_time(st: &libc::stat) -> i64 {
    st.st_atime.max(st.st_mtime)
}

/// Trash age: the inode change time, which a move or copy into the
/// folder sets (the modification time is the original delivery's).
fn trash_time(st: &libc::stat) -> i64 {
    st.st_ctime
}

/// Cleans the Maildir `dir` as of `now` (seconds since the epoch).
/// Err when `dir` is not a Maildir that can be opened.
pub fn clean(dir: &Path, now: u64, o: &Opts) -> io::Result<Report> {
    let root = open_dir(libc::AT_FDCWD, dir.as_os_str().as_bytes())?;
    if !stat_at(&root, b"tmp").is_ok_and(|s| is_dir(&s)) {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "not a Maildir"));
    }
    let mut r = Report::default();
    sweep(&root, b"", tmp_rule(), now, o, &mut r);
    let mut folders: Vec<Vec<u8>> = names(&root)?
        .into_iter()
        .filter(|n| n.len() > 1 && n[0] == b'.' && n != b"..")
        .collect();
    folders.sort();
    let trash = [&b"."[..], &o.trash].concat();
    for f in folders {
        let fd = match open_dir(root.0, &f) {
            Ok(fd) => fd,
            Err(_) => continue, // a file or a link, not a folder
        };
        let rel = [&f[..], b"/"].concat();
        sweep(&fd, &rel, tmp_rule(), now, o, &mut r);
        if let (Some(days), true) = (o.trash_days, f == trash) {
            let max = days.saturating_mul(86400);
            for sub in [&b"cur"[..], b"new"] {
                let rule = Rule {
                    sub,
                    max,
                    age_of: trash_time,
                };
                sweep(&fd, &rel, rule, now, o, &mut r);
            }
        }
    }
    Ok(r)
}

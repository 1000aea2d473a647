//! Files and directories: open/openat, durable steps (fsync, syncfs,
//! linking an O_TMPFILE file, renames that never replace), directory
//! listings by descriptor, FIFOs, inotify, temporary files.

use super::{cpath, cstr, cvt, fdio, random_hex};
use std::ffi::CStr;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;

/// open(2) of `path` with `flags` (no O_CREAT): the descriptor.
pub fn open(path: &Path, flags: i32) -> io::Result<i32> {
    let c = cpath(path)?;
    // SAFETY: c is a NUL-terminated path that outlives the call.
    cvt(unsafe { libc::open(c.as_ptr(), flags) })
}

/// openat(2) of `name` relative to the directory `at` (no O_CREAT).
pub fn openat(at: i32, name: &[u8], flags: i32) -> io::Result<i32> {
    let c = cstr(name)?;
    // SAFETY: c is a NUL-terminated name that outlives the call.
    cvt(unsafe { libc::openat(at, c.as_ptr(), flags) })
}

/// fsync(2) on an open file.
pub fn fsync(fd: i32) -> io::Result<()> {
    // SAFETY: fsync takes no pointers.
    cvt(unsafe { libc::fsync(fd) }).map(|_| ())
}

/// syncfs(2): flushes the whole file system that holds `f`.
pub fn syncfs<F: AsRawFd + ?Sized>(f: &F) -> io::Result<()> {
    // SAFETY: syncfs takes no pointers.
    cvt(unsafe { libc::syncfs(f.as_raw_fd()) }).map(|_| ())
}

/// Makes a directory's entries durable: open it and fsync it.
pub fn fsync_dir(dir: &Path) -> io::Result<()> {
    let fd = open(dir, libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC)?;
    let r = fsync(fd);
    fdio::close(fd);
    r
}

/// Whether an fsync of a file just given a name in a directory also makes
/// that name durable, by the file system's own rule: ext4 (with a
/// journal the link is in the transaction the fsync commits; without
/// one, ext4_sync_parent writes the parent of a new entry), XFS (the link
/// is logged with the inode) and btrfs (fsync logs a new inode's names).
/// Anything else (tmpfs, NFS, ext2's own driver, which shares ext4's
/// magic number: a kernel that has it may set PIPEMAIL_FSYNC_DIRS=1)
/// needs the directory's own fsync. pipemail-queue(5).
pub fn fsync_covers_new_name<F: AsRawFd + ?Sized>(f: &F) -> bool {
    const EXT4: i64 = 0xEF53;
    const XFS: i64 = 0x5846_5342;
    const BTRFS: i64 = 0x9123_683E;
    if std::env::var_os("PIPEMAIL_FSYNC_DIRS").is_some() {
        return false;
    }
    // SAFETY: statfs is plain data; all zeroes is a valid value.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: fstatfs fills the struct it is given.
    if unsafe { libc::fstatfs(f.as_raw_fd(), &mut st) } != 0 {
        return false;
    }
    matches!(st.f_type as i64, EXT4 | XFS | BTRFS)
}

/// fstat(2).
pub fn fstat(fd: i32) -> io::Result<libc::stat> {
    // SAFETY: stat is plain data; all zeroes is a valid value.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: fstat fills the struct it is given.
    cvt(unsafe { libc::fstat(fd, &mut st) })?;
    Ok(st)
}

/// fstatat(2) of `name` in the directory `at`, not following a symlink.
pub fn lstat_at(at: i32, name: &[u8]) -> io::Result<libc::stat> {
    let c = cstr(name)?;
    // SAFETY: stat is plain data; all zeroes is a valid value.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: c is NUL-terminated; fstatat fills the struct it is given.
    cvt(unsafe { libc::fstatat(at, c.as_ptr(), &mut st, libc::AT_SYMLINK_NOFOLLOW) })?;
    Ok(st)
}

/// The file type bits of a stat (S_IFREG, S_IFDIR...).
pub fn file_type(st: &libc::stat) -> libc::mode_t {
    st.st_mode & libc::S_IFMT
}

/// unlinkat(2) of the file `name` in the directory `at`.
pub fn unlink_at(at: i32, name: &[u8]) -> io::Result<()> {
    let c = cstr(name)?;
    // SAFETY: c is a NUL-terminated name that outlives the call.
    cvt(unsafe { libc::unlinkat(at, c.as_ptr(), 0) }).map(|_| ())
}

/// The names in the open directory `fd` (without `.` and `..`), read from
/// its start; `fd` itself is left as it was.
pub fn read_dir_fd(fd: i32) -> io::Result<Vec<Vec<u8>>> {
    let dup = fdio::dup(fd)?;
    // SAFETY: dup is an open descriptor that the DIR now owns (closedir closes it).
    let dir = unsafe { libc::fdopendir(dup) };
    if dir.is_null() {
        let e = io::Error::last_os_error();
        fdio::close(dup);
        return Err(e);
    }
    // SAFETY (this block and the loop's): dir is a valid DIR until the
    // closedir below; each entry is read before the next readdir call.
    // The duplicate shares the offset: start from the beginning.
    unsafe { libc::rewinddir(dir) };
    let mut out = Vec::new();
    loop {
        // SAFETY: as above.
        let ent = unsafe { libc::readdir(dir) };
        if ent.is_null() {
            break;
        }
        // SAFETY: a non-null entry holds a NUL-terminated d_name.
        let n = unsafe { CStr::from_ptr((*ent).d_name.as_ptr()) }.to_bytes();
        if n != b"." && n != b".." {
            out.push(n.to_vec());
        }
    }
    // SAFETY: dir is valid and not used after this.
    unsafe { libc::closedir(dir) };
    Ok(out)
}

/// mkfifo(2) (the umask applies; chmod after for an exact mode).
pub fn mkfifo(path: &Path, mode: u32) -> io::Result<()> {
    let c = cpath(path)?;
    // SAFETY: c is a NUL-terminated path that outlives the call.
    cvt(unsafe { libc::mkfifo(c.as_ptr(), mode as libc::mode_t) }).map(|_| ())
}

/// Opens the FIFO `path` for writing without waiting: ENXIO when no
/// reader has it open.
pub fn open_fifo_writer(path: &Path) -> io::Result<i32> {
    open(path, libc::O_WRONLY | libc::O_NONBLOCK | libc::O_CLOEXEC)
}

/// Gives the unnamed (O_TMPFILE) file `f` the name `to`: linkat through
/// /proc/self/fd.
pub fn link_unnamed(f: &std::fs::File, to: &Path) -> io::Result<()> {
    let from = cpath(Path::new(&format!("/proc/self/fd/{}", f.as_raw_fd())))?;
    let to = cpath(to)?;
    // SAFETY: both paths are NUL-terminated and outlive the call.
    cvt(unsafe {
        libc::linkat(
            libc::AT_FDCWD,
            from.as_ptr(),
            libc::AT_FDCWD,
            to.as_ptr(),
            libc::AT_SYMLINK_FOLLOW,
        )
    })
    .map(|_| ())
}

/// rename(2) that fails (EEXIST) rather than replace `to`.
pub fn rename_noreplace(from: &Path, to: &Path) -> io::Result<()> {
    let (f, t) = (cpath(from)?, cpath(to)?);
    // SAFETY: both paths are NUL-terminated and outlive the call.
    cvt(unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            f.as_ptr(),
            libc::AT_FDCWD,
            t.as_ptr(),
            libc::RENAME_NOREPLACE,
        )
    })
    .map(|_| ())
}

/// Sets the access and modification times of `path` to `t` (seconds).
pub fn set_mtime(path: &Path, t: i64) -> io::Result<()> {
    let c = cpath(path)?;
    let tv = libc::timeval {
        tv_sec: t as libc::time_t,
        tv_usec: 0,
    };
    let tv = [tv, tv];
    // SAFETY: c is NUL-terminated; utimes reads two timevals.
    cvt(unsafe { libc::utimes(c.as_ptr(), tv.as_ptr()) }).map(|_| ())
}

/// Whether this process may execute `path` (access X_OK).
pub fn executable(path: &Path) -> bool {
    match cpath(path) {
        // SAFETY: c is a NUL-terminated path that outlives the call.
        Ok(c) => (unsafe { libc::access(c.as_ptr(), libc::X_OK) }) == 0,
        Err(_) => false,
    }
}

/// An anonymous memory file (memfd_create), close-on-exec.
pub fn memfd(name: &CStr) -> io::Result<OwnedFd> {
    // SAFETY: name is NUL-terminated.
    let fd = cvt(unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC) })?;
    Ok(fdio::own(fd))
}

/// An inotify descriptor (non-blocking) watching some paths.
pub struct Inotify {
    fd: i32,
}

impl Inotify {
    /// Watches each of `paths` for `mask` (IN_CREATE...); a path that
    /// cannot be watched is skipped. None when inotify is unavailable.
    pub fn new(paths: &[&Path], mask: u32) -> Option<Inotify> {
        // SAFETY: inotify_init1 takes no pointers.
        let fd = unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) };
        if fd < 0 {
            return None;
        }
        for p in paths {
            if let Ok(c) = cpath(p) {
                // SAFETY: c is a NUL-terminated path that outlives the call.
                unsafe { libc::inotify_add_watch(fd, c.as_ptr(), mask) };
            }
        }
        Some(Inotify { fd })
    }

    /// The descriptor to poll.
    pub fn fd(&self) -> i32 {
        self.fd
    }

    /// Reads and drops every pending event.
    pub fn drain(&self) {
        let mut buf = [0u8; 4096];
        while fdio::read(self.fd, &mut buf)
            .map(|n| n > 0)
            .unwrap_or(false)
        {}
    }
}

impl Drop for Inotify {
    fn drop(&mut self) {
        fdio::close(self.fd);
    }
}

/// A new file in `$TMPDIR` (else /tmp), mode 0600, named `PREFIX.PID.RANDOM`
/// and unlinked at once: open for reading and writing, gone when closed.
pub fn temp_file(prefix: &str) -> io::Result<std::fs::File> {
    temp_files(prefix).map(|(rw, _)| rw)
}

/// [`temp_file`], and a second descriptor of the same file open read-only
/// (for a helper that takes only read-only messages).
pub fn temp_files(prefix: &str) -> io::Result<(std::fs::File, std::fs::File)> {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = match std::env::var_os("TMPDIR") {
        Some(d) if !d.is_empty() => std::path::PathBuf::from(d),
        _ => std::path::PathBuf::from("/tmp"),
    };
    let p = dir.join(format!(
        "{}.{}.{}",
        prefix,
        std::process::id(),
        random_hex(8)
    ));
    let rw = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_CLOEXEC | libc::O_NOFOLLOW)
        .open(&p)?;
    let ro = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_CLOEXEC | libc::O_NOFOLLOW)
        .open(&p);
    std::fs::remove_file(&p)?;
    Ok((rw, ro?))
}

//! Thin, checked wrappers over the system calls the programs share:
//! raw fd I/O retrying EINTR, poll-based timeouts, durable file steps,
//! random bytes, the clock and the user database.

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

pub fn cvt(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

pub fn cstr(p: &[u8]) -> io::Result<CString> {
    CString::new(p).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

pub fn cpath(p: &Path) -> io::Result<CString> {
    cstr(p.as_os_str().as_bytes())
}

/// read(2), retrying EINTR.
pub fn read(fd: i32, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        let r = unsafe { libc::read(fd, buf.as_mut_ptr() as *mut libc::c_void, buf.len()) };
        if r >= 0 {
            return Ok(r as usize);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// write(2) of the whole buffer, retrying EINTR and short writes.
pub fn write_all(fd: i32, mut buf: &[u8]) -> io::Result<()> {
    while !buf.is_empty() {
        let r = unsafe { libc::write(fd, buf.as_ptr() as *const libc::c_void, buf.len()) };
        if r < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        buf = &buf[r as usize..];
    }
    Ok(())
}

/// Waits until `fd` is readable (or writable with `write`), at most
/// `secs` seconds. Ok(false) on timeout.
pub fn wait_fd(fd: i32, write: bool, secs: u64) -> io::Result<bool> {
    wait_fd_ms(fd, write, secs.saturating_mul(1000))
}

/// [`wait_fd`] in milliseconds.
pub fn wait_fd_ms(fd: i32, write: bool, ms: u64) -> io::Result<bool> {
    let deadline = now_ms().saturating_add(ms);
    loop {
        let left = deadline.saturating_sub(now_ms());
        if left == 0 {
            return Ok(false);
        }
        let mut p = libc::pollfd {
            fd,
            events: if write { libc::POLLOUT } else { libc::POLLIN },
            revents: 0,
        };
        let r = unsafe { libc::poll(&mut p, 1, left.min(i32::MAX as u64) as i32) };
        if r > 0 {
            return Ok(true);
        }
        if r < 0 {
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
    }
}

/// read(2) with a timeout: Err(TimedOut) when nothing arrives in `secs`.
pub fn read_timeout(fd: i32, buf: &mut [u8], secs: u64) -> io::Result<usize> {
    if !wait_fd(fd, false, secs)? {
        return Err(io::Error::from(io::ErrorKind::TimedOut));
    }
    read(fd, buf)
}

/// read(2) into the spare capacity of `buf`, retrying EINTR; its length
/// grows by what was read. A large buffer so costs no zeroing and no page
/// faults for the part a short message never uses.
pub fn read_spare(fd: i32, buf: &mut Vec<u8>) -> io::Result<usize> {
    let spare = buf.spare_capacity_mut();
    loop {
        let r = unsafe { libc::read(fd, spare.as_mut_ptr() as *mut libc::c_void, spare.len()) };
        if r >= 0 {
            // SAFETY: read(2) initialised the first r bytes of the spare capacity.
            unsafe { buf.set_len(buf.len() + r as usize) };
            return Ok(r as usize);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// [`read_spare`] with [`read_timeout`]'s timeout.
pub fn read_timeout_spare(fd: i32, buf: &mut Vec<u8>, secs: u64) -> io::Result<usize> {
    if !wait_fd(fd, false, secs)? {
        return Err(io::Error::from(io::ErrorKind::TimedOut));
    }
    read_spare(fd, buf)
}

/// write_all with a timeout per write; a stalled peer gives Err(TimedOut).
pub fn write_timeout(fd: i32, mut buf: &[u8], secs: u64) -> io::Result<()> {
    while !buf.is_empty() {
        if !wait_fd(fd, true, secs)? {
            return Err(io::Error::from(io::ErrorKind::TimedOut));
        }
        if let Some(n) = write_nb(fd, buf)? {
            buf = &buf[n..];
        }
    }
    Ok(())
}

/// One write(2) to a descriptor that may be non-blocking: Some(bytes
/// written), None when it would block or was interrupted.
pub fn write_nb(fd: i32, buf: &[u8]) -> io::Result<Option<usize>> {
    let r = unsafe { libc::write(fd, buf.as_ptr() as *const libc::c_void, buf.len()) };
    if r >= 0 {
        return Ok(Some(r as usize));
    }
    let e = io::Error::last_os_error();
    match e.kind() {
        io::ErrorKind::Interrupted | io::ErrorKind::WouldBlock => Ok(None),
        _ => Err(e),
    }
}

pub fn close(fd: i32) {
    unsafe { libc::close(fd) };
}

/// fsync(2) on an open file.
pub fn fsync(fd: i32) -> io::Result<()> {
    cvt(unsafe { libc::fsync(fd) }).map(|_| ())
}

/// syncfs(2): flushes the whole file system that holds `f`.
pub fn syncfs(f: &std::fs::File) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    cvt(unsafe { libc::syncfs(f.as_raw_fd()) }).map(|_| ())
}

/// Makes a directory's entries durable: open it and fsync it.
pub fn fsync_dir(dir: &Path) -> io::Result<()> {
    let c = cpath(dir)?;
    let fd = cvt(unsafe {
        libc::open(
            c.as_ptr(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    })?;
    let r = fsync(fd);
    close(fd);
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
pub fn fsync_covers_new_name(f: &std::fs::File) -> bool {
    use std::os::fd::AsRawFd;
    const EXT4: i64 = 0xEF53;
    const XFS: i64 = 0x5846_5342;
    const BTRFS: i64 = 0x9123_683E;
    if std::env::var_os("PIPEMAIL_FSYNC_DIRS").is_some() {
        return false;
    }
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::fstatfs(f.as_raw_fd(), &mut st) } != 0 {
        return false;
    }
    matches!(st.f_type as i64, EXT4 | XFS | BTRFS)
}

/// Fills `buf` from the kernel's random source.
pub fn random(buf: &mut [u8]) {
    let mut off = 0;
    while off < buf.len() {
        let r = unsafe {
            libc::getrandom(
                buf[off..].as_mut_ptr() as *mut libc::c_void,
                buf.len() - off,
                0,
            )
        };
        if r > 0 {
            off += r as usize;
        } else if r < 0 && io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
            // No getrandom: fall back to time and pid, still unique enough for names.
            let seed = now_us() ^ ((std::process::id() as u64) << 32);
            for (i, b) in buf[off..].iter_mut().enumerate() {
                *b = (seed.rotate_left((i * 7) as u32) & 0xff) as u8;
            }
            return;
        }
    }
}

/// `n` random bytes as lower-case hex.
pub fn random_hex(n: usize) -> String {
    let mut b = vec![0u8; n];
    random(&mut b);
    b.iter().map(|x| format!("{:02x}", x)).collect()
}

pub fn now() -> u64 {
    now_us() / 1_000_000
}

pub fn now_ms() -> u64 {
    now_us() / 1000
}

pub fn now_us() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut ts) };
    ts.tv_sec as u64 * 1_000_000 + ts.tv_nsec as u64 / 1000
}

pub fn getuid() -> u32 {
    unsafe { libc::getuid() }
}

pub fn geteuid() -> u32 {
    unsafe { libc::geteuid() }
}

/// The host name from uname(2).
pub fn hostname() -> Vec<u8> {
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    if unsafe { libc::uname(&mut u) } != 0 {
        return b"localhost".to_vec();
    }
    u.nodename
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8)
        .collect()
}

/// An account from the system user database.
#[derive(Clone, Debug)]
pub struct Passwd {
    pub name: Vec<u8>,
    /// pw_passwd: usually "x" (the hash is in shadow).
    pub passwd: Vec<u8>,
    pub uid: u32,
    pub gid: u32,
    pub dir: Vec<u8>,
    pub shell: Vec<u8>,
}

unsafe fn passwd_from(p: *const libc::passwd) -> Passwd {
    let s = |c: *const libc::c_char| {
        if c.is_null() {
            Vec::new()
        } else {
            std::ffi::CStr::from_ptr(c).to_bytes().to_vec()
        }
    };
    Passwd {
        name: s((*p).pw_name),
        passwd: s((*p).pw_passwd),
        uid: (*p).pw_uid,
        gid: (*p).pw_gid,
        dir: s((*p).pw_dir),
        shell: s((*p).pw_shell),
    }
}

/// getpwnam_r: Ok(None) when there is no such user.
pub fn getpwnam(name: &[u8]) -> io::Result<Option<Passwd>> {
    let c = cstr(name)?;
    let mut pw: libc::passwd = unsafe { std::mem::zeroed() };
    let mut buf = vec![0 as libc::c_char; 16384];
    let mut res: *mut libc::passwd = std::ptr::null_mut();
    let r = unsafe { libc::getpwnam_r(c.as_ptr(), &mut pw, buf.as_mut_ptr(), buf.len(), &mut res) };
    if res.is_null() {
        return match r {
            0 | libc::ENOENT | libc::ESRCH | libc::EBADF | libc::EPERM => Ok(None),
            e => Err(io::Error::from_raw_os_error(e)),
        };
    }
    Ok(Some(unsafe { passwd_from(res) }))
}

/// getpwuid_r: Ok(None) when there is no such uid.
pub fn getpwuid(uid: u32) -> io::Result<Option<Passwd>> {
    let mut pw: libc::passwd = unsafe { std::mem::zeroed() };
    let mut buf = vec![0 as libc::c_char; 16384];
    let mut res: *mut libc::passwd = std::ptr::null_mut();
    let r = unsafe { libc::getpwuid_r(uid, &mut pw, buf.as_mut_ptr(), buf.len(), &mut res) };
    if res.is_null() {
        return if r == 0 {
            Ok(None)
        } else {
            Err(io::Error::from_raw_os_error(r))
        };
    }
    Ok(Some(unsafe { passwd_from(res) }))
}

/// A group id by name or number.
pub fn getgrnam(name: &[u8]) -> io::Result<Option<u32>> {
    if let Some(n) = crate::parse::number(name) {
        return Ok(Some(n as u32));
    }
    let c = cstr(name)?;
    let mut gr: libc::group = unsafe { std::mem::zeroed() };
    let mut buf = vec![0 as libc::c_char; 16384];
    let mut res: *mut libc::group = std::ptr::null_mut();
    let r = unsafe { libc::getgrnam_r(c.as_ptr(), &mut gr, buf.as_mut_ptr(), buf.len(), &mut res) };
    if res.is_null() {
        return if r == 0 {
            Ok(None)
        } else {
            Err(io::Error::from_raw_os_error(r))
        };
    }
    Ok(Some(gr.gr_gid))
}

/// Drops root for good in OpenSMTPD's order: groups, gid, uid.
/// `groups` are the supplementary groups to keep (usually just `gid`).
pub fn drop_privileges(uid: u32, gid: u32, groups: &[u32]) -> io::Result<()> {
    let g: Vec<libc::gid_t> = if groups.is_empty() {
        vec![gid]
    } else {
        groups.to_vec()
    };
    cvt(unsafe { libc::setgroups(g.len(), g.as_ptr()) })?;
    cvt(unsafe { libc::setgid(gid) })?;
    cvt(unsafe { libc::setuid(uid) })?;
    if uid != 0 && unsafe { libc::setuid(0) } == 0 {
        return Err(io::Error::from_raw_os_error(libc::EPERM));
    }
    Ok(())
}

/// Sets FD_CLOEXEC on or off.
pub fn set_cloexec(fd: i32, on: bool) -> io::Result<()> {
    let f = cvt(unsafe { libc::fcntl(fd, libc::F_GETFD) })?;
    let nf = if on {
        f | libc::FD_CLOEXEC
    } else {
        f & !libc::FD_CLOEXEC
    };
    cvt(unsafe { libc::fcntl(fd, libc::F_SETFD, nf) }).map(|_| ())
}

/// dup2 that leaves the target without close-on-exec.
pub fn dup2(from: i32, to: i32) -> io::Result<()> {
    if from == to {
        return set_cloexec(to, false);
    }
    cvt(unsafe { libc::dup2(from, to) }).map(|_| ())
}

/// A pipe, both ends close-on-exec.
pub fn pipe() -> io::Result<(i32, i32)> {
    let mut fds = [0i32; 2];
    cvt(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) })?;
    Ok((fds[0], fds[1]))
}

/// Installs SIG_IGN (or SIG_DFL with `ignore = false`) for `sig`.
pub fn signal_ignore(sig: i32, ignore: bool) {
    unsafe { libc::signal(sig, if ignore { libc::SIG_IGN } else { libc::SIG_DFL }) };
}

/// The exit code of a waitpid status, qmail style: a signal death is None.
pub fn exit_code(status: i32) -> Option<i32> {
    if libc::WIFEXITED(status) {
        Some(libc::WEXITSTATUS(status))
    } else {
        None
    }
}

/// waitpid for one child, retrying EINTR.
pub fn waitpid(pid: i32) -> io::Result<i32> {
    let mut st = 0;
    loop {
        let r = unsafe { libc::waitpid(pid, &mut st, 0) };
        if r >= 0 {
            return Ok(st);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
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

/// The part of Rust's start-up that a `#![no_main]` program still needs
/// (smtp-recv skips the rest: the main thread's stack bounds, read from
/// /proc/self/maps, and the stack-overflow handler): descriptors 0-2 open
/// (a closed one gets /dev/null, so no file we open lands there) and
/// SIGPIPE ignored (a write to a closed peer is an error, not a death).
pub fn no_main_start() {
    let mut fds = [0, 1, 2].map(|fd| libc::pollfd {
        fd,
        events: 0,
        revents: 0,
    });
    let r = unsafe { libc::poll(fds.as_mut_ptr(), 3, 0) };
    for p in fds {
        let closed = if r < 0 {
            (unsafe { libc::fcntl(p.fd, libc::F_GETFD) }) < 0
        } else {
            p.revents & libc::POLLNVAL != 0
        };
        if closed {
            let fd = unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDWR) };
            if fd != p.fd {
                unsafe { libc::abort() };
            }
        }
    }
    signal_ignore(libc::SIGPIPE, true);
}

/// A connection passed the systemd way (Accept=yes without
/// StandardInput=socket: `$LISTEN_PID` is us, `$LISTEN_FDS` is 1, the
/// socket is fd 3) becomes fds 0 and 1, as under inetd.
pub fn adopt_listen_fd() {
    let var = |k: &str| std::env::var(k).ok().and_then(|v| v.parse::<u32>().ok());
    if var("LISTEN_PID") != Some(std::process::id()) || var("LISTEN_FDS") != Some(1) {
        return;
    }
    if dup2(3, 0).is_ok() && dup2(3, 1).is_ok() {
        close(3);
    }
    for k in ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"] {
        std::env::remove_var(k);
    }
}

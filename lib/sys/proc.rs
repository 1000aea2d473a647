//! Processes: fork, exec, wait, exit, identities (uid/gid changes), the
//! start-up of a program, and descriptors handed to a child.

use super::{cstr, cvt, fdio, signals};
use std::ffi::CString;
use std::io;

/// Which side of a [`fork`] we are on.
pub enum Fork {
    Child,
    Parent(i32),
}

/// fork(2). pipemail's programs are single-threaded when they fork (the
/// resolver threads of rbl.rs end before smtp-recv goes on), so the child
/// may run any code.
pub fn fork() -> io::Result<Fork> {
    // SAFETY: fork takes no pointers; the caller is single-threaded (see
    // above), so no lock is held by a thread that the child lacks.
    match cvt(unsafe { libc::fork() })? {
        0 => Ok(Fork::Child),
        pid => Ok(Fork::Parent(pid)),
    }
}

/// _exit(2): ends the process at once, without running destructors or
/// flushing stdio (a forked child, a signal handler). Async-signal-safe.
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit takes no pointers and never returns.
    unsafe { libc::_exit(code) }
}

/// A NULL-terminated array of pointers into `args`, for exec.
fn argv_ptrs(args: &[CString]) -> Vec<*const libc::c_char> {
    let mut p: Vec<*const libc::c_char> = args.iter().map(|s| s.as_ptr()).collect();
    p.push(std::ptr::null());
    p
}

/// execv(2) of `prog` with `args` (args[0] included). Returns only on
/// failure, with the errno.
pub fn execv(prog: &CString, args: &[CString]) -> io::Error {
    let p = argv_ptrs(args);
    // SAFETY: prog and every args pointer are NUL-terminated strings that
    // outlive the call; p ends with NULL.
    unsafe { libc::execv(prog.as_ptr(), p.as_ptr()) };
    io::Error::last_os_error()
}

/// execvp(3): `file` searched in $PATH when it has no slash.
pub fn execvp(file: &CString, args: &[CString]) -> io::Error {
    let p = argv_ptrs(args);
    // SAFETY: as in execv.
    unsafe { libc::execvp(file.as_ptr(), p.as_ptr()) };
    io::Error::last_os_error()
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
        // SAFETY: waitpid writes one int into st.
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

/// One child that has ended, without waiting: Some((pid, status)).
pub fn reap_any() -> Option<(i32, i32)> {
    let mut st = 0;
    // SAFETY: waitpid writes one int into st.
    let pid = unsafe { libc::waitpid(-1, &mut st, libc::WNOHANG) };
    (pid > 0).then_some((pid, st))
}

pub fn getuid() -> u32 {
    // SAFETY: getuid cannot fail.
    unsafe { libc::getuid() }
}

pub fn geteuid() -> u32 {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() }
}

/// The parent's pid (1 once the parent is gone).
pub fn getppid() -> i32 {
    // SAFETY: getppid cannot fail.
    unsafe { libc::getppid() }
}

/// kill(2); async-signal-safe.
pub fn kill(pid: i32, sig: i32) -> io::Result<()> {
    // SAFETY: kill takes no pointers.
    cvt(unsafe { libc::kill(pid, sig) }).map(|_| ())
}

/// Sets the supplementary groups to `groups` and the gid to `gid`.
pub fn set_groups(gid: u32, groups: &[u32]) -> io::Result<()> {
    // SAFETY: setgroups reads groups.len() gids from groups.
    cvt(unsafe { libc::setgroups(groups.len(), groups.as_ptr()) })?;
    // SAFETY: setgid takes no pointers.
    cvt(unsafe { libc::setgid(gid) }).map(|_| ())
}

/// Drops root for good in OpenSMTPD's order: groups, gid, uid.
/// `groups` are the supplementary groups to keep (usually just `gid`).
pub fn drop_privileges(uid: u32, gid: u32, groups: &[u32]) -> io::Result<()> {
    let own = [gid];
    set_groups(gid, if groups.is_empty() { &own } else { groups })?;
    // SAFETY: setuid takes no pointers.
    cvt(unsafe { libc::setuid(uid) })?;
    // SAFETY: as above.
    if uid != 0 && unsafe { libc::setuid(0) } == 0 {
        return Err(io::Error::from_raw_os_error(libc::EPERM));
    }
    Ok(())
}

/// Names the process (prctl PR_SET_NAME: ps, top, /proc/PID/comm).
pub fn set_name(name: &str) {
    if let Ok(n) = cstr(name.as_bytes()) {
        // SAFETY: n is NUL-terminated; the kernel copies at most 16 bytes.
        unsafe { libc::prctl(libc::PR_SET_NAME, n.as_ptr(), 0, 0, 0) };
    }
}

/// Asks the kernel to send `sig` to this process when its parent dies
/// (prctl PR_SET_PDEATHSIG; a uid change clears it).
pub fn die_with_parent(sig: i32) {
    // SAFETY: PR_SET_PDEATHSIG takes an int.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, sig) };
}

/// Makes the process not dumpable: no core file, no ptrace by the same
/// uid (an exec of a program makes it dumpable again).
pub fn set_undumpable() {
    // SAFETY: PR_SET_DUMPABLE takes an int.
    unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0) };
}

/// alarm(2): SIGALRM in `secs` seconds.
pub fn alarm(secs: u32) {
    // SAFETY: alarm takes no pointers.
    unsafe { libc::alarm(secs) };
}

/// Gives the program `cmd` starts descriptor `from` as descriptor `to`
/// (without close-on-exec), between fork and exec.
pub fn pass_fd(cmd: &mut std::process::Command, from: i32, to: i32) {
    use std::os::unix::process::CommandExt;
    // SAFETY: the closure runs in the forked child before exec; it only
    // calls dup2/fcntl (async-signal-safe) and allocates nothing.
    unsafe {
        cmd.pre_exec(move || fdio::dup2(from, to));
    }
}

/// The part of Rust's start-up that a `#![no_main]` program still needs
/// (smtp-recv skips the rest: the main thread's stack bounds, read from
/// /proc/self/maps, and the stack-overflow handler): descriptors 0-2 open
/// (a closed one gets /dev/null, so no file we open lands there) and
/// SIGPIPE ignored (a write to a closed peer is an error, not a death).
pub fn no_main_start() {
    let mut fds = [0, 1, 2].map(|fd| fdio::pollfd(fd, 0));
    let r = fdio::poll(&mut fds, 0);
    for p in fds {
        let closed = if r.is_err() {
            !fdio::fd_is_open(p.fd)
        } else {
            p.revents & libc::POLLNVAL != 0
        };
        if closed {
            let fd = super::fs::open(std::path::Path::new("/dev/null"), libc::O_RDWR);
            if fd.ok() != Some(p.fd) {
                std::process::abort();
            }
        }
    }
    signals::ignore(libc::SIGPIPE);
}

/// A connection passed the systemd way (Accept=yes without
/// StandardInput=socket: `$LISTEN_PID` is us, `$LISTEN_FDS` is 1, the
/// socket is fd 3) becomes fds 0 and 1, as under inetd.
pub fn adopt_listen_fd() {
    let var = |k: &str| std::env::var(k).ok().and_then(|v| v.parse::<u32>().ok());
    if var("LISTEN_PID") != Some(std::process::id()) || var("LISTEN_FDS") != Some(1) {
        return;
    }
    if fdio::dup2(3, 0).is_ok() && fdio::dup2(3, 1).is_ok() {
        fdio::close(3);
    }
    for k in ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"] {
        std::env::remove_var(k);
    }
}

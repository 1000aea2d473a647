//! Descriptor I/O: read and write retrying EINTR, poll-based timeouts,
//! pipes, dup2, descriptor flags.

use super::{cvt, cvt_size, now_ms};
use std::io;
use std::os::fd::{FromRawFd, OwnedFd};

/// read(2), retrying EINTR.
pub fn read(fd: i32, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        // SAFETY: read writes at most buf.len() bytes into buf.
        let r = unsafe { libc::read(fd, buf.as_mut_ptr() as *mut libc::c_void, buf.len()) };
        match cvt_size(r) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            r => return r,
        }
    }
}

/// One write(2), as the kernel does it (short, EINTR, EAGAIN all passed up).
fn write(fd: i32, buf: &[u8]) -> io::Result<usize> {
    // SAFETY: write reads at most buf.len() bytes from buf.
    cvt_size(unsafe { libc::write(fd, buf.as_ptr() as *const libc::c_void, buf.len()) })
}

/// write(2) of the whole buffer, retrying EINTR and short writes.
pub fn write_all(fd: i32, mut buf: &[u8]) -> io::Result<()> {
    while !buf.is_empty() {
        match write(fd, buf) {
            Ok(n) => buf = &buf[n..],
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// One write(2) to a descriptor that may be non-blocking: Some(bytes
/// written), None when it would block or was interrupted.
pub fn write_nb(fd: i32, buf: &[u8]) -> io::Result<Option<usize>> {
    match write(fd, buf) {
        Ok(n) => Ok(Some(n)),
        Err(e) => match e.kind() {
            io::ErrorKind::Interrupted | io::ErrorKind::WouldBlock => Ok(None),
            _ => Err(e),
        },
    }
}

/// One write(2) whose outcome does not matter (a wake-up byte, a last
/// word before _exit); async-signal-safe.
pub fn write_ignored(fd: i32, buf: &[u8]) {
    let _ = write(fd, buf);
}

/// poll(2) on `fds` for at most `timeout_ms` (-1: no limit): the number
/// of ready descriptors; an interrupted wait is Err(Interrupted).
pub fn poll(fds: &mut [libc::pollfd], timeout_ms: i32) -> io::Result<usize> {
    // SAFETY: poll reads and writes fds.len() pollfd entries of fds.
    let r = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout_ms) };
    cvt(r).map(|n| n as usize)
}

/// A pollfd waiting for `events` on `fd` (-1: ignored).
pub fn pollfd(fd: i32, events: i16) -> libc::pollfd {
    libc::pollfd {
        fd,
        events,
        revents: 0,
    }
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
        let mut p = [pollfd(fd, if write { libc::POLLOUT } else { libc::POLLIN })];
        match poll(&mut p, left.min(i32::MAX as u64) as i32) {
            Ok(n) if n > 0 => return Ok(true),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
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
        // SAFETY: read writes at most spare.len() bytes into the spare capacity.
        let r = unsafe { libc::read(fd, spare.as_mut_ptr() as *mut libc::c_void, spare.len()) };
        match cvt_size(r) {
            Ok(n) => {
                // SAFETY: read(2) initialised the first n bytes of the spare capacity.
                unsafe { buf.set_len(buf.len() + n) };
                return Ok(n);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
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

/// pread(2): reads at `off` without moving the file offset.
pub fn pread(fd: i32, buf: &mut [u8], off: i64) -> io::Result<usize> {
    // SAFETY: pread writes at most buf.len() bytes into buf.
    cvt_size(unsafe { libc::pread(fd, buf.as_mut_ptr() as *mut libc::c_void, buf.len(), off) })
}

/// lseek(2): the new offset.
pub fn lseek(fd: i32, off: i64, whence: i32) -> io::Result<i64> {
    // SAFETY: lseek takes no pointers.
    let r = unsafe { libc::lseek(fd, off, whence) };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

pub fn close(fd: i32) {
    // SAFETY: close takes no pointers; callers close only descriptors they own.
    unsafe { libc::close(fd) };
}

/// Whether `fd` is an open descriptor.
pub fn fd_is_open(fd: i32) -> bool {
    // SAFETY: F_GETFD takes no pointer.
    unsafe { libc::fcntl(fd, libc::F_GETFD) >= 0 }
}

/// The file status flags (F_GETFL: access mode, O_NONBLOCK...).
pub fn status_flags(fd: i32) -> io::Result<i32> {
    // SAFETY: F_GETFL takes no pointer.
    cvt(unsafe { libc::fcntl(fd, libc::F_GETFL) })
}

/// Sets O_NONBLOCK on `fd`.
pub fn set_nonblock(fd: i32) -> io::Result<()> {
    let f = status_flags(fd)?;
    // SAFETY: F_SETFL takes an int.
    cvt(unsafe { libc::fcntl(fd, libc::F_SETFL, f | libc::O_NONBLOCK) }).map(|_| ())
}

/// Sets FD_CLOEXEC on or off.
pub fn set_cloexec(fd: i32, on: bool) -> io::Result<()> {
    // SAFETY: F_GETFD takes no pointer.
    let f = cvt(unsafe { libc::fcntl(fd, libc::F_GETFD) })?;
    let nf = if on {
        f | libc::FD_CLOEXEC
    } else {
        f & !libc::FD_CLOEXEC
    };
    // SAFETY: F_SETFD takes an int.
    cvt(unsafe { libc::fcntl(fd, libc::F_SETFD, nf) }).map(|_| ())
}

/// dup2 that leaves the target without close-on-exec.
/// Async-signal-safe (it runs between fork and exec).
pub fn dup2(from: i32, to: i32) -> io::Result<()> {
    if from == to {
        return set_cloexec(to, false);
    }
    // SAFETY: dup2 takes no pointers.
    cvt(unsafe { libc::dup2(from, to) }).map(|_| ())
}

/// dup(2), close-on-exec.
pub fn dup(fd: i32) -> io::Result<i32> {
    // SAFETY: F_DUPFD_CLOEXEC takes an int.
    cvt(unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 0) })
}

/// A pipe, both ends close-on-exec.
pub fn pipe() -> io::Result<(i32, i32)> {
    let mut fds = [0i32; 2];
    // SAFETY: pipe2 writes two ints into fds.
    cvt(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) })?;
    Ok((fds[0], fds[1]))
}

/// [`pipe`] as owned descriptors (read end, write end), closed on drop.
pub fn pipe_owned() -> io::Result<(OwnedFd, OwnedFd)> {
    let (r, w) = pipe()?;
    Ok((own(r), own(w)))
}

/// Takes ownership of a descriptor this process just opened and owns
/// alone: it is closed when the OwnedFd drops.
pub(super) fn own(fd: i32) -> OwnedFd {
    assert!(fd >= 0, "own: not a descriptor");
    // SAFETY: callers pass a descriptor they opened and nobody else closes.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

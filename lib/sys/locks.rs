//! File locks: flock(2) (exclusive, waiting or not) and the POSIX record
//! lock mbox readers also expect.

use super::cvt;
use std::io;

/// Takes an exclusive flock on `fd`, waiting for it (retrying EINTR).
pub fn lock(fd: i32) -> io::Result<()> {
    loop {
        // SAFETY: flock takes no pointers.
        match cvt(unsafe { libc::flock(fd, libc::LOCK_EX) }) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            r => return r.map(|_| ()),
        }
    }
}

/// Takes an exclusive flock on `fd` if nobody holds one: Ok(false) when
/// somebody does.
pub fn try_lock(fd: i32) -> io::Result<bool> {
    // SAFETY: flock takes no pointers.
    match cvt(unsafe { libc::flock(fd, libc::LOCK_EX | libc::LOCK_NB) }) {
        Ok(_) => Ok(true),
        Err(e) if matches!(e.raw_os_error(), Some(libc::EWOULDBLOCK | libc::EINTR)) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Takes a POSIX write lock (fcntl F_SETLK) on the whole of `fd` if
/// nobody holds one: Ok(false) when somebody does.
pub fn try_record_lock(fd: i32) -> io::Result<bool> {
    // SAFETY: flock is plain data; all zeroes is a valid value.
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = libc::F_WRLCK as libc::c_short;
    fl.l_whence = libc::SEEK_SET as libc::c_short;
    // SAFETY: F_SETLK reads the flock struct it is given.
    match cvt(unsafe { libc::fcntl(fd, libc::F_SETLK, &fl) }) {
        Ok(_) => Ok(true),
        Err(e)
            if matches!(
                e.raw_os_error(),
                Some(libc::EAGAIN | libc::EACCES | libc::EINTR)
            ) =>
        {
            Ok(false)
        }
        Err(e) => Err(e),
    }
}

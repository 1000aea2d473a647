//! The library's one home for unsafe code: small safe wrappers over the
//! system calls the programs share, one module per concern (fd I/O, files,
//! processes, signals, locks, sockets, the user database, the clock) and
//! the two C libraries reached by FFI from here (syslog, iconv). The rest
//! of the crate is `#![deny(unsafe_code)]`; every unsafe block here says
//! why it is sound in a `// SAFETY:` comment.
//!
//! Descriptors are plain `i32`s, as in the C interfaces: a wrong number is
//! an error from the kernel (EBADF), never undefined behaviour.

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::atomic::{AtomicPtr, Ordering};

pub mod fdio;
pub mod fs;
pub mod iconv;
pub mod locks;
pub mod net;
pub mod proc;
pub mod signals;
pub mod syslog;
pub mod time;
pub mod users;

pub use fdio::*;
pub use fs::{fsync, fsync_covers_new_name, fsync_dir, syncfs, temp_file, temp_files};
pub use proc::{
    adopt_listen_fd, drop_privileges, exit_code, geteuid, getuid, no_main_start, waitpid,
};
pub use signals::signal_ignore;
pub use time::{now, now_ms, now_us};
pub use users::{getgrnam, getpwnam, getpwuid, Passwd};

pub fn cvt(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// [`cvt`] for the calls that return a size.
fn cvt_size(r: isize) -> io::Result<usize> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r as usize)
    }
}

pub fn cstr(p: &[u8]) -> io::Result<CString> {
    CString::new(p).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

pub fn cpath(p: &Path) -> io::Result<CString> {
    cstr(p.as_os_str().as_bytes())
}

/// Fills `buf` from the kernel's random source.
pub fn random(buf: &mut [u8]) {
    let mut off = 0;
    while off < buf.len() {
        let rest = &mut buf[off..];
        // SAFETY: getrandom writes at most rest.len() bytes into rest.
        let r = unsafe { libc::getrandom(rest.as_mut_ptr() as *mut libc::c_void, rest.len(), 0) };
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

/// The host name from uname(2).
pub fn hostname() -> Vec<u8> {
    // SAFETY: utsname is plain bytes; all zeroes is a valid value.
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: uname fills the struct it is given.
    if unsafe { libc::uname(&mut u) } != 0 {
        return b"localhost".to_vec();
    }
    u.nodename
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8)
        .collect()
}

/// Bytes set at run time and replaced without a lock (so a forked child
/// never waits on one), read as `&'static [u8]`: every value set is
/// leaked, never freed.
pub struct StaticBytes(AtomicPtr<Vec<u8>>);

impl StaticBytes {
    pub const fn new() -> StaticBytes {
        StaticBytes(AtomicPtr::new(std::ptr::null_mut()))
    }

    pub fn set(&self, v: Vec<u8>) {
        self.0.store(Box::into_raw(Box::new(v)), Ordering::Release);
    }

    /// None until the first [`StaticBytes::set`].
    pub fn get(&self) -> Option<&'static [u8]> {
        let p = self.0.load(Ordering::Acquire);
        // SAFETY: a non-null pointer came from Box::into_raw in `set` and
        // that box is never freed nor written again.
        (!p.is_null()).then(|| unsafe { (*p).as_slice() })
    }
}

impl Default for StaticBytes {
    fn default() -> StaticBytes {
        StaticBytes::new()
    }
}

//! Signals, one way: [`set`] installs an action (default, ignore or a
//! handler); a server that waits on descriptors blocks its signals and
//! reads them from a [`SignalFd`] instead.

use super::{cvt, fdio};
use std::io;

/// What a signal does.
#[derive(Clone, Copy)]
pub enum Action {
    Default,
    Ignore,
    /// A handler; it may only do async-signal-safe things (store to an
    /// atomic, [`fdio::write_ignored`], [`super::proc::kill`],
    /// [`super::proc::exit_now`]).
    Handler(extern "C" fn(libc::c_int)),
}

/// Installs `action` for each of `sigs` (BSD semantics: interrupted
/// system calls restart).
pub fn set(sigs: &[i32], action: Action) {
    let h = match action {
        Action::Default => libc::SIG_DFL,
        Action::Ignore => libc::SIG_IGN,
        Action::Handler(f) => f as *const () as libc::sighandler_t,
    };
    for &s in sigs {
        // SAFETY: h is SIG_DFL, SIG_IGN or an extern "C" fn(c_int) that
        // lives as long as the program.
        unsafe { libc::signal(s, h) };
    }
}

/// SIG_IGN for `sig`.
pub fn ignore(sig: i32) {
    set(&[sig], Action::Ignore);
}

/// Installs SIG_IGN (or SIG_DFL with `ignore = false`) for `sig`.
pub fn signal_ignore(sig: i32, ignore: bool) {
    set(
        &[sig],
        if ignore {
            Action::Ignore
        } else {
            Action::Default
        },
    );
}

fn sigset(sigs: &[i32]) -> libc::sigset_t {
    // SAFETY: sigset_t is plain data; sigemptyset initialises it below.
    let mut s: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: s is a valid sigset_t for both calls.
    unsafe {
        libc::sigemptyset(&mut s);
        for &g in sigs {
            libc::sigaddset(&mut s, g);
        }
    }
    s
}

/// Sets the signal mask to exactly `sigs` (none: everything unblocked).
pub fn set_mask(sigs: &[i32]) {
    let s = sigset(sigs);
    // SAFETY: s is a valid sigset_t; the old mask is not asked for.
    unsafe { libc::sigprocmask(libc::SIG_SETMASK, &s, std::ptr::null_mut()) };
}

/// Signals blocked and delivered through a descriptor (signalfd).
pub struct SignalFd {
    fd: i32,
}

impl SignalFd {
    /// Blocks `sigs` and opens a non-blocking, close-on-exec signalfd
    /// for them.
    pub fn new(sigs: &[i32]) -> io::Result<SignalFd> {
        let s = sigset(sigs);
        // SAFETY: s is a valid sigset_t; the old mask is not asked for.
        unsafe { libc::sigprocmask(libc::SIG_BLOCK, &s, std::ptr::null_mut()) };
        // SAFETY: s is a valid sigset_t.
        let fd = cvt(unsafe { libc::signalfd(-1, &s, libc::SFD_CLOEXEC | libc::SFD_NONBLOCK) })?;
        Ok(SignalFd { fd })
    }

    /// The descriptor to poll.
    pub fn fd(&self) -> i32 {
        self.fd
    }

    /// The next pending signal, None when there is none.
    pub fn next(&self) -> Option<i32> {
        // SAFETY: signalfd_siginfo is plain data; all zeroes is valid.
        let mut si: libc::signalfd_siginfo = unsafe { std::mem::zeroed() };
        let sz = std::mem::size_of::<libc::signalfd_siginfo>();
        // SAFETY: read writes at most sz bytes into si.
        let r = unsafe { libc::read(self.fd, &mut si as *mut _ as *mut libc::c_void, sz) };
        (r == sz as isize).then_some(si.ssi_signo as i32)
    }

    /// Closes the descriptor (in a child that must not keep it).
    pub fn close(self) {
        fdio::close(self.fd);
    }
}

//! The syslog FFI (openlog, syslog): the one place pipemail calls it.
//! crate::log decides when lines go here.

use std::ffi::CString;

/// openlog(3) with `ident` (the program's name), LOG_PID, facility mail.
pub fn open(ident: &str) {
    let ident = CString::new(ident).unwrap_or_default();
    // openlog keeps the pointer: the ident lives as long as the process.
    let ident: &'static std::ffi::CStr = Box::leak(ident.into_boxed_c_str());
    // SAFETY: ident is NUL-terminated and never freed.
    unsafe { libc::openlog(ident.as_ptr(), libc::LOG_PID, libc::LOG_MAIL) };
}

/// syslog(3) of one line at priority `pri` (LOG_INFO...); a line with a
/// NUL is logged empty (log lines are escaped: they have none).
pub fn line(pri: i32, msg: &[u8]) {
    let msg = CString::new(msg).unwrap_or_default();
    // SAFETY: "%s" takes one NUL-terminated string, msg.
    unsafe { libc::syslog(pri, c"%s".as_ptr(), msg.as_ptr()) };
}

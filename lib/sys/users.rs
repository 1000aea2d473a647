//! The user database: accounts (getpwnam_r, getpwuid_r), groups
//! (getgrnam_r, getgrouplist) and shadow hashes (getspnam_r).

use super::cstr;
use std::ffi::CStr;
use std::io;

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

/// The bytes of a C string; empty for a null pointer.
///
/// # Safety
/// `c` is null or points to a NUL-terminated string.
unsafe fn c_bytes(c: *const libc::c_char) -> Vec<u8> {
    if c.is_null() {
        Vec::new()
    } else {
        // SAFETY: the caller's promise.
        unsafe { CStr::from_ptr(c) }.to_bytes().to_vec()
    }
}

/// # Safety
/// `p` points to a passwd entry filled by getpw*_r.
unsafe fn passwd_from(p: *const libc::passwd) -> Passwd {
    // SAFETY: only called on the entry's fields (see below).
    let s = |c| unsafe { c_bytes(c) };
    // SAFETY: the caller's promise; its strings are NUL-terminated or null.
    let p = unsafe { &*p };
    Passwd {
        name: s(p.pw_name),
        passwd: s(p.pw_passwd),
        uid: p.pw_uid,
        gid: p.pw_gid,
        dir: s(p.pw_dir),
        shell: s(p.pw_shell),
    }
}

/// getpwnam_r: Ok(None) when there is no such user.
pub fn getpwnam(name: &[u8]) -> io::Result<Option<Passwd>> {
    let c = cstr(name)?;
    // SAFETY: passwd is plain data; all zeroes is a valid value.
    let mut pw: libc::passwd = unsafe { std::mem::zeroed() };
    let mut buf = vec![0 as libc::c_char; 16384];
    let mut res: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: the entry's strings go into buf (buf.len() bytes); res is
    // set to &pw or null.
    let r = unsafe { libc::getpwnam_r(c.as_ptr(), &mut pw, buf.as_mut_ptr(), buf.len(), &mut res) };
    if res.is_null() {
        return match r {
            0 | libc::ENOENT | libc::ESRCH | libc::EBADF | libc::EPERM => Ok(None),
            e => Err(io::Error::from_raw_os_error(e)),
        };
    }
    // SAFETY: res is &pw, filled by the call.
    Ok(Some(unsafe { passwd_from(res) }))
}

/// getpwuid_r: Ok(None) when there is no such uid.
pub fn getpwuid(uid: u32) -> io::Result<Option<Passwd>> {
    // SAFETY: passwd is plain data; all zeroes is a valid value.
    let mut pw: libc::passwd = unsafe { std::mem::zeroed() };
    let mut buf = vec![0 as libc::c_char; 16384];
    let mut res: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: the entry's strings go into buf (buf.len() bytes); res is
    // set to &pw or null.
    let r = unsafe { libc::getpwuid_r(uid, &mut pw, buf.as_mut_ptr(), buf.len(), &mut res) };
    if res.is_null() {
        return if r == 0 {
            Ok(None)
        } else {
            Err(io::Error::from_raw_os_error(r))
        };
    }
    // SAFETY: res is &pw, filled by the call.
    Ok(Some(unsafe { passwd_from(res) }))
}

/// A group id by name or number.
pub fn getgrnam(name: &[u8]) -> io::Result<Option<u32>> {
    if let Some(n) = crate::parse::number(name) {
        return Ok(Some(n as u32));
    }
    let c = cstr(name)?;
    // SAFETY: group is plain data; all zeroes is a valid value.
    let mut gr: libc::group = unsafe { std::mem::zeroed() };
    let mut buf = vec![0 as libc::c_char; 16384];
    let mut res: *mut libc::group = std::ptr::null_mut();
    // SAFETY: as in getpwnam.
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

/// The hash in the shadow entry of `name`: Ok(None) when there is no
/// entry or we may not read it (not root).
pub fn shadow_hash(name: &[u8]) -> io::Result<Option<Vec<u8>>> {
    let c = cstr(name)?;
    // SAFETY: spwd is plain data; all zeroes is a valid value.
    let mut sp: libc::spwd = unsafe { std::mem::zeroed() };
    let mut sbuf = vec![0 as libc::c_char; 16384];
    let mut sres: *mut libc::spwd = std::ptr::null_mut();
    // SAFETY: the entry's strings go into sbuf (sbuf.len() bytes); sres is
    // set to &sp or null.
    let r = unsafe {
        libc::getspnam_r(
            c.as_ptr(),
            &mut sp,
            sbuf.as_mut_ptr(),
            sbuf.len(),
            &mut sres,
        )
    };
    if !sres.is_null() {
        // SAFETY: sp was filled by the call; sp_pwdp is null or points into sbuf.
        return Ok(Some(unsafe { c_bytes(sp.sp_pwdp) }));
    }
    if r != 0 && r != libc::ENOENT && r != libc::EACCES {
        return Err(io::Error::from_raw_os_error(r));
    }
    Ok(None)
}

/// The groups of user `name` (getgrouplist, with `gid`); just `gid` when
/// there are more than 256 or the lookup fails.
pub fn group_list(name: &[u8], gid: u32) -> Vec<u32> {
    let Ok(c) = cstr(name) else {
        return vec![gid];
    };
    let mut groups = vec![0 as libc::gid_t; 256];
    let mut n = groups.len() as libc::c_int;
    // SAFETY: getgrouplist writes at most n gids into groups and their number into n.
    let r = unsafe { libc::getgrouplist(c.as_ptr(), gid, groups.as_mut_ptr(), &mut n) };
    if r >= 0 {
        groups.truncate(n.max(0) as usize);
        groups
    } else {
        vec![gid]
    }
}

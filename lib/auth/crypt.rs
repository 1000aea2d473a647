//! The system's crypt(3) through libc FFI (libxcrypt): verifying a
//! password against a stored hash (yescrypt `$y$`, SHA-512 `$6$`, bcrypt
//! `$2b$`, whatever the library knows) and making new hashes.

use std::ffi::CStr;
use std::os::raw::{c_char, c_int, c_ulong};
use std::sync::Mutex;

#[link(name = "crypt")]
extern "C" {
    fn crypt(key: *const c_char, setting: *const c_char) -> *mut c_char;
    fn crypt_gensalt(
        prefix: *const c_char,
        count: c_ulong,
        rbytes: *const c_char,
        nrbytes: c_int,
    ) -> *mut c_char;
}

/// crypt(3) keeps its result in static storage: one caller at a time.
static LOCK: Mutex<()> = Mutex::new(());

/// crypt(key, setting); None when the library refuses the setting
/// (it answers NULL or a string starting with `*`).
pub fn hash_with(key: &[u8], setting: &[u8]) -> Option<Vec<u8>> {
    let k = crate::sys::cstr(key).ok()?;
    let s = crate::sys::cstr(setting).ok()?;
    let _g = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    // SAFETY: both strings are NUL-terminated; LOCK keeps the static
    // result ours until it is copied below.
    let r = unsafe { crypt(k.as_ptr(), s.as_ptr()) };
    if r.is_null() {
        return None;
    }
    // SAFETY: a non-null result is a NUL-terminated string.
    let out = unsafe { CStr::from_ptr(r) }.to_bytes().to_vec();
    if out.is_empty() || out[0] == b'*' {
        return None;
    }
    Some(out)
}

/// Equality that takes the same time wherever the inputs differ.
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    let mut d = (a.len() != b.len()) as u8;
    let n = a.len().max(b.len());
    for i in 0..n {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(!x);
        d |= x ^ y;
    }
    std::hint::black_box(d) == 0
}

/// Whether `pass` matches the stored crypt(3) `hash`. Locked (`!`, `*`)
/// and empty hashes and empty passwords never match.
pub fn verify(pass: &[u8], hash: &[u8]) -> bool {
    if pass.is_empty() || hash.is_empty() || hash[0] == b'!' || hash[0] == b'*' {
        return false;
    }
    match hash_with(pass, hash) {
        Some(h) => ct_eq(&h, hash),
        None => false,
    }
}

/// A fresh setting (salt) for `prefix` (`$y$`, `$6$`, `$2b$`) from the
/// kernel's random source; None when the library does not know it.
pub fn gensalt(prefix: &[u8]) -> Option<Vec<u8>> {
    let p = crate::sys::cstr(prefix).ok()?;
    let mut rnd = [0u8; 32];
    crate::sys::random(&mut rnd);
    let _g = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    // SAFETY: p is NUL-terminated, rnd holds rnd.len() bytes; LOCK keeps
    // the static result ours until it is copied below.
    let r = unsafe {
        crypt_gensalt(
            p.as_ptr(),
            0,
            rnd.as_ptr() as *const c_char,
            rnd.len() as c_int,
        )
    };
    if r.is_null() {
        return None;
    }
    // SAFETY: a non-null result is a NUL-terminated string.
    let out = unsafe { CStr::from_ptr(r) }.to_bytes().to_vec();
    if out.is_empty() || out[0] == b'*' {
        return None;
    }
    Some(out)
}

/// Hashes a new password: yescrypt when the library has it, else SHA-512.
pub fn make(pass: &[u8]) -> Option<Vec<u8>> {
    for prefix in [&b"$y$"[..], b"$6$"] {
        if let Some(s) = gensalt(prefix) {
            if let Some(h) = hash_with(pass, &s) {
                return Some(h);
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn sha512_known_answer() {
        // openssl passwd -6 -salt saltsalt secret
        let h = b"$6$saltsalt$TVLlQcbpFVof5W3Yz4DTP6gRstiNuHwwTt6GLc1E5n0U0aDehy0S5knV8wiOQSpT0Y77vwPZN.Pq.H91p5hVO1";
        let mine = hash_with(b"secret", h).unwrap();
        assert_eq!(&mine[..], &h[..]);
        assert!(verify(b"secret", &mine));
        assert!(!verify(b"Secret", &mine));
        assert!(!verify(b"", &mine));
        assert!(!verify(b"secret", b"!locked"));
    }
    #[test]
    fn make_then_verify() {
        let h = make(b"pw one").unwrap();
        assert!(h.starts_with(b"$"));
        assert!(verify(b"pw one", &h));
        assert!(!verify(b"pw two", &h));
    }
    #[test]
    fn bcrypt_and_yescrypt_settings() {
        for prefix in [&b"$2b$"[..], b"$y$", b"$6$"] {
            let s = gensalt(prefix).unwrap();
            let h = hash_with(b"pw", &s).unwrap();
            assert!(h.starts_with(prefix));
            assert!(verify(b"pw", &h));
            assert!(!verify(b"pW", &h));
        }
    }
    #[test]
    fn constant_time_equality() {
        assert!(ct_eq(b"abc", b"abc"));
        assert!(!ct_eq(b"abc", b"abd"));
        assert!(!ct_eq(b"abc", b"ab"));
        assert!(!ct_eq(b"", b"a"));
        assert!(ct_eq(b"", b""));
    }
}

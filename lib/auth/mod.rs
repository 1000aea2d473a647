//! Proving who a user is: users/passwd, crypt(3), the checkpassword
//! interface (check-password, and [`check`] for programs that run one),
//! and SASL PLAIN decoding.

pub mod checkpw;
#[allow(unsafe_code)]
pub mod crypt;
pub mod passwd;

use std::ffi::OsString;
use std::io;

/// Runs the checkpassword program `prog` (program and arguments) with
/// `user\0pass\0timestamp\0` on a pipe at its fd 3, and fds 0, 1, 2 and
/// the environment inherited, and waits for it. Ok(exit code), Ok(-1)
/// when a signal killed it. On success a checkpassword program execs its
/// own `prog`, so the caller usually gets back the exit code of the whole
/// session that followed.
pub fn check(prog: &[OsString], user: &[u8], pass: &[u8], timestamp: &[u8]) -> io::Result<i32> {
    if prog.is_empty() {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    let mut data = Vec::with_capacity(user.len() + pass.len() + timestamp.len() + 3);
    for f in [user, pass, timestamp] {
        data.extend_from_slice(f);
        data.push(0);
    }
    let (r, w) = crate::sys::pipe()?;
    // Small enough for the pipe buffer: written before the child exists,
    // so a child that never reads cannot make us block or get SIGPIPE.
    let wr = crate::sys::write_all(w, &data[..data.len().min(4096)]);
    for b in data.iter_mut() {
        *b = 0;
    }
    crate::sys::close(w);
    if let Err(e) = wr {
        crate::sys::close(r);
        return Err(e);
    }
    let mut cmd = crate::exec::command(&prog[0]);
    cmd.args(&prog[1..]);
    crate::sys::proc::pass_fd(&mut cmd, r, 3);
    let res = cmd.spawn();
    crate::sys::close(r);
    let st = res?.wait()?;
    Ok(st.code().unwrap_or(-1))
}

/// Decodes base64 (RFC 4648, padding optional, no line breaks).
/// None on any byte outside the alphabet.
pub fn base64_decode(s: &[u8]) -> Option<Vec<u8>> {
    crate::base64::decode(s)
}

/// Encodes base64 with padding.
pub fn base64_encode(b: &[u8]) -> Vec<u8> {
    crate::base64::encode(b)
}

/// A SASL PLAIN message (RFC 4616), `authzid\0authcid\0passwd`:
/// Some((authzid, authcid, passwd)).
pub fn sasl_plain(b: &[u8]) -> Option<(&[u8], &[u8], &[u8])> {
    let i = memchr::memchr(0, b)?;
    let rest = &b[i + 1..];
    let j = memchr::memchr(0, rest)?;
    let pass = &rest[j + 1..];
    if rest[..j].is_empty() || pass.contains(&0) {
        return None;
    }
    Some((&b[..i], &rest[..j], pass))
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn base64_round_trip() {
        for s in [&b""[..], b"f", b"fo", b"foo", b"foob", b"\0ann\0secret pw"] {
            assert_eq!(base64_decode(&base64_encode(s)).unwrap(), s);
        }
        assert_eq!(base64_decode(b"AGFubgBwdw==").unwrap(), b"\0ann\0pw");
        assert_eq!(base64_decode(b"AGFubgBwdw").unwrap(), b"\0ann\0pw");
        assert!(base64_decode(b"AG*u").is_none());
        assert!(base64_decode(b"A=A=").is_none());
    }
    #[test]
    fn plain_fields() {
        assert_eq!(
            sasl_plain(b"\0ann\0pw"),
            Some((&b""[..], &b"ann"[..], &b"pw"[..]))
        );
        assert_eq!(
            sasl_plain(b"ann\0ann\0pw"),
            Some((&b"ann"[..], &b"ann"[..], &b"pw"[..]))
        );
        assert_eq!(sasl_plain(b"\0\0pw"), None);
        assert_eq!(sasl_plain(b"ann\0pw"), None);
    }
}

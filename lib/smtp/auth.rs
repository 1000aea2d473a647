//! SMTP AUTH (RFC 4954) helpers: base64, the PLAIN response, and running
//! a checkpassword program (`$SMTPAUTH /bin/true`, login and password on
//! descriptor 3 as `user\0pass\0\0`).

use std::ffi::OsStr;
use std::process::Stdio;

/// What the checkpassword program said.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    Ok,
    Bad,
    /// It could not decide (exit other than 0 and 1, crash, not runnable).
    Temp,
}

/// Longest login plus password handed to checkpassword (its fd 3 limit).
pub const MAX_CRED: usize = 500;

pub fn b64encode(b: &[u8]) -> Vec<u8> {
    crate::base64::encode(b)
}

/// Strict base64 (padding required); None on anything else.
pub fn b64decode(s: &[u8]) -> Option<Vec<u8>> {
    // RFC 4954: padding is required.
    if !s.len().is_multiple_of(4) {
        return None;
    }
    crate::base64::decode(s)
}

/// Splits a PLAIN response `authzid\0authcid\0passwd` into (user, pass).
/// An authorization identity other than the user is refused (None).
pub fn plain(resp: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
    let mut it = resp.splitn(3, |&c| c == 0);
    let (z, u, p) = (it.next()?, it.next()?, it.next()?);
    if u.is_empty() || (!z.is_empty() && z != u) || p.contains(&0) {
        return None;
    }
    Some((u.to_vec(), p.to_vec()))
}

/// Runs `prog /bin/true` with `user\0pass\0\0` on descriptor 3; stdin and
/// stdout are /dev/null, stderr is ours.
pub fn check(prog: &OsStr, user: &[u8], pass: &[u8]) -> Verdict {
    if user.is_empty()
        || user.contains(&0)
        || pass.contains(&0)
        || user.len() + pass.len() > MAX_CRED
    {
        return Verdict::Bad;
    }
    let Ok((r, w)) = crate::sys::pipe() else {
        return Verdict::Temp;
    };
    let mut cmd = crate::exec::command(prog);
    cmd.arg("/bin/true")
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    crate::sys::proc::pass_fd(&mut cmd, r, 3);
    let child = cmd.spawn();
    crate::sys::close(r);
    let mut msg = Vec::with_capacity(user.len() + pass.len() + 3);
    msg.extend_from_slice(user);
    msg.push(0);
    msg.extend_from_slice(pass);
    msg.extend_from_slice(b"\0\0");
    let Ok(mut child) = child else {
        crate::sys::close(w);
        return Verdict::Temp;
    };
    let _ = crate::sys::write_all(w, &msg);
    crate::sys::close(w);
    msg.iter_mut().for_each(|b| *b = 0);
    match child.wait() {
        Ok(st) => match st.code() {
            Some(0) => Verdict::Ok,
            Some(1) => Verdict::Bad,
            _ => Verdict::Temp,
        },
        Err(_) => Verdict::Temp,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64() {
        for (p, e) in [
            (&b""[..], &b""[..]),
            (b"f", b"Zg=="),
            (b"fo", b"Zm8="),
            (b"foo", b"Zm9v"),
            (b"\0u\0p", b"AHUAcA=="),
        ] {
            assert_eq!(b64encode(p), e);
            assert_eq!(b64decode(e).unwrap(), p);
        }
        assert_eq!(b64decode(b"Zg="), None);
        assert_eq!(b64decode(b"Z==="), None);
        assert_eq!(b64decode(b"Zg==Zg=="), None);
        assert_eq!(b64decode(b"Z!=="), None);
    }

    #[test]
    fn plain_responses() {
        assert_eq!(plain(b"\0u\0p"), Some((b"u".to_vec(), b"p".to_vec())));
        assert_eq!(plain(b"u\0u\0p"), Some((b"u".to_vec(), b"p".to_vec())));
        assert_eq!(plain(b"z\0u\0p"), None);
        assert_eq!(plain(b"\0\0p"), None);
        assert_eq!(plain(b"\0u"), None);
    }
}

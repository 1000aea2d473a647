//! The program's side of UCSPI-TLS (tls-wrap -d, sslserver -n,
//! s6-ucspitlsd): no TLS code here. `SSLCTLFD`, `SSLREADFD` and
//! `SSLWRITEFD` say STARTTLS can be offered; after the protocol's "go
//! ahead" reply the program writes `Y` on the control descriptor, reads
//! back `VAR=value\0...\0`, and from then on reads and writes only the
//! data descriptors. Implicit TLS (tls-wrap without -d) shows as
//! `SSL_PROTOCOL` in the environment.

use std::io;
use std::os::unix::ffi::{OsStrExt, OsStringExt};

/// Longest answer block read from the control descriptor.
pub const MAX_INFO: usize = 4096;

#[derive(Debug, Clone, Copy)]
pub struct Starttls {
    pub ctl: i32,
    pub rfd: i32,
    pub wfd: i32,
}

fn fd_env(k: &str) -> Option<i32> {
    std::env::var(k)
        .ok()?
        .parse()
        .ok()
        .filter(|&n: &i32| n >= 0)
}

/// STARTTLS is possible: the three descriptors are in the environment.
pub fn from_env() -> Option<Starttls> {
    Some(Starttls {
        ctl: fd_env("SSLCTLFD")?,
        rfd: fd_env("SSLREADFD")?,
        wfd: fd_env("SSLWRITEFD")?,
    })
}

/// The connection is already TLS (implicit mode): `SSL_PROTOCOL` is set.
pub fn implicit() -> bool {
    std::env::var_os("SSL_PROTOCOL").is_some_and(|v| !v.is_empty())
}

/// Whether clear-text passwords are allowed before TLS: `$AUTH_CLEARTEXT`.
pub fn cleartext_allowed() -> bool {
    std::env::var_os("AUTH_CLEARTEXT").is_some_and(|v| !v.is_empty())
}

/// Whether a POP3 or IMAP login may go in clear text on a connection
/// that is not encrypted: never when STARTTLS could be used first or
/// `$UCSPITLS` is `!`, unless `$AUTH_CLEARTEXT` allows it.
pub fn cleartext_login_ok(starttls_possible: bool) -> bool {
    cleartext_allowed()
        || (!starttls_possible && std::env::var_os("UCSPITLS").is_none_or(|v| v != "!"))
}

/// The protocol and cipher of the implicit connection, for Received lines.
pub fn implicit_info() -> Vec<(Vec<u8>, Vec<u8>)> {
    ["SSL_PROTOCOL", "SSL_CIPHER"]
        .iter()
        .filter_map(|k| Some((k.as_bytes().to_vec(), std::env::var_os(k)?.into_vec())))
        .collect()
}

impl Starttls {
    /// Asks the wrapper for TLS (`Y`) and waits at most `secs` for the
    /// handshake; returns the `VAR=value` pairs it sent. An error means
    /// the handshake failed: the session must end.
    pub fn start(&self, secs: u64) -> io::Result<Vec<(Vec<u8>, Vec<u8>)>> {
        crate::sys::write_all(self.ctl, b"Y")?;
        let mut block = Vec::new();
        let mut buf = [0u8; 512];
        while !block.ends_with(b"\0\0") && block != b"\0" {
            let n = crate::sys::read_timeout(self.ctl, &mut buf, secs)?;
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the TLS handshake failed",
                ));
            }
            block.extend_from_slice(&buf[..n]);
            if block.len() > MAX_INFO {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "the TLS information is too long",
                ));
            }
        }
        Ok(block
            .split(|&c| c == 0)
            .filter_map(|kv| {
                let i = memchr::memchr(b'=', kv)?;
                Some((kv[..i].to_vec(), kv[i + 1..].to_vec()))
            })
            .collect())
    }
}

impl Starttls {
    /// STARTTLS for a program that hands fds 0/1 on (pop3-login,
    /// imap-login): after the handshake the data descriptor becomes fds
    /// 0 and 1, the control descriptor is closed, and `SSL_PROTOCOL` and
    /// `SSL_CIPHER` go into the environment of what runs next.
    pub fn onto_stdio(self, secs: u64) -> io::Result<()> {
        let info = self.start(secs)?;
        crate::sys::dup2(self.rfd, 0)?;
        crate::sys::dup2(self.wfd, 1)?;
        for fd in [self.ctl, self.rfd, self.wfd] {
            if fd > 2 {
                crate::sys::close(fd);
            }
        }
        for k in ["SSLCTLFD", "SSLREADFD", "SSLWRITEFD"] {
            std::env::remove_var(k);
        }
        for (k, v) in info {
            if k == b"SSL_PROTOCOL" || k == b"SSL_CIPHER" {
                std::env::set_var(
                    std::ffi::OsStr::from_bytes(&k),
                    std::ffi::OsStr::from_bytes(&v),
                );
            }
        }
        Ok(())
    }
}

/// `TLSv1.3:TLS_AES_256_GCM_SHA384` from the pairs, for a Received line.
pub fn describe(info: &[(Vec<u8>, Vec<u8>)]) -> Vec<u8> {
    let get = |k: &[u8]| {
        info.iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let mut d = get(b"SSL_PROTOCOL");
    let c = get(b"SSL_CIPHER");
    if !c.is_empty() {
        d.push(b':');
        d.extend_from_slice(&c);
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answer_block() {
        let fds = crate::sys::net::socketpair(libc::SOCK_STREAM).unwrap();
        let fds = [fds.0, fds.1];
        crate::sys::write_all(fds[1], b"SSL_PROTOCOL=TLSv1.3\0SSL_CIPHER=X\0\0").unwrap();
        let s = Starttls {
            ctl: fds[0],
            rfd: -1,
            wfd: -1,
        };
        let info = s.start(5).unwrap();
        let mut cmd = [0u8; 1];
        assert_eq!(crate::sys::read(fds[1], &mut cmd).unwrap(), 1);
        assert_eq!(&cmd, b"Y");
        assert_eq!(describe(&info), b"TLSv1.3:X");
        crate::sys::close(fds[1]);
        assert!(s.start(5).is_err());
        crate::sys::close(fds[0]);
    }
}

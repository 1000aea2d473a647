//! SMTP-after-POP stamps in relay/ (relay-stamp(8), relay-gate(8)).
//!
//! A stamp is the file relay/ADDR, where ADDR is the canonical text of a
//! parsed IP address (IPv4-mapped IPv6 as IPv4), so no client-supplied
//! byte ever reaches a path. Its mtime is the login time; it holds the
//! time in decimal for people. It is written as relay/.tmp.PID.RANDOM and
//! renamed into place.
//!
//! Trust: a stamp counts only when it is a regular file with one link,
//! owned by root or by the owner of relay/ itself, and relay/ is not
//! writable by group or others. So only code running as relay/'s owner
//! (or root) can open the relay; a stamp planted by any other uid is
//! ignored.

use std::io;
use std::net::IpAddr;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

/// Default for control/relaytime, in seconds.
pub const DEFAULT_RELAYTIME: u64 = 1800;

/// The canonical text of an address, or None when `raw` is not exactly
/// an IPv4 or IPv6 address (no zone ids, no surrounding junk).
pub fn canonical(raw: &[u8]) -> Option<String> {
    if raw.is_empty() || raw.len() > 45 {
        return None;
    }
    let s = std::str::from_utf8(raw).ok()?;
    let ip: IpAddr = s.parse().ok()?;
    Some(crate::rules::canonical(ip).to_string())
}

/// The client's address: $TCPREMOTEIP, else the peer of fd 0 (plain
/// inetd). Err is a message for a warning.
pub fn remote_addr() -> Result<String, Vec<u8>> {
    use std::os::unix::ffi::OsStrExt;
    match std::env::var_os("TCPREMOTEIP") {
        Some(v) => canonical(v.as_bytes()).ok_or_else(|| {
            let mut m = b"ignoring TCPREMOTEIP that is not an IP address: ".to_vec();
            m.extend_from_slice(&crate::log::field(v.as_bytes()));
            m
        }),
        None => match crate::sys::net::sock_name(0, true) {
            Ok((ip, _)) => Ok(ip.to_string()),
            Err(_) => Err(b"no TCPREMOTEIP and descriptor 0 is not a TCP socket".to_vec()),
        },
    }
}

/// relay/ under the home directory.
pub fn dir() -> PathBuf {
    crate::control::path("relay")
}

/// control/relaytime (seconds), default [`DEFAULT_RELAYTIME`].
pub fn relaytime() -> Result<u64, crate::control::ControlError> {
    crate::control::number("relaytime", DEFAULT_RELAYTIME)
}

/// Writes the stamp for `addr` (canonical) at time `now`.
pub fn stamp(addr: &str, now: u64) -> io::Result<()> {
    let d = dir();
    let tmp = d.join(format!(
        ".tmp.{}.{}",
        std::process::id(),
        crate::sys::random_hex(8)
    ));
    let r = std::fs::write(&tmp, format!("{}\n", now))
        .and_then(|_| std::fs::rename(&tmp, d.join(addr)));
    if r.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    r
}

/// Removes stamps and leftover temporary files older than `relaytime`.
/// Errors are ignored: cleaning is best effort.
pub fn clean(relaytime: u64, now: u64) {
    let d = dir();
    let rd = match std::fs::read_dir(&d) {
        Ok(r) => r,
        Err(_) => return,
    };
    for e in rd.flatten() {
        if let Ok(m) = e.path().symlink_metadata() {
            if now.saturating_sub(m.mtime().max(0) as u64) >= relaytime {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
}

/// What relay-gate finds for an address.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// A trusted stamp younger than relaytime; the age in seconds.
    Fresh(u64),
    /// A trusted stamp too old (removed when we may).
    Stale,
    /// No stamp.
    Missing,
    /// A stamp (or relay/ itself) that we do not trust, and why.
    Untrusted(String),
}

/// Looks up the stamp for `addr` (canonical).
pub fn check(addr: &str, relaytime: u64, now: u64) -> io::Result<Verdict> {
    let d = dir();
    let dm = match std::fs::metadata(&d) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Verdict::Missing),
        Err(e) => return Err(e),
    };
    let p = d.join(addr);
    let m = match p.symlink_metadata() {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Verdict::Missing),
        Err(e) => return Err(e),
    };
    if dm.mode() & 0o022 != 0 {
        return Ok(Verdict::Untrusted(format!(
            "relay/ is writable by group or others (mode {:o})",
            dm.mode() & 0o7777
        )));
    }
    if !m.file_type().is_file() || m.nlink() != 1 {
        return Ok(Verdict::Untrusted("not a plain file".into()));
    }
    if m.uid() != 0 && m.uid() != dm.uid() {
        return Ok(Verdict::Untrusted(format!(
            "owned by uid {}, not by the owner of relay/",
            m.uid()
        )));
    }
    let t = m.mtime().max(0) as u64;
    let age = now.saturating_sub(t);
    if age < relaytime && t <= now.saturating_add(relaytime) {
        return Ok(Verdict::Fresh(age));
    }
    let _ = std::fs::remove_file(&p);
    Ok(Verdict::Stale)
}

pub const GATE: &str = "relay-gate";
pub const GATE_USAGE: &str = "relay-gate prog...";

/// The program relay-gate(8): sets RELAYCLIENT for a client with a fresh
/// stamp, then runs `args` (prog...): smtp-recv's linked code when prog
/// is the smtp-recv beside us, else by exec. bin/relay-gate.rs calls it,
/// and so does tcp-serve's child for the relay-gate beside it. Returns
/// only the usage code; otherwise exits or chain-loads.
pub fn gate(args: &[std::ffi::OsString]) -> i32 {
    use crate::exit;
    exit::set_prog(GATE, true);
    if args.is_empty() {
        exit::usage(GATE_USAGE);
    }
    if std::env::var_os("RELAYCLIENT").is_none() {
        let rt = match relaytime() {
            Ok(n) => n,
            Err(e) => exit::die(exit::TEMP, &[&e.text()]),
        };
        match remote_addr() {
            Err(m) => exit::warn(&[&m]),
            Ok(addr) => match check(&addr, rt, crate::sys::now()) {
                Ok(Verdict::Fresh(age)) => {
                    std::env::set_var("RELAYCLIENT", "");
                    exit::info(&[
                        b"relay allowed for ",
                        addr.as_bytes(),
                        format!(": stamp {} s old", age).as_bytes(),
                    ]);
                }
                Ok(Verdict::Untrusted(why)) => {
                    exit::warn(&[
                        b"ignoring stamp relay/",
                        addr.as_bytes(),
                        b": ",
                        why.as_bytes(),
                    ]);
                }
                Ok(Verdict::Stale | Verdict::Missing) => {}
                Err(e) => {
                    let t = exit::errtext(&e);
                    exit::warn(&[
                        b"unable to check stamp relay/",
                        addr.as_bytes(),
                        b": ",
                        t.as_bytes(),
                    ]);
                }
            },
        }
    }
    crate::exec::run_or_chain(args)
}

#[cfg(test)]
mod tests {
    use super::canonical;
    #[test]
    fn only_parsed_addresses_name_a_stamp() {
        assert_eq!(canonical(b"127.0.0.1").as_deref(), Some("127.0.0.1"));
        assert_eq!(canonical(b"::FFFF:10.1.2.3").as_deref(), Some("10.1.2.3"));
        assert_eq!(
            canonical(b"2001:DB8:0:0::1").as_deref(),
            Some("2001:db8::1")
        );
        for bad in [
            &b""[..],
            b"..",
            b"../x",
            b"/etc/passwd",
            b"1.2.3.4/../../x",
            b"1.2.3.4\0",
            b"01.2.3.4",
            b"1.2.3",
            b" 1.2.3.4",
            b"fe80::1%eth0",
            b"\xff",
            b"1.2.3.4.",
        ] {
            assert_eq!(canonical(bad), None, "{:?}", bad);
        }
    }
}

//! check-password: the checkpassword interface (cr.yp.to/checkpwd).
//!
//! Reads `login\0password\0timestamp\0` (at most 512 bytes) from fd 3,
//! finds the account in users/passwd, then in the system accounts
//! (shadow), and checks the password with crypt(3). On success it sets
//! USER, HOME, SHELL (and MAILDIR when home/Maildir exists), drops to the
//! account's groups, gid and uid when run as root, changes to the home
//! directory and execs prog. Exit 1 bad login, 2 misuse, 111 temporary.
//! Every failed login takes the same fixed time ($CHECKPASSWORD_DELAY ms,
//! default 1000) however far the check got.

use std::ffi::{OsStr, OsString};
use std::io;
use std::os::unix::ffi::OsStrExt;

pub const BAD: i32 = 1;
pub const MISUSE: i32 = 2;
pub const TEMP: i32 = 111;
/// Longest input on fd 3.
pub const MAX_INPUT: usize = 512;
/// Default delay of a failed login, in milliseconds.
pub const DEFAULT_DELAY_MS: u64 = 1000;

/// An account that may log in.
#[derive(Clone, Debug)]
pub struct Account {
    pub name: Vec<u8>,
    pub hash: Vec<u8>,
    pub uid: u32,
    pub gid: u32,
    pub home: Vec<u8>,
    pub shell: Vec<u8>,
    /// Supplementary groups (system accounts: from the group database).
    pub groups: Vec<u32>,
}

/// Splits fd 3's bytes into (login, password, timestamp). None: misuse
/// (login or password not NUL-terminated). The timestamp is what follows
/// up to the next NUL (or the end).
pub fn parse_input(b: &[u8]) -> Option<(&[u8], &[u8], &[u8])> {
    let i = memchr::memchr(0, b)?;
    let rest = &b[i + 1..];
    let j = memchr::memchr(0, rest)?;
    let ts = &rest[j + 1..];
    let k = memchr::memchr(0, ts).unwrap_or(ts.len());
    Some((&b[..i], &rest[..j], &ts[..k]))
}

/// Reads fd 3 to its end. Err(MISUSE) when fd 3 is not open or holds more
/// than 512 bytes, Err(TEMP) on other read errors.
pub fn read_fd3() -> Result<Vec<u8>, i32> {
    let mut buf = vec![0u8; MAX_INPUT + 1];
    let mut n = 0;
    loop {
        match crate::sys::read(3, &mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => {
                n += k;
                if n > MAX_INPUT {
                    crate::sys::close(3);
                    return Err(MISUSE);
                }
            }
            Err(e) if e.raw_os_error() == Some(libc::EBADF) => return Err(MISUSE),
            Err(_) => return Err(TEMP),
        }
    }
    crate::sys::close(3);
    buf.truncate(n);
    Ok(buf)
}

/// A system account with its hash from shadow (else from passwd).
/// Ok(None) when there is no such user.
pub fn system_account(name: &[u8]) -> io::Result<Option<Account>> {
    let Some(pw) = crate::sys::getpwnam(name)? else {
        return Ok(None);
    };
    let mut acct = Account {
        name: pw.name,
        hash: pw.passwd,
        uid: pw.uid,
        gid: pw.gid,
        home: pw.dir,
        shell: pw.shell,
        groups: Vec::new(),
    };
    if let Some(h) = crate::sys::users::shadow_hash(name)? {
        acct.hash = h;
    }
    // Without shadow (not root, or no entry), "x" never matches.
    acct.groups = crate::sys::users::group_list(name, acct.gid);
    Ok(Some(acct))
}

/// The account for `name`: users/passwd first, then the system accounts.
/// Err: the lookup failed for a reason that may pass (exit 111).
pub fn find(name: &[u8]) -> Result<Option<Account>, Vec<u8>> {
    match super::passwd::lookup(name) {
        Err(e) => return Err(e.text()),
        Ok(Some(e)) => {
            return Ok(Some(Account {
                groups: vec![e.gid],
                name: e.name,
                hash: e.hash,
                uid: e.uid,
                gid: e.gid,
                home: e.home,
                shell: b"/bin/sh".to_vec(),
            }))
        }
        Ok(None) => {}
    }
    if name.is_empty() || name.len() > super::passwd::MAX_NAME || name.contains(&0) {
        return Ok(None);
    }
    system_account(name).map_err(|e| {
        let mut m = b"unable to look up user: ".to_vec();
        m.extend_from_slice(crate::exit::errtext(&e).as_bytes());
        m
    })
}

fn delay_ms() -> u64 {
    std::env::var_os("CHECKPASSWORD_DELAY")
        .and_then(|v| crate::parse::number(v.as_bytes()))
        .unwrap_or(DEFAULT_DELAY_MS)
}

/// A failed login: wait until `start + delay`, log, exit 1.
fn fail(start_ms: u64, login: &[u8], why: &str) -> ! {
    let end = start_ms + delay_ms();
    let now = crate::sys::now_ms();
    if end > now {
        std::thread::sleep(std::time::Duration::from_millis(end - now));
    }
    let ip = std::env::var_os("TCPREMOTEIP")
        .map(|v| v.as_bytes().to_vec())
        .unwrap_or_default();
    crate::exit::log(
        "info",
        &[
            b"login refused user=",
            &crate::log::field(login),
            b" remote=",
            &crate::log::field(&ip),
            b" reason=",
            why.as_bytes(),
        ],
    );
    std::process::exit(BAD)
}

pub const USAGE: &str = "check-password prog...";

/// check-password's whole run: returns only through exit or exec.
pub fn main(prog: &[OsString]) -> ! {
    use crate::exit::die;
    if prog.is_empty() {
        crate::exit::usage_exit(MISUSE, USAGE);
    }
    let mut input = match read_fd3() {
        Ok(b) => b,
        Err(MISUSE) => die(
            MISUSE,
            &[b"unable to read descriptor 3: missing or longer than 512 bytes"],
        ),
        Err(c) => die(c, &[b"unable to read descriptor 3"]),
    };
    let start = crate::sys::now_ms();
    let Some((login, pass, _ts)) = parse_input(&input) else {
        die(MISUSE, &[b"malformed input on descriptor 3: want login, password and timestamp each ended by NUL"]);
    };
    let login = login.to_vec();
    let pass = pass.to_vec();
    for b in input.iter_mut() {
        *b = 0;
    }
    let acct = match find(&login) {
        Err(m) => die(TEMP, &[&m]),
        Ok(None) => {
            // Same work as a real check, so unknown names cost the same.
            let _ = super::crypt::verify(&pass, b"$6$pipemailpipemail$");
            fail(start, &login, "unknown")
        }
        Ok(Some(a)) => a,
    };
    let ok = super::crypt::verify(&pass, &acct.hash);
    let mut pass = pass;
    for b in pass.iter_mut() {
        *b = 0;
    }
    if !ok {
        fail(start, &login, "password");
    }
    if acct.uid == 0 {
        fail(start, &login, "root");
    }
    become_user(&acct, prog)
}

/// Sets the environment, drops privileges (as root), chdirs home and
/// execs `prog`. Exit 111 when any step fails.
pub fn become_user(acct: &Account, prog: &[OsString]) -> ! {
    use crate::exit::{die, die_sys};
    use std::os::unix::ffi::OsStrExt;
    let os = |b: &[u8]| OsStr::from_bytes(b).to_os_string();
    std::env::set_var("USER", os(&acct.name));
    std::env::set_var("HOME", os(&acct.home));
    std::env::set_var("SHELL", os(&acct.shell));
    let mut md = acct.home.clone();
    md.extend_from_slice(b"/Maildir/");
    if std::path::Path::new(OsStr::from_bytes(&md)).is_dir() {
        std::env::set_var("MAILDIR", os(&md));
    }
    if crate::sys::geteuid() == 0 {
        if let Err(e) = crate::sys::drop_privileges(acct.uid, acct.gid, &acct.groups) {
            die_sys(
                TEMP,
                &[b"unable to switch to uid ", acct.uid.to_string().as_bytes()],
                &e,
            );
        }
    }
    if acct.home.contains(&0) {
        die(TEMP, &[b"bad home directory"]);
    }
    // Not root and another uid (smtp-recv's AUTH as pmaild): only the
    // password counted; a home we may not enter is no error then.
    let other = crate::sys::geteuid() != 0 && crate::sys::geteuid() != acct.uid;
    if let Err(e) = std::env::set_current_dir(OsStr::from_bytes(&acct.home)) {
        if !other {
            die_sys(TEMP, &[b"unable to chdir to ", &acct.home], &e);
        }
    }
    let e = crate::exec::exec(prog);
    die_sys(TEMP, &[b"unable to run ", prog[0].as_bytes()], &e)
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn input_fields() {
        assert_eq!(
            parse_input(b"u\0p\0<1.2@h>\0"),
            Some((&b"u"[..], &b"p"[..], &b"<1.2@h>"[..]))
        );
        assert_eq!(
            parse_input(b"u\0p\0"),
            Some((&b"u"[..], &b"p"[..], &b""[..]))
        );
        assert_eq!(
            parse_input(b"u\0p\0ts"),
            Some((&b"u"[..], &b"p"[..], &b"ts"[..]))
        );
        assert_eq!(parse_input(b"u\0p"), None);
        assert_eq!(parse_input(b"up"), None);
        assert_eq!(parse_input(b""), None);
    }
}

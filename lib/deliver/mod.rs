//! Local delivery (deliver-local(8), qmail-local's job): one message on
//! fd 0, one local recipient; the account from [`crate::users::lookup`],
//! the dot-file for the address, then each instruction in it.

pub mod dotqmail;
pub mod forward;
pub mod program;

use crate::users::Account;
use dotqmail::Instr;
use std::ffi::OsStr;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// A failed delivery: exit code (100 or 111) and the one-line text for
/// the report (ending in `(#x.y.z)`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fail {
    pub code: i32,
    pub text: Vec<u8>,
}

impl Fail {
    pub fn temp(t: &[u8]) -> Fail {
        Fail {
            code: crate::exit::TEMP,
            text: t.to_vec(),
        }
    }
    pub fn perm(t: &[u8]) -> Fail {
        Fail {
            code: crate::exit::PERM,
            text: t.to_vec(),
        }
    }
    /// `WHAT: errno text. (#4.3.0)`, always temporary: a file-system
    /// problem is worth another try.
    pub fn sys(what: &[u8], e: &io::Error) -> Fail {
        let mut t = what.to_vec();
        t.extend_from_slice(b": ");
        t.extend_from_slice(crate::exit::errtext(e).as_bytes());
        t.extend_from_slice(b". (#4.3.0)");
        Fail::temp(&t)
    }
}

/// Seconds deliver-local waits for an mbox lock.
pub const MBOX_LOCK_SECS: u64 = 30;

/// Rewinds fd 0 (the message) to its start.
pub fn rewind() -> Result<(), Fail> {
    crate::sys::lseek(0, 0, libc::SEEK_SET)
        .map(|_| ())
        .map_err(|e| Fail::sys(b"Unable to rewind message", &e))
}

/// Makes fd 0 seekable: a pipe is copied into an anonymous memory file first.
fn make_seekable() -> Result<(), Fail> {
    if crate::sys::lseek(0, 0, libc::SEEK_CUR).is_ok() {
        return Ok(());
    }
    let mem = crate::sys::fs::memfd(c"deliver-local")
        .map_err(|e| Fail::sys(b"Unable to create a memory file", &e))?;
    let fd = std::os::fd::AsRawFd::as_raw_fd(&mem);
    let mut buf = vec![0u8; 65536];
    loop {
        match crate::sys::read(0, &mut buf) {
            Ok(0) => break,
            Ok(n) => crate::sys::write_all(fd, &buf[..n])
                .map_err(|e| Fail::sys(b"Unable to copy message", &e))?,
            Err(e) => return Err(Fail::sys(b"Unable to read message", &e)),
        }
    }
    crate::sys::dup2(fd, 0).map_err(|e| Fail::sys(b"Unable to move message to fd 0", &e))?;
    Ok(())
}

/// Replaces newlines so a value fits on one header line.
fn no_newlines(b: &[u8]) -> Vec<u8> {
    b.iter()
        .map(|&c| if c == b'\n' { b'_' } else { c })
        .collect()
}

/// `Delivered-To: RECIPIENT\n`
pub fn dtline(recipient: &[u8]) -> Vec<u8> {
    let mut v = b"Delivered-To: ".to_vec();
    v.extend_from_slice(&no_newlines(recipient));
    v.push(b'\n');
    v
}

/// `Return-Path: <SENDER>\n`
pub fn rpline(sender: &[u8]) -> Vec<u8> {
    let mut v = b"Return-Path: <".to_vec();
    v.extend_from_slice(&no_newlines(sender));
    v.extend_from_slice(b">\n");
    v
}

/// The mbox `From ` line: `From SENDER DATE\n`; an empty sender is
/// MAILER-DAEMON, blanks in it become `-`.
pub fn ufline(sender: &[u8], t: u64) -> Vec<u8> {
    let mut v = b"From ".to_vec();
    if sender.is_empty() {
        v.extend_from_slice(b"MAILER-DAEMON");
    }
    v.extend(sender.iter().map(|&c| {
        if matches!(c, b' ' | b'\t' | b'\n') {
            b'-'
        } else {
            c
        }
    }));
    v.push(b' ');
    v.extend_from_slice(crate::date::ctime(t).as_bytes());
    v.push(b'\n');
    v
}

/// Whether the header of the message on fd 0 already holds `dt`
/// (compared without case): the message is looping. Also its hop count
/// with `dt` (Received: and Delivered-To: lines), for the forwards.
fn looping(dt: &[u8]) -> Result<(bool, crate::header::Hops), Fail> {
    let want = &dt[..dt.len() - 1];
    let mut hops = crate::header::Hops::default();
    hops.feed(dt);
    let mut off: i64 = 0;
    let mut line: Vec<u8> = Vec::new();
    let mut buf = vec![0u8; 65536];
    loop {
        let n = crate::sys::pread(0, &mut buf, off)
            .map_err(|e| Fail::sys(b"Unable to read message", &e))?;
        if n == 0 {
            return Ok((false, hops));
        }
        off += n as i64;
        for &c in &buf[..n] {
            hops.byte(c);
            if c == b'\n' {
                if line.is_empty() {
                    return Ok((false, hops)); // end of header
                }
                if line.eq_ignore_ascii_case(want) {
                    return Ok((true, hops));
                }
                line.clear();
            } else if line.len() <= want.len() {
                line.push(c);
            }
        }
    }
}

/// HOST2.. and EXT2..: HOST cut at its last dots, EXT after its dashes.
fn numbered(env: &mut Vec<(Vec<u8>, Vec<u8>)>, host: &[u8], ext: &[u8]) {
    let mut h = host;
    let mut e = ext;
    for i in 2..=4 {
        if let Some(d) = memchr::memrchr(b'.', h) {
            h = &h[..d];
        }
        e = match memchr::memchr(b'-', e) {
            Some(d) => &e[d + 1..],
            None => b"",
        };
        env.push((format!("HOST{}", i).into_bytes(), h.to_vec()));
        env.push((format!("EXT{}", i).into_bytes(), e.to_vec()));
    }
}

/// A dot-file found for an address.
struct DotFile {
    name: Vec<u8>,
    /// What `default` stood for, when a -default form matched.
    default: Option<Vec<u8>>,
    text: Vec<u8>,
    /// The user-execute bit: forwards only.
    xbit: bool,
}

/// Opens the first dot-file that exists. Ok(None): none does.
/// Err: unreadable, or group/world-writable (temporary, #4.7.0).
fn find_dotfile(a: &Account) -> Result<Option<DotFile>, Fail> {
    for (name, def) in dotqmail::candidates(&a.dash, &a.ext) {
        let p = Path::new(OsStr::from_bytes(&name));
        let f = match std::fs::File::open(p) {
            Ok(f) => f,
            Err(e) => match e.raw_os_error() {
                Some(libc::ENOENT | libc::ENAMETOOLONG | libc::ENOTDIR) => continue,
                _ => return Err(Fail::sys(&[b"Unable to open ", &name[..]].concat(), &e)),
            },
        };
        let m = f
            .metadata()
            .map_err(|e| Fail::sys(b"Unable to stat dot-file", &e))?;
        if m.mode() & 0o022 != 0 {
            return Err(Fail::temp(
                b"Uh-oh: .qmail file is group or world writable. (#4.7.0)",
            ));
        }
        if !m.is_file() {
            return Err(Fail::temp(
                b"Uh-oh: .qmail file is not a regular file. (#4.7.0)",
            ));
        }
        use std::io::Read;
        let mut text = Vec::new();
        f.take(dotqmail::MAX_FILE as u64 + 1)
            .read_to_end(&mut text)
            .map_err(|e| Fail::sys(b"Unable to read dot-file", &e))?;
        if text.len() > dotqmail::MAX_FILE {
            return Err(Fail::temp(b"Uh-oh: .qmail file is too big. (#4.7.0)"));
        }
        return Ok(Some(DotFile {
            name,
            default: def,
            text,
            xbit: m.mode() & 0o100 != 0,
        }));
    }
    Ok(None)
}

/// The in-process deliver-local: delivers the message on fd 0 to
/// `recipient` (`local@domain`, after routing) from `sender`.
/// Returns the exit code (0, 100, 111) and the one-line report.
///
/// It changes the calling process for good (uid and gid when root, the
/// working directory, fd 0 when that is a pipe, SIGXFSZ ignored): call it
/// in a child that exits with the returned code, as local-spawn does.
pub fn deliver_local(sender: &[u8], recipient: &[u8]) -> (i32, Vec<u8>) {
    match run(sender, recipient) {
        Ok(r) => (crate::exit::OK, r),
        Err(f) => (f.code, f.text),
    }
}

fn run(sender: &[u8], recipient: &[u8]) -> Result<Vec<u8>, Fail> {
    crate::sys::signal_ignore(libc::SIGXFSZ, true);
    let (local, domain) = crate::parse::split_addr(recipient);
    let ctl = |e: crate::control::ControlError| {
        let mut t = b"Unable to read controls: ".to_vec();
        t.extend_from_slice(&e.text());
        t.extend_from_slice(b" (#4.3.0)");
        Fail::temp(&t)
    };
    let a = crate::users::lookup(local)
        .map_err(ctl)?
        .ok_or_else(|| Fail::perm(b"Sorry, no mailbox here by that name. (#5.1.1)"))?;
    if a.uid == 0 {
        return Err(Fail::temp(b"Refusing to deliver as root; give alias/ and users/assign entries another owner. (#4.3.0)"));
    }
    let default_delivery = crate::control::read_raw("defaultdelivery")
        .map_err(ctl)?
        .unwrap_or_else(|| b"./Maildir/\n".to_vec());
    if crate::sys::geteuid() == 0 {
        crate::sys::drop_privileges(a.uid, a.gid, &[a.gid])
            .map_err(|e| Fail::sys(b"Unable to switch to the user's uid", &e))?;
    }
    make_seekable()?;
    if a.home.first() != Some(&b'/') {
        return Err(Fail::temp(
            b"Home directory is not an absolute path. (#4.3.0)",
        ));
    }
    let home = Path::new(OsStr::from_bytes(&a.home));
    std::env::set_current_dir(home)
        .map_err(|e| Fail::sys(b"Unable to switch to the home directory", &e))?;
    let hm =
        std::fs::metadata(".").map_err(|e| Fail::sys(b"Unable to stat the home directory", &e))?;
    if hm.mode() & 0o022 != 0 {
        return Err(Fail::temp(
            b"Uh-oh: home directory is group or world writable. (#4.7.0)",
        ));
    }
    if hm.mode() & 0o1000 != 0 {
        return Err(Fail::temp(
            b"Home directory is sticky: user is editing his .qmail file. (#4.2.1)",
        ));
    }
    let dt = dtline(recipient);
    let (looping, hops) = looping(&dt)?;
    if looping {
        return Err(Fail::perm(
            b"This message is looping: it already has my Delivered-To line. (#5.4.6)",
        ));
    }
    let now = crate::sys::now();
    let (instrs, default_part, found) = match find_dotfile(&a)? {
        Some(d) => {
            let i = if d.text.is_empty() {
                dotqmail::parse(&default_delivery, false)?
            } else {
                dotqmail::parse(&d.text, d.xbit)?
            };
            (i, d.default, Some(d.name))
        }
        None if !a.dash.is_empty() => {
            return Err(Fail::perm(b"Sorry, no mailbox here by that name. (#5.1.1)"))
        }
        None => (dotqmail::parse(&default_delivery, false)?, None, None),
    };
    // Forwards carry our Delivered-To line: bounce a looping message before
    // anything is delivered, rather than after (forward() checks again).
    if hops.looping() && instrs.iter().any(|i| matches!(i, Instr::Forward(_))) {
        return Err(Fail::perm(crate::header::LOOPING));
    }
    let newsender = new_sender(sender, local, domain, found.as_deref());
    let rp = rpline(sender);
    let uf = ufline(sender, now);
    let mut env: Vec<(Vec<u8>, Vec<u8>)> = vec![
        (b"SENDER".to_vec(), sender.to_vec()),
        (b"NEWSENDER".to_vec(), newsender.clone()),
        (b"RECIPIENT".to_vec(), recipient.to_vec()),
        (b"USER".to_vec(), a.user.clone()),
        (b"HOME".to_vec(), a.home.clone()),
        (b"HOST".to_vec(), domain.to_vec()),
        (b"LOCAL".to_vec(), local.to_vec()),
        (b"EXT".to_vec(), a.ext.clone()),
        (b"DTLINE".to_vec(), dt.clone()),
        (b"RPLINE".to_vec(), rp.clone()),
        (b"UFLINE".to_vec(), uf.clone()),
    ];
    if let Some(d) = &default_part {
        env.push((b"DEFAULT".to_vec(), d.clone()));
    }
    numbered(&mut env, domain, &a.ext);
    let pre = [&rp[..], &dt[..]].concat();
    let (mut files, mut programs) = (0, 0);
    let mut forwards: Vec<Vec<u8>> = Vec::new();
    for i in &instrs {
        match i {
            Instr::Maildir(p) => {
                rewind()?;
                crate::maildir::deliver(Path::new(OsStr::from_bytes(p)), &pre, 0)?;
                files += 1;
            }
            Instr::Mbox(p) => {
                rewind()?;
                crate::mbox::deliver(
                    Path::new(OsStr::from_bytes(p)),
                    &uf,
                    &pre,
                    0,
                    MBOX_LOCK_SECS * 1000,
                )?;
                files += 1;
            }
            Instr::Program(c) => {
                programs += 1;
                if program::run(c, &env)? {
                    break;
                }
            }
            Instr::Forward(f) => forwards.push(f.clone()),
        }
    }
    let mut report = format!("did {}+{}+{}", files, forwards.len(), programs).into_bytes();
    if !forwards.is_empty() {
        rewind()?;
        let id = forward::forward(0, &dt, &newsender, &forwards)?;
        report.extend_from_slice(b" qp ");
        report.extend_from_slice(&id);
    }
    Ok(report)
}

/// The envelope sender for forwards: the sender, unless a `NAME-owner`
/// dot-file exists beside the one used (then `LOCAL-owner@DOMAIN`);
/// bounces (empty sender, `#@[]`) keep theirs.
fn new_sender(sender: &[u8], local: &[u8], domain: &[u8], dotfile: Option<&[u8]>) -> Vec<u8> {
    if sender.is_empty() || sender == b"#@[]" {
        return sender.to_vec();
    }
    if let Some(name) = dotfile {
        if !name.ends_with(b"default") {
            let owner = [name, b"-owner"].concat();
            if Path::new(OsStr::from_bytes(&owner)).exists() {
                return [local, b"-owner@", domain].concat();
            }
        }
    }
    sender.to_vec()
}

/// `value` ending in exactly one newline (an empty value stays empty).
pub fn line_end(mut v: Vec<u8>) -> Vec<u8> {
    if !v.is_empty() && !v.ends_with(b"\n") {
        v.push(b'\n');
    }
    v
}

/// The values of the environment variables `names` (as deliver-local sets
/// RPLINE, DTLINE), each ending in a newline; unset ones add nothing.
pub fn env_lines(names: &[&str]) -> Vec<u8> {
    use std::os::unix::ffi::OsStringExt;
    let mut v = Vec::new();
    for n in names {
        if let Some(x) = std::env::var_os(n) {
            v.extend_from_slice(&line_end(x.into_vec()));
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn added_lines() {
        assert_eq!(
            dtline(b"joe@example.org"),
            b"Delivered-To: joe@example.org\n"
        );
        assert_eq!(rpline(b""), b"Return-Path: <>\n");
        assert_eq!(rpline(b"a\nb@c"), b"Return-Path: <a_b@c>\n");
        assert_eq!(
            ufline(b"", 0),
            b"From MAILER-DAEMON Thu Jan  1 00:00:00 1970\n"
        );
        assert_eq!(
            ufline(b"a b@c", 0),
            b"From a-b@c Thu Jan  1 00:00:00 1970\n"
        );
    }
    #[test]
    fn numbered_parts() {
        let mut v = Vec::new();
        numbered(&mut v, b"mail.example.org", b"a-b");
        let get = |k: &str| v.iter().find(|(n, _)| n == k.as_bytes()).unwrap().1.clone();
        assert_eq!(get("HOST2"), b"mail.example");
        assert_eq!(get("HOST3"), b"mail");
        assert_eq!(get("HOST4"), b"mail");
        assert_eq!(get("EXT2"), b"b");
        assert_eq!(get("EXT3"), b"");
    }
}

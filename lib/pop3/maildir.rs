//! The Maildir side of pop3d: listing new/ and cur/, message sizes as
//! sent (CRLF line ends), the size cache, sending a message with CRLF and
//! dot-stuffing, the UPDATE state's renames and unlinks, tmp/ cleaning.

use std::collections::HashMap;
use std::io::{self, BufRead};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

/// Files in tmp/ not accessed for this long are removed (maildir(5)).
pub const TMP_STALE: u64 = 36 * 3600;
/// The size cache for messages without `,W=` in their name.
pub const CACHE: &str = "pop3d-sizes";
/// The lock that keeps a second session out.
pub const LOCK: &str = "pop3d.lock";

#[derive(Clone, Debug)]
pub struct Msg {
    /// In new/ (else cur/).
    pub new: bool,
    /// The file name, with its `:2,` info when it has one.
    pub name: Vec<u8>,
    /// Octets as sent: LF becomes CR LF.
    pub size: u64,
    pub deleted: bool,
    pub retrieved: bool,
}

impl Msg {
    /// The unique name: the file name without its `:info`.
    pub fn uid(&self) -> &[u8] {
        let n = &self.name;
        &n[..memchr::memchr(b':', n).unwrap_or(n.len())]
    }
    pub fn path(&self, md: &Path) -> PathBuf {
        md.join(if self.new { "new" } else { "cur" })
            .join(std::ffi::OsStr::from_bytes(&self.name))
    }
}

/// The `,W=N` size in a unique name, when present.
pub fn wsize(uid: &[u8]) -> Option<u64> {
    let i = memchr::memmem::rfind(uid, b",W=")?;
    let d = &uid[i + 3..];
    let end = d
        .iter()
        .position(|c| !c.is_ascii_digit())
        .unwrap_or(d.len());
    crate::parse::number(&d[..end])
}

/// The leading seconds of a unique name, for delivery order.
fn stamp(uid: &[u8]) -> u64 {
    let end = uid
        .iter()
        .position(|c| !c.is_ascii_digit())
        .unwrap_or(uid.len());
    crate::parse::number(&uid[..end]).unwrap_or(u64::MAX)
}

/// Size as sent of a whole message read from `r`: each LF not after a CR
/// counts 2, and a last line without LF gets CR LF added (a bare CR that
/// ends the message becomes that CR LF, as send() writes it).
pub fn crlf_size(r: &mut impl io::Read) -> io::Result<u64> {
    let mut buf = vec![0u8; 65536];
    let mut s = crate::maildir::Sizes::default();
    loop {
        let k = r.read(&mut buf)?;
        if k == 0 {
            return Ok(s.sent());
        }
        s.add(&buf[..k]);
    }
}

fn load_cache(md: &Path) -> HashMap<Vec<u8>, u64> {
    let mut m = HashMap::new();
    if let Ok(t) = std::fs::read(md.join(CACHE)) {
        for l in t.split(|&c| c == b'\n') {
            if let Some(i) = memchr::memrchr(b' ', l) {
                if let Some(n) = crate::parse::number(&l[i + 1..]) {
                    m.insert(l[..i].to_vec(), n);
                }
            }
        }
    }
    m
}

fn save_cache(md: &Path, m: &HashMap<Vec<u8>, u64>) -> io::Result<()> {
    use std::io::Write;
    let tmp = md.join(format!("{}.{}", CACHE, std::process::id()));
    let mut t = Vec::with_capacity(m.len() * 48);
    for (k, v) in m {
        t.extend_from_slice(k);
        t.push(b' ');
        t.extend_from_slice(v.to_string().as_bytes());
        t.push(b'\n');
    }
    let r = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&t)?;
        std::fs::rename(&tmp, md.join(CACHE))
    })();
    if r.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    r
}

/// Every message in new/ and cur/ (names starting with `.` skipped), in
/// delivery order. Sizes come from `,W=` in the name, else the cache, else
/// reading the file (then the cache is rewritten).
pub fn scan(md: &Path) -> io::Result<Vec<Msg>> {
    let mut v = Vec::new();
    for (sub, new) in [("new", true), ("cur", false)] {
        for e in std::fs::read_dir(md.join(sub))? {
            let name = e?.file_name().into_vec();
            if name.first() == Some(&b'.') {
                continue;
            }
            v.push(Msg {
                new,
                name,
                size: 0,
                deleted: false,
                retrieved: false,
            });
        }
    }
    v.sort_by_cached_key(|m| (stamp(m.uid()), m.uid().to_vec()));
    let mut cache: Option<HashMap<Vec<u8>, u64>> = None;
    let mut fresh = HashMap::new();
    let mut changed = false;
    let mut gone = Vec::new();
    for (i, m) in v.iter_mut().enumerate() {
        if let Some(w) = wsize(m.uid()) {
            m.size = w;
            continue;
        }
        let c = cache.get_or_insert_with(|| load_cache(md));
        let size = match c.get(m.uid()) {
            Some(&n) => n,
            None => match std::fs::File::open(m.path(md)) {
                Ok(mut f) => {
                    changed = true;
                    crlf_size(&mut f)?
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    gone.push(i);
                    continue;
                }
                Err(e) => return Err(e),
            },
        };
        m.size = size;
        fresh.insert(m.uid().to_vec(), size);
    }
    for i in gone.into_iter().rev() {
        v.remove(i);
    }
    if let Some(c) = cache {
        if changed || c.len() != fresh.len() {
            let _ = save_cache(md, &fresh);
        }
    }
    Ok(v)
}

/// Sends a message from `r` to `out`: LF becomes CR LF (CR LF stays),
/// lines starting with `.` get another `.`, a missing last LF is added.
/// With `top = Some(k)`: the header, the blank line and `k` body lines.
/// The terminating `.` line is the caller's.
pub fn send(
    r: impl io::Read,
    out: &mut Vec<u8>,
    top: Option<u64>,
    mut flush: impl FnMut(&mut Vec<u8>) -> io::Result<()>,
) -> io::Result<()> {
    let mut r = io::BufReader::with_capacity(65536, r);
    let mut line = Vec::new();
    let mut in_body = false;
    let mut body_lines = 0u64;
    loop {
        if in_body && top.is_some_and(|k| body_lines >= k) {
            break;
        }
        line.clear();
        if r.read_until(b'\n', &mut line)? == 0 {
            break;
        }
        if in_body {
            body_lines += 1;
        }
        let mut l = &line[..];
        if l.last() == Some(&b'\n') {
            l = &l[..l.len() - 1];
        }
        if l.last() == Some(&b'\r') {
            l = &l[..l.len() - 1];
        }
        if !in_body && l.is_empty() {
            in_body = true;
        }
        if l.first() == Some(&b'.') {
            out.push(b'.');
        }
        out.extend_from_slice(l);
        out.extend_from_slice(b"\r\n");
        if out.len() >= 65536 {
            flush(out)?;
        }
    }
    Ok(())
}

/// The name a retrieved message gets in cur/: its info with `S` added
/// (flags kept in ASCII order); `:2,S` when it had none.
pub fn seen_name(name: &[u8]) -> Vec<u8> {
    let (uid, info) = match memchr::memchr(b':', name) {
        Some(i) => (&name[..i], &name[i + 1..]),
        None => (name, &b""[..]),
    };
    let mut n = uid.to_vec();
    if info.is_empty() {
        n.extend_from_slice(b":2,S");
    } else if let Some(flags) = info.strip_prefix(b"2,") {
        let mut f = flags.to_vec();
        if !f.contains(&b'S') {
            f.push(b'S');
            f.sort_unstable();
        }
        n.extend_from_slice(b":2,");
        n.extend_from_slice(&f);
    } else {
        n.push(b':');
        n.extend_from_slice(info);
    }
    n
}

/// The UPDATE state: unlinks deleted messages, moves retrieved ones to
/// cur/ with `S` and the rest of new/ to cur/ with `:2,`. Returns how many
/// deletions failed.
pub fn update(md: &Path, msgs: &[Msg]) -> usize {
    let mut failed = 0;
    let mut changed = false;
    for m in msgs {
        let from = m.path(md);
        if m.deleted {
            match std::fs::remove_file(&from) {
                Ok(()) => changed = true,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => {
                    failed += 1;
                    crate::exit::warn(&[
                        b"unable to unlink ",
                        &m.name,
                        b": ",
                        crate::exit::errtext(&e).as_bytes(),
                    ]);
                }
            }
            continue;
        }
        let to = if m.retrieved {
            seen_name(&m.name)
        } else if m.new {
            let mut n = m.name.clone();
            if !n.contains(&b':') {
                n.extend_from_slice(b":2,");
            }
            n
        } else {
            continue;
        };
        if !m.new && to == m.name {
            continue;
        }
        changed |=
            std::fs::rename(&from, md.join("cur").join(std::ffi::OsStr::from_bytes(&to))).is_ok();
    }
    if changed {
        for d in ["new", "cur"] {
            let _ = crate::sys::fsync_dir(&md.join(d));
        }
    }
    failed
}

/// Removes files in tmp/ not accessed for 36 hours.
pub fn clean_tmp(md: &Path, now: u64) {
    use std::os::unix::fs::MetadataExt;
    let Ok(rd) = std::fs::read_dir(md.join("tmp")) else {
        return;
    };
    for e in rd.flatten() {
        if let Ok(m) = e.metadata() {
            if m.is_file() && (m.atime().max(0) as u64) + TMP_STALE < now {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    fn sent(msg: &[u8], top: Option<u64>) -> Vec<u8> {
        let mut out = Vec::new();
        send(msg, &mut out, top, |_| Ok(())).unwrap();
        out
    }
    #[test]
    fn sizes() {
        assert_eq!(crlf_size(&mut &b"a\nb\n"[..]).unwrap(), 6);
        assert_eq!(crlf_size(&mut &b"a\r\nb"[..]).unwrap(), 6);
        assert_eq!(crlf_size(&mut &b""[..]).unwrap(), 0);
        assert_eq!(wsize(b"1700000000.M1P2.host,S=100,W=104"), Some(104));
        assert_eq!(wsize(b"1700000000.M1P2.host,S=100"), None);
    }
    #[test]
    fn crlf_and_dot_stuffing() {
        let m = b"Subject: x\n\n.hidden\nline\r\n..two\nend";
        assert_eq!(
            sent(m, None),
            b"Subject: x\r\n\r\n..hidden\r\nline\r\n...two\r\nend\r\n".to_vec()
        );
        assert_eq!(sent(m, Some(0)), b"Subject: x\r\n\r\n".to_vec());
        assert_eq!(
            sent(m, Some(2)),
            b"Subject: x\r\n\r\n..hidden\r\nline\r\n".to_vec()
        );
        assert_eq!(
            crlf_size(&mut &m[..]).unwrap(),
            sent(m, None).len() as u64 - 2 /* dot-stuffing */
        );
    }
    #[test]
    fn seen_names() {
        assert_eq!(seen_name(b"123.a.h"), b"123.a.h:2,S".to_vec());
        assert_eq!(seen_name(b"123.a.h:2,"), b"123.a.h:2,S".to_vec());
        assert_eq!(seen_name(b"123.a.h:2,RF"), b"123.a.h:2,FRS".to_vec());
        assert_eq!(seen_name(b"123.a.h:2,ST"), b"123.a.h:2,ST".to_vec());
    }
}

//! pop3d's mailbox: the messages of new/ and cur/ in delivery order with
//! their sizes (from the name, pop3d's size cache, or counted), sending one
//! with CRLF and dot-stuffing, and the UPDATE state's renames and unlinks.
//! Names, sizes and flag letters follow [`crate::maildir`].

use crate::maildir::{flags, lines, name};
use std::collections::HashMap;
use std::io::{self, BufRead};
use std::path::{Path, PathBuf};

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
        flags::base_of(&self.name)
    }
    pub fn path(&self, md: &Path) -> PathBuf {
        crate::maildir::path(md, if self.new { "new" } else { "cur" }, &self.name)
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
    let mut t = Vec::with_capacity(m.len() * 48);
    for (k, v) in m {
        t.extend_from_slice(k);
        t.push(b' ');
        t.extend_from_slice(v.to_string().as_bytes());
        t.push(b'\n');
    }
    crate::maildir::replace(&md.join(CACHE), &t)
}

/// Every message in new/ and cur/ (names starting with `.` skipped), in
/// delivery order. Sizes come from `,W=` in the name, else the cache, else
/// reading the file (then the cache is rewritten).
pub fn scan(md: &Path) -> io::Result<Vec<Msg>> {
    let mut v = Vec::new();
    for (sub, new) in [("new", true), ("cur", false)] {
        for name in crate::maildir::names(&md.join(sub))? {
            v.push(Msg {
                new,
                name,
                size: 0,
                deleted: false,
                retrieved: false,
            });
        }
    }
    v.sort_by_cached_key(|m| (name::seconds(m.uid()), m.uid().to_vec()));
    let mut cache: Option<HashMap<Vec<u8>, u64>> = None;
    let mut fresh = HashMap::new();
    let mut changed = false;
    let mut gone = Vec::new();
    for (i, m) in v.iter_mut().enumerate() {
        if let Some(w) = name::size_in(m.uid(), b'W') {
            m.size = w;
            continue;
        }
        let c = cache.get_or_insert_with(|| load_cache(md));
        let size = match c.get(m.uid()) {
            Some(&n) => n,
            None => match std::fs::File::open(m.path(md)) {
                Ok(mut f) => {
                    changed = true;
                    lines::read_sent_size(&mut f)?
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
        if !in_body && crate::header::is_blank(&line) {
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
        // A retrieved message is \Seen; the rest of new/ moves to cur/.
        let to = if m.retrieved {
            flags::name_adding(&m.name, flags::SEEN)
        } else if m.new {
            flags::name_adding(&m.name, 0)
        } else {
            continue;
        };
        if !m.new && to == m.name {
            continue;
        }
        changed |= std::fs::rename(&from, crate::maildir::path(md, "cur", &to)).is_ok();
    }
    if changed {
        for d in ["new", "cur"] {
            let _ = crate::sys::fsync_dir(&md.join(d));
        }
    }
    failed
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
            lines::read_sent_size(&mut &m[..]).unwrap(),
            sent(m, None).len() as u64 - 2 /* dot-stuffing */
        );
    }
}

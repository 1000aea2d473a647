//! `pipemail-cache`: ENVELOPE, BODY and BODYSTRUCTURE answers kept per
//! folder so a client that asks for them again does not make imapd read
//! and parse every message. Only an optimisation: a missing, stale or
//! damaged cache is ignored (and rewritten), never trusted over the mail.
//!
//! Format: a first line `V<uidvalidity> F<format>`, then records
//! `<uid> <kind> <length>\n<bytes>\n`, kind `E` (envelope), `B` (body) or
//! `S` (bodystructure). Messages never change and UIDs are never reused
//! within one UIDVALIDITY, so records never go stale; records of expunged
//! messages are dropped when the file is compacted. [`FORMAT`] changes
//! whenever imapd's answers change, so an upgrade ignores old answers.
//!
//! A session holds only where each record lies (16 bytes a record,
//! whatever the answers' size) and reads an answer from the file when it
//! is asked for: the answers themselves stay in the page cache, shared by
//! every session of the folder, so a session's memory does not grow with
//! the size of the folder's answers.

use super::store;
use crate::maildir::{lock, replace};
use std::fs::File;
use std::io::{BufRead, Read, Write};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::Path;

pub const FILE: &str = "pipemail-cache";

/// The version of the answers (2: Content-Language lists, Dovecot's
/// reading of repeated fields, of multipart boundaries and of line counts,
/// obsolete `Name :` syntax).
pub const FORMAT: u32 = 2;

/// The records of one folder's cache file, as offsets into the file
/// (the inode) this session read or wrote last.
#[derive(Default)]
pub struct Cache {
    file: Option<File>,
    /// `(uid << 8 | kind, offset, length)` of each record, sorted (16
    /// bytes a record; a record past 4 GiB into the file is not used).
    at: Vec<(u64, u32, u32)>,
    /// Bytes the records of `at` take in a compacted file.
    held: u64,
    /// Where the last good record of `file` ends.
    end: u64,
}

fn head(validity: u32) -> String {
    format!("V{} F{}\n", validity, FORMAT)
}

/// The (device, inode) of a file.
fn id(m: &std::fs::Metadata) -> (u64, u64) {
    (m.dev(), m.ino())
}

impl Cache {
    /// Reads the cache; empty when missing, for another UIDVALIDITY, or
    /// from the first damaged record on. Also returns the number of
    /// records read.
    pub fn load(dir: &Path, validity: u32) -> (Cache, usize) {
        match File::open(dir.join(FILE)) {
            Ok(f) => Cache::index(f, validity),
            Err(_) => (Cache::default(), 0),
        }
    }

    /// Indexes the records of `f`, reading it once through a small buffer.
    fn index(f: File, validity: u32) -> (Cache, usize) {
        let mut c = Cache::default();
        let mut r = std::io::BufReader::with_capacity(65536, &f);
        let head = head(validity);
        let mut line = Vec::new();
        let _ = r.by_ref().take(64).read_until(b'\n', &mut line);
        if line != head.as_bytes() {
            return (c, 0);
        }
        let mut pos = line.len() as u64;
        let mut records = 0;
        loop {
            line.clear();
            match r.by_ref().take(64).read_until(b'\n', &mut line) {
                Ok(n) if n > 0 && line.ends_with(b"\n") => {}
                _ => break,
            }
            let f: Vec<&[u8]> = line[..line.len() - 1].split(|&c| c == b' ').collect();
            let (uid, kind, len) = match (
                f.first().and_then(|x| crate::parse::number(x)),
                f.get(1),
                f.get(2).and_then(|x| crate::parse::number(x)),
            ) {
                (Some(u), Some(k), Some(l)) if f.len() == 3 && k.len() == 1 && l < 1 << 31 => {
                    (u as u32, k[0], l as u32)
                }
                _ => break,
            };
            // the bytes, then their closing newline
            let mut nl = [0u8];
            if r.seek_relative(len as i64).is_err()
                || r.read_exact(&mut nl).is_err()
                || nl[0] != b'\n'
            {
                break;
            }
            pos += line.len() as u64;
            c.put(uid, kind, pos, len);
            pos += len as u64 + 1;
            records += 1;
        }
        drop(r);
        c.file = Some(f);
        c.end = pos;
        (c, records)
    }

    fn find(&self, uid: u32, kind: u8) -> Result<usize, usize> {
        let key = (uid as u64) << 8 | kind as u64;
        // records mostly come in order: look at the last one first
        match self.at.last() {
            Some(l) if l.0 < key => Err(self.at.len()),
            _ => self.at.binary_search_by_key(&key, |r| r.0),
        }
    }

    fn put(&mut self, uid: u32, kind: u8, at: u64, len: u32) {
        let Ok(at) = u32::try_from(at) else { return };
        let r = ((uid as u64) << 8 | kind as u64, at, len);
        match self.find(uid, kind) {
            Ok(i) => {
                self.held -= self.at[i].2 as u64 + 16;
                self.at[i] = r;
            }
            Err(i) => self.at.insert(i, r),
        }
        self.held += len as u64 + 16;
    }

    pub fn has(&self, uid: u32, kind: u8) -> bool {
        self.find(uid, kind).is_ok()
    }

    /// The answer of `kind` for `uid`, read from the file.
    pub fn get(&self, uid: u32, kind: u8) -> Option<Vec<u8>> {
        let (_, at, len) = self.at[self.find(uid, kind).ok()?];
        let mut v = vec![0u8; len as usize];
        self.file.as_ref()?.read_exact_at(&mut v, at as u64).ok()?;
        Some(v)
    }

    /// Forgets the records of UIDs that are not `live` (expunged messages).
    pub fn retain(&mut self, live: &dyn Fn(u32) -> bool) {
        let held = &mut self.held;
        self.at.retain(|r| {
            let keep = live((r.0 >> 8) as u32);
            if !keep {
                *held -= r.2 as u64 + 16;
            }
            keep
        });
    }

    /// Appends new records (under the folder lock, one write). When another
    /// session has replaced the file since, this session takes the new
    /// file's records first. The file stays proportional to the folder:
    /// when it has grown past twice what this session holds plus 64 KiB,
    /// it is rewritten with only those records (other sessions' duplicates
    /// and records of expunged messages go).
    pub fn append(
        &mut self,
        dir: &Path,
        validity: u32,
        new: &[(u32, u8, Vec<u8>)],
    ) -> std::io::Result<()> {
        if new.is_empty() {
            return Ok(());
        }
        let _l = lock(dir)?;
        let path = dir.join(FILE);
        let head = head(validity);
        let mut f = match std::fs::OpenOptions::new()
            .read(true)
            .append(true)
            .open(&path)
        {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                replace(&path, head.as_bytes())?;
                std::fs::OpenOptions::new()
                    .read(true)
                    .append(true)
                    .open(&path)?
            }
            Err(e) => return Err(e),
        };
        let theirs = id(&f.metadata()?);
        let ours = match &self.file {
            Some(o) => Some(id(&o.metadata()?)),
            None => None,
        };
        if ours != Some(theirs) {
            *self = Cache::index(f.try_clone()?, validity).0;
            if self.file.is_none() {
                // another version or UIDVALIDITY: start it afresh
                replace(&path, head.as_bytes())?;
                f = std::fs::OpenOptions::new()
                    .read(true)
                    .append(true)
                    .open(&path)?;
                self.file = Some(f.try_clone()?);
            } else if self.end != f.metadata()?.len() {
                // damaged: keep the records before the damage
                self.rewrite(&path, validity)?;
                f = std::fs::OpenOptions::new()
                    .read(true)
                    .append(true)
                    .open(&path)?;
            }
        }
        let mut at = f.metadata()?.len();
        let mut out = Vec::new();
        let mut put = Vec::new();
        for (u, k, v) in new {
            let h = format!("{} {} {}\n", u, *k as char, v.len());
            out.extend_from_slice(h.as_bytes());
            put.push((*u, *k, at + h.len() as u64, v.len() as u32));
            at += (h.len() + v.len() + 1) as u64;
            out.extend_from_slice(v);
            out.push(b'\n');
        }
        f.write_all(&out)?;
        self.end = at;
        for (u, k, a, l) in put {
            self.put(u, k, a, l);
        }
        if at > 2 * self.held + 65536 {
            self.rewrite(&path, validity)?;
        }
        Ok(())
    }

    /// Rewrites the cache with only the records of `live` UIDs.
    pub fn compact(
        &mut self,
        dir: &Path,
        validity: u32,
        live: &dyn Fn(u32) -> bool,
    ) -> std::io::Result<()> {
        let _l = lock(dir)?;
        self.retain(live);
        self.rewrite(&dir.join(FILE), validity)
    }

    /// Writes this session's records as the whole file (under the lock)
    /// and reads its index back.
    fn rewrite(&mut self, path: &Path, validity: u32) -> std::io::Result<()> {
        let mut out = head(validity).into_bytes();
        let keys: Vec<(u32, u8)> = self
            .at
            .iter()
            .map(|r| ((r.0 >> 8) as u32, r.0 as u8))
            .collect();
        for (u, k) in keys {
            if let Some(v) = self.get(u, k) {
                out.extend_from_slice(format!("{} {} {}\n", u, k as char, v.len()).as_bytes());
                out.extend_from_slice(&v);
                out.push(b'\n');
            }
        }
        replace(path, &out)?;
        drop(out);
        *self = Cache::index(File::open(path)?, validity).0;
        Ok(())
    }
}

/// Appends the answers `f` computed since the last call to its cache
/// file (FETCH calls it every 256 answers, so a FETCH of a large folder
/// holds few at a time and other sessions can use them at once).
pub fn save(f: &mut store::Folder) {
    if f.cache_new.is_empty() {
        return;
    }
    let new = std::mem::take(&mut f.cache_new);
    let c = f.cache.get_or_insert_with(Default::default);
    if let Err(e) = c.append(&f.dir, f.validity, &new) {
        crate::exit::warn(&[
            b"unable to write cache: ",
            crate::exit::errtext(&e).as_bytes(),
        ]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn round_trip_and_damage() {
        let d = std::env::temp_dir().join(format!("pm-cache-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        let mut a = Cache::default();
        a.append(
            &d,
            7,
            &[(1, b'E', b"(a\nb)".to_vec()), (2, b'S', b"x".to_vec())],
        )
        .unwrap();
        a.append(&d, 7, &[(3, b'B', b"".to_vec())]).unwrap();
        assert_eq!(a.get(2, b'S').unwrap(), b"x");
        let (mut c, n) = Cache::load(&d, 7);
        assert_eq!(n, 3);
        assert_eq!(c.get(1, b'E').unwrap(), b"(a\nb)");
        assert_eq!(c.get(3, b'B').unwrap(), b"");
        assert!(Cache::load(&d, 8).0.at.is_empty());
        let mut raw = std::fs::read(d.join(FILE)).unwrap();
        raw.truncate(raw.len() - 3);
        std::fs::write(d.join(FILE), &raw).unwrap();
        assert_eq!(Cache::load(&d, 7).1, 2);
        // `c` still reads the inode it loaded; it writes the new file.
        c.compact(&d, 7, &|u| u != 2).unwrap();
        assert_eq!(Cache::load(&d, 7).1, 2);
        assert_eq!(c.get(1, b'E').unwrap(), b"(a\nb)");
        // `a` sees that the file was replaced and takes its records.
        a.append(&d, 7, &[(4, b'E', b"y".to_vec())]).unwrap();
        assert!(!a.has(2, b'S'));
        assert_eq!(a.get(3, b'B').unwrap(), b"");
        assert_eq!(Cache::load(&d, 7).1, 3);
        // a file of another UIDVALIDITY is started afresh
        let mut b = Cache::default();
        b.append(&d, 9, &[(1, b'E', b"z".to_vec())]).unwrap();
        assert_eq!(Cache::load(&d, 9).1, 1);
        assert_eq!(Cache::load(&d, 7).1, 0);
        std::fs::remove_dir_all(&d).unwrap();
    }
}

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

use super::uidlist::FastMap;
use crate::maildir::{lock, replace};
use std::io::Write;
use std::path::Path;

pub const FILE: &str = "pipemail-cache";

pub type Cache = FastMap<(u32, u8), Vec<u8>>;

/// The version of the answers (2: Content-Language lists, Dovecot's
/// reading of repeated fields, of multipart boundaries and of line counts,
/// obsolete `Name :` syntax).
pub const FORMAT: u32 = 2;

fn head(validity: u32) -> String {
    format!("V{} F{}\n", validity, FORMAT)
}

/// Reads the cache; empty when missing, for another UIDVALIDITY, or from
/// the first damaged record on.
pub fn load(dir: &Path, validity: u32) -> (Cache, usize) {
    let mut m = Cache::default();
    let d = match std::fs::read(dir.join(FILE)) {
        Ok(d) => d,
        Err(_) => return (m, 0),
    };
    let head = head(validity);
    if !d.starts_with(head.as_bytes()) {
        return (m, 0);
    }
    let mut i = head.len();
    let mut records = 0;
    while i < d.len() {
        let nl = match memchr::memchr(b'\n', &d[i..]) {
            Some(n) => i + n,
            None => break,
        };
        let f: Vec<&[u8]> = d[i..nl].split(|&c| c == b' ').collect();
        let (uid, kind, len) = match (
            f.first().and_then(|x| crate::parse::number(x)),
            f.get(1),
            f.get(2).and_then(|x| crate::parse::number(x)),
        ) {
            (Some(u), Some(k), Some(l)) if f.len() == 3 && k.len() == 1 => {
                (u as u32, k[0], l as usize)
            }
            _ => break,
        };
        let s = nl + 1;
        let e = match s.checked_add(len) {
            Some(e) if e < d.len() && d[e] == b'\n' => e,
            _ => break,
        };
        m.insert((uid, kind), d[s..e].to_vec());
        records += 1;
        i = e + 1;
    }
    (m, records)
}

fn record(out: &mut Vec<u8>, uid: u32, kind: u8, v: &[u8]) {
    out.extend_from_slice(format!("{} {} {}\n", uid, kind as char, v.len()).as_bytes());
    out.extend_from_slice(v);
    out.push(b'\n');
}

/// Appends new records (under the folder lock, one write). The file stays
/// proportional to the folder: when it has grown past twice what `live`
/// (this session's cache, expunged messages already dropped) holds plus
/// 64 KiB, it is rewritten from `live` (other sessions' duplicates and
/// records of expunged messages go).
pub fn append(
    dir: &Path,
    validity: u32,
    new: &[(u32, u8, Vec<u8>)],
    live: &Cache,
) -> std::io::Result<()> {
    if new.is_empty() {
        return Ok(());
    }
    let _l = lock(dir)?;
    let path = dir.join(FILE);
    let head = head(validity);
    // Only the first line says whether the file is ours.
    let mut first = vec![0u8; head.len()];
    let fresh = match std::fs::File::open(&path) {
        Ok(f) => {
            std::io::Read::read_exact(&mut &f, &mut first).is_err() || first != head.as_bytes()
        }
        Err(_) => true,
    };
    let mut out = Vec::new();
    if fresh {
        out.extend_from_slice(head.as_bytes());
    }
    for (u, k, v) in new {
        record(&mut out, *u, *k, v);
    }
    if fresh {
        return replace(&path, &out);
    }
    let mut f = std::fs::OpenOptions::new().append(true).open(&path)?;
    f.write_all(&out)?;
    let held: usize = live.values().map(|v| v.len() + 16).sum();
    if f.metadata()?.len() > 2 * held as u64 + 65536 {
        drop(f);
        write(&path, validity, live, &|_| true)?;
    }
    Ok(())
}

/// Rewrites the cache with only the records of `live` UIDs.
pub fn compact(
    dir: &Path,
    validity: u32,
    cache: &Cache,
    live: &dyn Fn(u32) -> bool,
) -> std::io::Result<()> {
    let _l = lock(dir)?;
    write(&dir.join(FILE), validity, cache, live)
}

/// Writes the records of `cache` whose UIDs are `live` as the whole file.
fn write(
    path: &Path,
    validity: u32,
    cache: &Cache,
    live: &dyn Fn(u32) -> bool,
) -> std::io::Result<()> {
    let mut out = head(validity).into_bytes();
    let mut keys: Vec<&(u32, u8)> = cache.keys().filter(|k| live(k.0)).collect();
    keys.sort();
    for k in keys {
        record(&mut out, k.0, k.1, &cache[k]);
    }
    replace(path, &out)
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn round_trip_and_damage() {
        let d = std::env::temp_dir().join(format!("pm-cache-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        let none = Cache::default();
        append(
            &d,
            7,
            &[(1, b'E', b"(a\nb)".to_vec()), (2, b'S', b"x".to_vec())],
            &none,
        )
        .unwrap();
        append(&d, 7, &[(3, b'B', b"".to_vec())], &none).unwrap();
        let (c, n) = load(&d, 7);
        assert_eq!(n, 3);
        assert_eq!(c[&(1, b'E')], b"(a\nb)");
        assert!(load(&d, 8).0.is_empty());
        let mut raw = std::fs::read(d.join(FILE)).unwrap();
        raw.truncate(raw.len() - 3);
        std::fs::write(d.join(FILE), &raw).unwrap();
        assert_eq!(load(&d, 7).1, 2);
        compact(&d, 7, &c, &|u| u != 2).unwrap();
        assert_eq!(load(&d, 7).1, 2);
        std::fs::remove_dir_all(&d).unwrap();
    }
}

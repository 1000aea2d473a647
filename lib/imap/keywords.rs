//! IMAP keywords as Maildir flag letters: `a` to `z` through the folder's
//! `dovecot-keywords` file (`N name` lines, N = 0 for `a`), as Dovecot
//! keeps them.

use crate::maildir::replace;
use std::fs;
use std::io;
use std::path::Path;

pub const KEYWORDS: &str = "dovecot-keywords";

/// The letter of keyword `name` in folder `dir` (`kw` is its cached
/// table), allocating one when `create` (caller holds the lock). None when
/// unknown or when all 26 letters are taken.
pub fn keyword_letter(
    dir: &Path,
    kw: &mut Vec<Vec<u8>>,
    name: &[u8],
    create: bool,
) -> io::Result<Option<u8>> {
    if let Some(i) = kw.iter().position(|k| k.eq_ignore_ascii_case(name)) {
        return Ok(Some(b'a' + i as u8));
    }
    if !create {
        return Ok(None);
    }
    *kw = read_keywords(dir);
    if let Some(i) = kw.iter().position(|k| k.eq_ignore_ascii_case(name)) {
        return Ok(Some(b'a' + i as u8));
    }
    let i = match kw.iter().position(|k| k.is_empty()) {
        Some(i) => i,
        None if kw.len() < 26 => {
            kw.push(Vec::new());
            kw.len() - 1
        }
        None => return Ok(None),
    };
    kw[i] = name.to_vec();
    write_keywords(dir, kw)?;
    Ok(Some(b'a' + i as u8))
}

pub fn read_keywords(dir: &Path) -> Vec<Vec<u8>> {
    let data = fs::read(dir.join(KEYWORDS)).unwrap_or_default();
    let mut v: Vec<Vec<u8>> = Vec::new();
    for l in data.split(|&c| c == b'\n') {
        let sp = match memchr::memchr(b' ', l) {
            Some(i) => i,
            None => continue,
        };
        let i = match crate::parse::number(&l[..sp]) {
            Some(i) if i < 26 => i as usize,
            _ => continue,
        };
        if v.len() <= i {
            v.resize(i + 1, Vec::new());
        }
        v[i] = l[sp + 1..].to_vec();
    }
    v
}

fn write_keywords(dir: &Path, k: &[Vec<u8>]) -> io::Result<()> {
    let mut out = Vec::new();
    for (i, n) in k.iter().enumerate() {
        if !n.is_empty() {
            out.extend_from_slice(format!("{} ", i).as_bytes());
            out.extend_from_slice(n);
            out.push(b'\n');
        }
    }
    replace(&dir.join(KEYWORDS), &out)
}

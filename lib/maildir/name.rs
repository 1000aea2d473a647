//! Maildir message names: the one unique-name generator (time, pid and
//! sequence, host: DESIGN's Maildir invariant) and what a name carries.
//!
//! `SECS.M<usec>P<pid>[V<dev>I<inode>]Q<count>.HOST[,S=<size>,W=<size
//! with CRLF>]`: usec and count are six digits or more (zero-padded, so
//! names made in one second sort in the order they were made, which imapd
//! gives UIDs in), V and I in hex when the inode is known (deliveries name
//! the file in new/ after it). In HOST `/`, `:` and `,` are written as
//! `\057`, `\072` and `\054`.

use std::sync::atomic::{AtomicU64, Ordering};

/// Names made by this process (the `Q` part).
static COUNT: AtomicU64 = AtomicU64::new(0);

/// The host name as it may appear in a unique name.
pub fn escaped_host(h: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(h.len());
    for &c in h {
        match c {
            b'/' => v.extend_from_slice(b"\\057"),
            b':' => v.extend_from_slice(b"\\072"),
            b',' => v.extend_from_slice(b"\\054"),
            _ => v.push(c),
        }
    }
    v
}

/// What makes one name unique: when (microseconds), who (pid and this
/// process's count) and where (the escaped host name).
#[derive(Clone, Debug)]
pub struct Unique {
    pub usec: u64,
    pub pid: u32,
    pub count: u64,
    pub host: Vec<u8>,
}

impl Unique {
    /// A fresh one: now, this process, its next count, this host.
    pub fn new() -> Unique {
        Unique {
            usec: crate::sys::now_us(),
            pid: std::process::id(),
            count: COUNT.fetch_add(1, Ordering::SeqCst),
            host: escaped_host(&crate::sys::hostname()),
        }
    }

    /// Takes the process's next count (after a name was found taken).
    pub fn bump(&mut self) {
        self.count = COUNT.fetch_add(1, Ordering::SeqCst);
    }

    /// The name, with the file's (device, inode) and its `(size, size as
    /// sent)` when known.
    pub fn name(&self, inode: Option<(u64, u64)>, sizes: Option<(u64, u64)>) -> Vec<u8> {
        let (s, us) = (self.usec / 1_000_000, self.usec % 1_000_000);
        let mut n = format!("{}.M{:06}P{}", s, us, self.pid);
        if let Some((dev, ino)) = inode {
            n.push_str(&format!("V{:x}I{:x}", dev, ino));
        }
        n.push_str(&format!("Q{:06}.", self.count));
        let mut n = n.into_bytes();
        n.extend_from_slice(&self.host);
        if let Some((size, sent)) = sizes {
            n.extend_from_slice(format!(",S={},W={}", size, sent).as_bytes());
        }
        n
    }
}

impl Default for Unique {
    fn default() -> Unique {
        Unique::new()
    }
}

/// `,S=n` (`key` b'S', the size stored) or `,W=n` (b'W', the size sent)
/// from a name.
pub fn size_in(name: &[u8], key: u8) -> Option<u64> {
    let base = super::flags::base_of(name);
    let pat = [b',', key, b'='];
    let i = memchr::memmem::rfind(base, &pat)? + 3;
    let end = base[i..]
        .iter()
        .position(|c| !c.is_ascii_digit())
        .map(|e| i + e)
        .unwrap_or(base.len());
    crate::parse::number(&base[i..end])
}

/// The leading seconds of a name, for delivery order (names that do not
/// start with digits last).
pub fn seconds(name: &[u8]) -> u64 {
    let end = name
        .iter()
        .position(|c| !c.is_ascii_digit())
        .unwrap_or(name.len());
    crate::parse::number(&name[..end]).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn names() {
        let u = Unique {
            usec: 1_700_000_000_000_042,
            pid: 7,
            count: 3,
            host: escaped_host(b"h/o:s,t"),
        };
        assert_eq!(
            u.name(Some((0x801, 0xabc)), Some((5, 7))),
            b"1700000000.M000042P7V801IabcQ000003.h\\057o\\072s\\054t,S=5,W=7".to_vec()
        );
        assert_eq!(
            u.name(None, None),
            b"1700000000.M000042P7Q000003.h\\057o\\072s\\054t".to_vec()
        );
        assert_eq!(size_in(b"1.2.h,S=10,W=12:2,S", b'W'), Some(12));
        assert_eq!(size_in(b"1.2.h,S=10,W=12", b'S'), Some(10));
        assert_eq!(size_in(b"1.2.h", b'S'), None);
        assert_eq!(seconds(b"1700000000.M1P2.h"), 1700000000);
        assert_eq!(seconds(b"x"), u64::MAX);
    }
    #[test]
    fn one_process_never_repeats_a_name() {
        let a = Unique::new().name(None, None);
        let b = Unique::new().name(None, None);
        assert_ne!(a, b);
    }
}

//! The info part of a Maildir file name, `base:2,LETTERS`: the flag
//! letters (S R F T D, and a-z for imapd's keywords) as a bit set, read
//! and written here only.

/// The system flags (IMAP names) with their Maildir letters.
pub const SYSFLAGS: [(&[u8], u8); 5] = [
    (b"\\Answered", b'R'),
    (b"\\Flagged", b'F'),
    (b"\\Deleted", b'T'),
    (b"\\Seen", b'S'),
    (b"\\Draft", b'D'),
];

/// The bit of a letter (A-Z, a-z; 0 for anything else).
pub fn bit(letter: u8) -> u64 {
    match letter {
        b'A'..=b'Z' => 1 << (letter - b'A'),
        b'a'..=b'z' => 1 << (26 + letter - b'a'),
        _ => 0,
    }
}

pub const SEEN: u64 = 1 << (b'S' - b'A');
pub const ANSWERED: u64 = 1 << (b'R' - b'A');
pub const FLAGGED: u64 = 1 << (b'F' - b'A');
pub const DELETED: u64 = 1 << (b'T' - b'A');
pub const DRAFT: u64 = 1 << (b'D' - b'A');
/// The letters imapd manages (system flags and keywords); others are kept.
pub const MANAGED: u64 = SEEN | ANSWERED | FLAGGED | DELETED | DRAFT | (((1u64 << 26) - 1) << 26);

/// The file name without its info (the unique name).
pub fn base_of(name: &[u8]) -> &[u8] {
    match memchr::memchr(b':', name) {
        Some(i) => &name[..i],
        None => name,
    }
}

/// The letters after `:2,` as a bit set.
pub fn flags_of(name: &[u8]) -> u64 {
    match memchr::memchr(b':', name) {
        Some(i) if name[i + 1..].starts_with(b"2,") => {
            name[i + 3..].iter().fold(0, |a, &c| a | bit(c))
        }
        _ => 0,
    }
}

/// `base:2,LETTERS` with the letters in ASCII order.
pub fn name_with(base: &[u8], flags: u64) -> Vec<u8> {
    let mut v = base.to_vec();
    v.extend_from_slice(b":2,");
    for c in (b'A'..=b'Z').chain(b'a'..=b'z') {
        if flags & bit(c) != 0 {
            v.push(c);
        }
    }
    v
}

/// The name in cur/ of a message in `name` once the `add` flags are set:
/// its other letters kept, `:2,` when it had no info; an info that is not
/// `2,` (experimental semantics, maildir(5)) is left as it is.
pub fn name_adding(name: &[u8], add: u64) -> Vec<u8> {
    match memchr::memchr(b':', name) {
        Some(i) if !name[i + 1..].starts_with(b"2,") => name.to_vec(),
        _ => name_with(base_of(name), flags_of(name) | add),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn names_and_flags() {
        assert_eq!(base_of(b"123.M1P2.h,S=10:2,FS"), b"123.M1P2.h,S=10");
        assert_eq!(flags_of(b"x:2,FSa"), FLAGGED | SEEN | bit(b'a'));
        assert_eq!(
            name_with(b"x", SEEN | FLAGGED | bit(b'b') | bit(b'P')),
            b"x:2,FPSb"
        );
        assert_eq!(name_adding(b"x", SEEN), b"x:2,S");
        assert_eq!(name_adding(b"x:2,FT", SEEN), b"x:2,FST");
        assert_eq!(name_adding(b"x:2,S", SEEN), b"x:2,S");
        assert_eq!(name_adding(b"x:1,abc", SEEN), b"x:1,abc");
        assert_eq!(name_adding(b"x", 0), b"x:2,");
    }
}

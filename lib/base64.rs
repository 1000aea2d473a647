//! Base64 (RFC 4648) for SASL (AUTH in SMTP, POP3, IMAP) and MIME.

const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn value(c: u8) -> Option<u8> {
    match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    }
}

/// Encodes with padding.
pub fn encode(b: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(b.len().div_ceil(3) * 4);
    for ch in b.chunks(3) {
        let n = (ch[0] as u32) << 16
            | (*ch.get(1).unwrap_or(&0) as u32) << 8
            | *ch.get(2).unwrap_or(&0) as u32;
        for k in 0..4 {
            out.push(if k <= ch.len() {
                A[((n >> (18 - 6 * k)) & 63) as usize]
            } else {
                b'='
            });
        }
    }
    out
}

/// Strict decoding (padding optional but well placed, no line breaks):
/// None on any byte outside the alphabet.
pub fn decode(s: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() / 4 * 3 + 3);
    let (mut acc, mut bits, mut pad) = (0u32, 0u32, 0usize);
    for &c in s {
        if c == b'=' {
            pad += 1;
            continue;
        }
        let v = value(c)?;
        if pad > 0 {
            return None;
        }
        acc = (acc << 6) | v as u32;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    if pad > 2 || (!s.len().is_multiple_of(4) && pad > 0) {
        return None;
    }
    Some(out)
}

/// Lenient decoding for message bodies and encoded words: bytes outside
/// the alphabet (line breaks, junk) are skipped, `=` ends the data.
pub fn decode_lenient(t: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(t.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for &c in t {
        if c == b'=' {
            break;
        }
        let Some(v) = value(c) else { continue };
        acc = (acc << 6) | v as u32;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn round_trips_and_strictness() {
        for s in [&b""[..], b"a", b"ab", b"abc", b"abcd", b"\0\xff\x10"] {
            assert_eq!(decode(&encode(s)).unwrap(), s);
            assert_eq!(decode_lenient(&encode(s)), s);
        }
        assert_eq!(encode(b"\0user\0pass"), b"AHVzZXIAcGFzcw==");
        assert_eq!(decode(b"AHVzZXIAcGFzcw"), Some(b"\0user\0pass".to_vec()));
        assert_eq!(decode(b"AH*z"), None);
        assert_eq!(decode(b"A=B="), None);
        assert_eq!(
            decode_lenient(b"AHVz\r\nZXIA cGFzcw==junk"),
            b"\0user\0pass"
        );
    }
}

//! Modified UTF-7 mailbox names (RFC 3501 §5.1.3). Names are kept in
//! this form on the wire and on disk (as Courier and Dovecot do); these
//! functions check names and convert for people (UTF-8).

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";

fn val(c: u8) -> Option<u32> {
    B64.iter().position(|&x| x == c).map(|i| i as u32)
}

/// Decodes a modified UTF-7 name to UTF-8; None when it is not valid
/// (bad base64, unpadded bits, printable ASCII encoded, an unclosed `&`).
pub fn decode(s: &[u8]) -> Option<String> {
    let mut out = String::new();
    let mut i = 0;
    while i < s.len() {
        let c = s[i];
        if !(0x20..0x7f).contains(&c) {
            return None;
        }
        if c != b'&' {
            out.push(c as char);
            i += 1;
            continue;
        }
        let end = i + 1 + s[i + 1..].iter().position(|&x| x == b'-')?;
        if end == i + 1 {
            out.push('&');
            i = end + 1;
            continue;
        }
        let mut bits: u32 = 0;
        let mut n = 0;
        let mut units: Vec<u16> = Vec::new();
        for &b in &s[i + 1..end] {
            bits = (bits << 6) | val(b)?;
            n += 6;
            if n >= 16 {
                n -= 16;
                units.push((bits >> n) as u16);
                bits &= (1 << n) - 1;
            }
        }
        if bits != 0 || n >= 6 || units.is_empty() {
            return None;
        }
        let d = String::from_utf16(&units).ok()?;
        if d.chars().any(|ch| (' '..='~').contains(&ch)) {
            return None;
        }
        out.push_str(&d);
        i = end + 1;
    }
    Some(out)
}

/// Encodes UTF-8 text as modified UTF-7.
pub fn encode(s: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let mut pending: Vec<u16> = Vec::new();
    let flush = |pending: &mut Vec<u16>, out: &mut Vec<u8>| {
        if pending.is_empty() {
            return;
        }
        out.push(b'&');
        let mut bits: u32 = 0;
        let mut n = 0;
        for &u in pending.iter() {
            bits = (bits << 16) | u as u32;
            n += 16;
            while n >= 6 {
                n -= 6;
                out.push(B64[((bits >> n) & 63) as usize]);
            }
        }
        if n > 0 {
            out.push(B64[((bits << (6 - n)) & 63) as usize]);
        }
        out.push(b'-');
        pending.clear();
    };
    for ch in s.chars() {
        if (' '..='~').contains(&ch) {
            flush(&mut pending, &mut out);
            out.push(ch as u8);
            if ch == '&' {
                out.push(b'-');
            }
        } else {
            let mut buf = [0u16; 2];
            pending.extend_from_slice(ch.encode_utf16(&mut buf));
        }
    }
    flush(&mut pending, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn round_trip() {
        assert_eq!(encode("Entwürfe"), b"Entw&APw-rfe");
        assert_eq!(decode(b"Entw&APw-rfe").unwrap(), "Entwürfe");
        assert_eq!(encode("A&B"), b"A&-B");
        assert_eq!(decode(b"A&-B").unwrap(), "A&B");
        assert_eq!(
            decode(b"~peter/mail/&U,BTFw-/&ZeVnLIqe-").unwrap(),
            "~peter/mail/台北/日本語"
        );
        assert!(decode(b"&AGE-").is_none());
        assert!(decode(b"&Jjo").is_none());
        assert!(decode(b"\xc3\xbc").is_none());
    }
}

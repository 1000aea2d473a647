//! Escaping untrusted bytes for log lines: printable ASCII passes, the rest
//! becomes `\xNN`; values are cut at [`MAX_FIELD`] bytes.

pub const MAX_FIELD: usize = 200;

pub fn escape_into(out: &mut Vec<u8>, b: &[u8]) {
    for &c in b {
        if (0x20..0x7f).contains(&c) && c != b'\\' {
            out.push(c);
        } else {
            out.extend_from_slice(format!("\\x{:02x}", c).as_bytes());
        }
    }
}

/// A value from a peer, escaped and cut for a `key=value` field.
pub fn field(b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    escape_into(&mut out, &b[..b.len().min(MAX_FIELD)]);
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn escapes_control_bytes() {
        assert_eq!(
            super::field(b"a\r\n\x00\xff\\"),
            b"a\\x0d\\x0a\\x00\\xff\\x5c".to_vec()
        );
    }
}

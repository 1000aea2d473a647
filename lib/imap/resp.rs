//! Writing responses: a buffer flushed before every read, and the IMAP
//! string forms (atom, quoted, literal, NIL).

use crate::sys;

/// Output buffer for descriptor `fd`.
pub struct Out {
    pub fd: i32,
    pub buf: Vec<u8>,
    pub timeout: u64,
    pub failed: bool,
}

impl Out {
    pub fn new(fd: i32, timeout: u64) -> Out {
        Out {
            fd,
            buf: Vec::with_capacity(65536),
            timeout,
            failed: false,
        }
    }

    pub fn put(&mut self, b: &[u8]) {
        self.buf.extend_from_slice(b);
        if self.buf.len() >= 1 << 18 {
            let _ = self.flush();
        }
    }

    /// A whole line: parts then CRLF.
    pub fn line(&mut self, parts: &[&[u8]]) {
        for p in parts {
            self.buf.extend_from_slice(p);
        }
        self.put(b"\r\n");
    }

    pub fn flush(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() || self.failed {
            self.buf.clear();
            return Ok(());
        }
        let r = sys::write_timeout(self.fd, &self.buf, self.timeout);
        self.buf.clear();
        // a large answer's buffer is not kept for the rest of the session
        self.buf.shrink_to(65536);
        if r.is_err() {
            self.failed = true;
        }
        r
    }
}

/// Appends `s` as a quoted string, or as a literal when it holds CR, LF,
/// NUL or 8-bit bytes or is long.
pub fn string(out: &mut Vec<u8>, s: &[u8]) {
    if s.len() > 1024
        || s.iter()
            .any(|&c| c == b'\r' || c == b'\n' || c == 0 || c >= 0x80)
    {
        literal(out, s);
        return;
    }
    crate::parse::push_quoted(out, s);
}

pub fn literal(out: &mut Vec<u8>, s: &[u8]) {
    out.push(b'{');
    out.extend_from_slice(s.len().to_string().as_bytes());
    out.extend_from_slice(b"}\r\n");
    out.extend_from_slice(s);
}

/// A literal, or a literal8 (`~{N}`, RFC 3516) when `s` holds a NUL: the
/// only form that may carry one.
pub fn literal8(out: &mut Vec<u8>, s: &[u8]) {
    if memchr::memchr(0, s).is_some() {
        out.push(b'~');
    }
    literal(out, s);
}

/// NIL or a string.
pub fn nstring(out: &mut Vec<u8>, s: Option<&[u8]>) {
    match s {
        Some(s) => string(out, s),
        None => out.extend_from_slice(b"NIL"),
    }
}

/// A mailbox name: an atom when it can be, else quoted/literal.
pub fn astring(out: &mut Vec<u8>, s: &[u8]) {
    let atom = !s.is_empty()
        && s.iter().all(|&c| {
            c > 0x20 && c < 0x7f && !matches!(c, b'(' | b')' | b'{' | b'%' | b'*' | b'"' | b'\\')
        });
    if atom {
        out.extend_from_slice(s);
    } else {
        string(out, s);
    }
}

/// INTERNALDATE form: `"17-Jul-1996 02:44:25 -0700"` in the local zone.
pub fn internal_date(t: i64) -> Vec<u8> {
    const M: [&str; 12] = crate::date::MONTHS;
    let (tm, sign, off) = crate::date::local(t);
    format!(
        "\"{:02}-{}-{} {:02}:{:02}:{:02} {}{:02}{:02}\"",
        tm.tm_mday,
        M[(tm.tm_mon as usize) % 12],
        tm.tm_year + 1900,
        tm.tm_hour,
        tm.tm_min,
        tm.tm_sec,
        sign,
        off / 60,
        off % 60
    )
    .into_bytes()
}

/// The local civil date (y, m, d) of Unix time `t`.
pub fn local_date(t: i64) -> (i32, u32, u32) {
    let tm = crate::sys::time::localtime(t);
    (tm.tm_year + 1900, tm.tm_mon as u32 + 1, tm.tm_mday as u32)
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn string_forms() {
        let mut v = Vec::new();
        string(&mut v, b"a\"b");
        v.push(b' ');
        string(&mut v, b"x\r\ny");
        v.push(b' ');
        astring(&mut v, b"INBOX");
        v.push(b' ');
        astring(&mut v, b"a b");
        assert_eq!(v, b"\"a\\\"b\" {4}\r\nx\r\ny INBOX \"a b\"");
    }
}

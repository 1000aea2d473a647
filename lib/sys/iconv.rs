//! Charsets to UTF-8 through the C library's iconv(3) (glibc's gconv
//! modules): the one FFI module for charset conversion, so every charset
//! glibc knows (ISO-8859-2, KOI8-R, Shift_JIS, GB2312, ISO-2022-JP ...)
//! works without tables of our own.

use std::ffi::CString;

/// The longest charset name passed to iconv_open.
const MAX_NAME: usize = 40;

/// `b` in `charset` as UTF-8; None when the C library does not know the
/// charset (or the name is not a plain charset name). A byte sequence
/// that is not valid in the charset becomes U+FFFD and the rest goes on.
pub fn to_utf8(b: &[u8], charset: &[u8]) -> Option<Vec<u8>> {
    // Only plain names: no `//TRANSLIT` or other iconv suffixes.
    if charset.is_empty()
        || charset.len() > MAX_NAME
        || !charset
            .iter()
            .all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.' | b':'))
    {
        return None;
    }
    let from = CString::new(charset).ok()?;
    // SAFETY: both names are NUL-terminated.
    let cd = unsafe { libc::iconv_open(c"UTF-8".as_ptr(), from.as_ptr()) };
    if cd as isize == -1 {
        return None;
    }
    let mut out: Vec<u8> = Vec::with_capacity(b.len() + b.len() / 2 + 16);
    let mut inp = b.as_ptr() as *mut libc::c_char;
    let mut inleft = b.len();
    let mut flushed = false;
    loop {
        if out.capacity() - out.len() < 16 {
            out.reserve(out.capacity().max(64));
        }
        let room = out.capacity() - out.len();
        // SAFETY: out.len() <= capacity: the pointer stays inside the allocation.
        let mut outp = unsafe { out.as_mut_ptr().add(out.len()) } as *mut libc::c_char;
        let mut outleft = room;
        // With a null input pointer iconv writes what a stateful charset
        // (ISO-2022-JP) still owes.
        // SAFETY: cd is open; inp/inleft span the unread rest of b and
        // outp/outleft the spare capacity of out, which iconv advances
        // together.
        let r = unsafe {
            if inleft == 0 {
                libc::iconv(
                    cd,
                    std::ptr::null_mut(),
                    std::ptr::null_mut(),
                    &mut outp,
                    &mut outleft,
                )
            } else {
                libc::iconv(cd, &mut inp, &mut inleft, &mut outp, &mut outleft)
            }
        };
        let err = std::io::Error::last_os_error().raw_os_error();
        // SAFETY: iconv initialised the room - outleft bytes it wrote.
        unsafe { out.set_len(out.len() + room - outleft) };
        if r != usize::MAX {
            if inleft == 0 {
                if flushed {
                    break;
                }
                flushed = true;
            }
            continue;
        }
        match err {
            Some(libc::E2BIG) => {}
            // Invalid or cut-off input: a replacement character, skip a byte.
            _ if inleft > 0 => {
                out.extend_from_slice("\u{fffd}".as_bytes());
                // SAFETY: inleft > 0: the next byte is inside b.
                inp = unsafe { inp.add(1) };
                inleft -= 1;
            }
            _ => break,
        }
    }
    // SAFETY: cd is open and not used after this.
    unsafe { libc::iconv_close(cd) };
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charsets() {
        let t = |b: &[u8], cs: &[u8]| to_utf8(b, cs).map(|v| String::from_utf8(v).unwrap());
        assert_eq!(t(b"K\xf6ln", b"ISO-8859-1").as_deref(), Some("Köln"));
        assert_eq!(t(b"\xa4", b"iso-8859-15").as_deref(), Some("€"));
        assert_eq!(t(b"\x80", b"windows-1252").as_deref(), Some("€"));
        assert_eq!(t(b"\xb1\xb6", b"iso-8859-2").as_deref(), Some("ąś"));
        assert_eq!(
            t(b"\xf0\xd2\xc9\xd7\xc5\xd4", b"koi8-r").as_deref(),
            Some("Привет")
        );
        assert_eq!(
            t(b"\x93\xfa\x96\x7b", b"Shift_JIS").as_deref(),
            Some("日本")
        );
        assert_eq!(t(b"\xc4\xe3\xba\xc3", b"GB2312").as_deref(), Some("你好"));
        assert_eq!(
            t(b"\x1b$BF|K\\\x1b(B", b"ISO-2022-JP").as_deref(),
            Some("日本")
        );
        // Invalid bytes are replaced, the rest kept.
        assert_eq!(t(b"a\xffb", b"UTF-8").as_deref(), Some("a\u{fffd}b"));
        assert_eq!(t(b"a\x81", b"Shift_JIS").as_deref(), Some("a\u{fffd}"));
        assert_eq!(t(b"", b"koi8-r").as_deref(), Some(""));
        for bad in [&b"x-no-such-charset"[..], b"UTF-8//TRANSLIT", b"", b"utf 8"] {
            assert_eq!(to_utf8(b"x", bad), None);
        }
        // Big input grows the output.
        let big = vec![0xe9u8; 100_000];
        assert_eq!(to_utf8(&big, b"latin1").unwrap().len(), 200_000);
    }
}

//! Dates: RFC 5322 dates (`Sun, 29 Nov 2026 07:09:07 +0000`) written in
//! local time and read back to a calendar day, month names both ways, the
//! mbox `From ` line's date.

const DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
pub const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// The number (1-12) of a month's English three-letter name, any case.
pub fn month(m: &[u8]) -> Option<u32> {
    MONTHS
        .iter()
        .position(|x| x.as_bytes().eq_ignore_ascii_case(m))
        .map(|i| i as u32 + 1)
}

/// The date of an RFC 5322 `Date:` value: (year, month, day), ignoring
/// the time and zone. None when it cannot be read.
pub fn date_ymd(v: &[u8]) -> Option<(i32, u32, u32)> {
    let words: Vec<&[u8]> = v
        .split(|&c| c == b' ' || c == b',' || c == b'\t')
        .filter(|w| !w.is_empty())
        .collect();
    let mut i = 0;
    if words
        .first()
        .map(|w| w[0].is_ascii_alphabetic())
        .unwrap_or(false)
    {
        i = 1;
    }
    let day = crate::parse::number(words.get(i)?)? as u32;
    let mon = month(words.get(i + 1)?)?;
    let mut y = crate::parse::number(words.get(i + 2)?)? as i32;
    if y < 50 {
        y += 2000;
    } else if y < 1000 {
        y += 1900;
    }
    if !(1..=31).contains(&day) {
        return None;
    }
    Some((y, mon, day))
}

/// The local broken-down time of `t`, with the zone's offset as a sign
/// and minutes east of UTC.
pub fn local(t: i64) -> (libc::tm, char, i64) {
    let tm = crate::sys::time::localtime(t);
    let off = tm.tm_gmtoff / 60;
    let (sign, off) = if off < 0 { ('-', -off) } else { ('+', off) };
    (tm, sign, off)
}

/// The date for Unix time `t` in the local zone.
pub fn rfc5322(t: u64) -> String {
    let (tm, sign, off) = local(t as i64);
    format!(
        "{}, {} {} {} {:02}:{:02}:{:02} {}{:02}{:02}",
        DAYS[(tm.tm_wday as usize) % 7],
        tm.tm_mday,
        MONTHS[(tm.tm_mon as usize) % 12],
        tm.tm_year + 1900,
        tm.tm_hour,
        tm.tm_min,
        tm.tm_sec,
        sign,
        off / 60,
        off % 60
    )
}

/// The date now.
pub fn now() -> String {
    rfc5322(crate::sys::now())
}

/// asctime-style date for mbox `From ` lines: `Sun Nov 29 07:09:07 2026`.
pub fn ctime(t: u64) -> String {
    let tm = crate::sys::time::gmtime(t as i64);
    format!(
        "{} {} {:2} {:02}:{:02}:{:02} {}",
        DAYS[(tm.tm_wday as usize) % 7],
        MONTHS[(tm.tm_mon as usize) % 12],
        tm.tm_mday,
        tm.tm_hour,
        tm.tm_min,
        tm.tm_sec,
        tm.tm_year + 1900
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn months_and_days() {
        assert_eq!(super::month(b"JUL"), Some(7));
        assert_eq!(super::month(b"July"), None);
        assert_eq!(
            super::date_ymd(b"Tue, 1 Jul 2003 10:52:37 +0200"),
            Some((2003, 7, 1))
        );
        assert_eq!(super::date_ymd(b"1 Jul 03 10:52 GMT"), Some((2003, 7, 1)));
    }
    #[test]
    fn ctime_of_epoch() {
        assert_eq!(super::ctime(0), "Thu Jan  1 00:00:00 1970");
    }
}

//! RFC 5322 dates (`Sun, 29 Nov 2026 07:09:07 +0000`) in local time.

const DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
pub const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

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
    fn ctime_of_epoch() {
        assert_eq!(super::ctime(0), "Thu Jan  1 00:00:00 1970");
    }
}

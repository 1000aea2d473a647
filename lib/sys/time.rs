//! The clock and broken-down time (localtime_r, gmtime_r).

pub fn now() -> u64 {
    now_us() / 1_000_000
}

pub fn now_ms() -> u64 {
    now_us() / 1000
}

pub fn now_us() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime fills the timespec it is given.
    unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut ts) };
    ts.tv_sec as u64 * 1_000_000 + ts.tv_nsec as u64 / 1000
}

/// Unix time `t` in the local zone (tm_gmtoff holds the offset).
pub fn localtime(t: i64) -> libc::tm {
    let tt = t as libc::time_t;
    // SAFETY: tm is plain data; all zeroes is a valid value.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: localtime_r reads tt and fills tm.
    unsafe { libc::localtime_r(&tt, &mut tm) };
    tm
}

/// Unix time `t` in UTC.
pub fn gmtime(t: i64) -> libc::tm {
    let tt = t as libc::time_t;
    // SAFETY: tm is plain data; all zeroes is a valid value.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: gmtime_r reads tt and fills tm.
    unsafe { libc::gmtime_r(&tt, &mut tm) };
    tm
}

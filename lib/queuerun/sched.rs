//! qmail's retry schedule (qmail-send.c): after an attempt at `now`, the
//! next one is at `birth + (floor(sqrt(now - birth)) + c)^2`, with c = 10
//! for the local channel and 20 for the remote one.

pub const LOCAL: u64 = 10;
pub const REMOTE: u64 = 20;

/// Integer square root (floor).
pub fn isqrt(n: u64) -> u64 {
    if n < 2 {
        return n;
    }
    let mut x = (n as f64).sqrt() as u64;
    while x.checked_mul(x).map_or(true, |y| y > n) {
        x -= 1;
    }
    while (x + 1).checked_mul(x + 1).is_some_and(|y| y <= n) {
        x += 1;
    }
    x
}

/// When to try again after an attempt at `now`.
pub fn next_retry(birth: u64, now: u64, c: u64) -> u64 {
    let s = isqrt(now.saturating_sub(birth)) + c;
    birth.saturating_add(s.saturating_mul(s))
}

/// Whether a message born at `birth` has outlived the queue lifetime.
pub fn expired(birth: u64, now: u64, lifetime: u64) -> bool {
    now.saturating_sub(birth) >= lifetime
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn schedule_matches_qmail() {
        assert_eq!(next_retry(1000, 1000, LOCAL), 1100);
        assert_eq!(next_retry(1000, 1100, LOCAL), 1400);
        assert_eq!(next_retry(1000, 1400, LOCAL), 1900);
        assert_eq!(next_retry(0, 0, REMOTE), 400);
        assert_eq!(next_retry(0, 400, REMOTE), 1600);
        assert_eq!(next_retry(5000, 10, LOCAL), 5100);
        assert_eq!(isqrt(99), 9);
        assert_eq!(isqrt(100), 10);
        assert_eq!(isqrt(u64::MAX), 4294967295);
        assert!(expired(0, 604800, 604800));
        assert!(!expired(0, 604799, 604800));
    }
}

//! The queue manager (queue-run(8)) and its helpers: the on-disk queue
//! ([`store`], layout in pipemail-queue(5)), the retry schedule
//! ([`sched`]), delivery status notifications ([`bounce`]), local-spawn's
//! protocol and child handling ([`spawn`]), the manager loop ([`run`]) and
//! the administrator's side ([`ctl`]: queue-list, queue-ctl, ETRN).

pub mod bounce;
pub mod ctl;
pub mod mailq;
pub mod run;
pub mod sched;
pub mod spawn;
pub mod stats;
pub mod store;

use crate::control::{self, ControlError};

/// Settings read from control/ at start and on SIGHUP.
#[derive(Debug, Clone)]
pub struct Config {
    pub concurrency_local: usize,
    pub concurrency_remote: usize,
    pub lifetime: u64,
    /// Seconds after arrival before a delay notice (0: none).
    pub bouncedelay: u64,
    pub me: Vec<u8>,
    pub bouncefrom: Vec<u8>,
    pub bouncehost: Vec<u8>,
    pub doublebounceto: Vec<u8>,
    pub doublebouncehost: Vec<u8>,
    pub limits: store::Limits,
}

/// The largest concurrency accepted (qmail's conf-spawn).
pub const MAX_CONCURRENCY: u64 = 120;

impl Config {
    pub fn load() -> Result<Config, ControlError> {
        let me = control::me()?;
        let bouncehost = control::line("bouncehost", &me)?;
        let doublebouncehost = control::line("doublebouncehost", &me)?;
        Ok(Config {
            concurrency_local: control::number("concurrencylocal", 10)?.min(MAX_CONCURRENCY)
                as usize,
            concurrency_remote: control::number("concurrencyremote", 20)?.min(MAX_CONCURRENCY)
                as usize,
            lifetime: control::number("queuelifetime", 604800)?,
            bouncedelay: control::number("bouncedelay", 14400)?,
            bouncefrom: control::line("bouncefrom", b"MAILER-DAEMON")?,
            bouncehost,
            doublebounceto: control::line("doublebounceto", b"postmaster")?,
            doublebouncehost,
            me,
            limits: store::Limits {
                bytes: control::number(
                    "submitbytes",
                    control::number("databytes", crate::smtp::DEFAULT_DATABYTES)?,
                )?,
            },
        })
    }
}

/// The queue's clock: the system clock plus `$PIPEMAIL_NOW_OFFSET` seconds
/// (a test aid: it makes retries and the queue lifetime come due at once).
pub fn now() -> u64 {
    static OFF: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    let off = *OFF.get_or_init(|| {
        std::env::var_os("PIPEMAIL_NOW_OFFSET")
            .and_then(|v| {
                crate::parse::number(std::os::unix::ffi::OsStrExt::as_bytes(v.as_os_str()))
            })
            .unwrap_or(0)
    });
    crate::sys::now() + off
}

/// A queue id as queue-inject makes them: `[A-Za-z0-9._-]`, at most 100
/// bytes, not starting with a dot. Anything else never becomes a path.
pub fn valid_id(id: &[u8]) -> bool {
    !id.is_empty()
        && id.len() <= 100
        && id[0] != b'.'
        && id
            .iter()
            .all(|&c| c.is_ascii_alphanumeric() || c == b'.' || c == b'_' || c == b'-')
}

#[cfg(test)]
mod tests {
    #[test]
    fn ids() {
        assert!(super::valid_id(b"1700000000.123.0123456789abcdef"));
        assert!(!super::valid_id(b".."));
        assert!(!super::valid_id(b"a/b"));
        assert!(!super::valid_id(b""));
        assert!(!super::valid_id(b"a b"));
    }
}

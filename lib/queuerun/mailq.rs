//! queue/mailq: the queue listing (queue-list's long format) that
//! queue-run rewrites for users who may not read the queue itself, so
//! `mailq` works for everyone while queue/'s directories stay private.
//! Ages are as of the rewrite. Mode 0644, replaced atomically, at most every [`PERIOD`] seconds and only
//! when its text changed. Like Postfix's default mailq, every local user
//! sees every queued message's envelope (not its content).

use super::store::Dirs;
use std::sync::Mutex;

/// Seconds between two rewrites at most.
pub const PERIOD: u64 = 5;

static LAST: Mutex<Option<(u64, Vec<u8>)>> = Mutex::new(None);

pub fn path(d: &Dirs) -> std::path::PathBuf {
    d.sub("mailq")
}

/// Rewrites queue/mailq when PERIOD has passed and the listing changed.
/// Returns true when it skipped a check because PERIOD has not passed:
/// the caller then wakes within PERIOD to check again.
pub fn refresh(d: &Dirs, now: u64) -> bool {
    let Ok(mut last) = LAST.lock() else {
        return false;
    };
    if matches!(&*last, Some((t, _)) if now < t + PERIOD) {
        return true;
    }
    let Ok(jobs) = super::ctl::list(d) else {
        return false;
    };
    // Ages change every second: compare the listing without them.
    let text = super::ctl::format_long(&jobs, 0);
    if matches!(&*last, Some((_, old)) if *old == text) {
        *last = Some((now, text));
        return false;
    }
    if let Err(e) = write(d, &super::ctl::format_long(&jobs, now)) {
        crate::exit::warn(&[
            b"unable to write queue/mailq: ",
            crate::exit::errtext(&e).as_bytes(),
        ]);
    }
    *last = Some((now, text));
    false
}

fn write(d: &Dirs, text: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = d.sub("mailq.tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .open(&tmp)?;
    f.write_all(text)?;
    std::fs::rename(&tmp, path(d))
}

/// queue/mailq's text and its age in seconds, for a user who may not read
/// the queue.
pub fn read(d: &Dirs, now: u64) -> std::io::Result<(Vec<u8>, u64)> {
    use std::os::unix::fs::MetadataExt;
    let f = std::fs::File::open(path(d))?;
    let age = now.saturating_sub(f.metadata()?.mtime().max(0) as u64);
    let mut text = Vec::new();
    std::io::Read::read_to_end(&mut &f, &mut text)?;
    Ok((text, age))
}

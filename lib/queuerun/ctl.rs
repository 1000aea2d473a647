//! The administrator's side: queue-list(1) reads the queue's files (never
//! writing them), queue-ctl(8) sends commands through the `queue/ctl` fifo,
//! and [`etrn`] asks queue-run through `queue/trigger` to retry a domain.

use super::store::{self, Dirs, Rec};
use std::io;

/// One recipient's state as queue-list shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RState {
    Pending { last: Option<(u64, Vec<u8>)> },
    Delivered,
    Failed(Vec<u8>),
    Removed,
}

/// A queued message as read from the journal (or info/) and state/.
pub struct Listed {
    pub id: String,
    pub info: store::Info,
    pub held: bool,
    pub states: Vec<RState>,
}

/// Reads every job; files that vanish meanwhile (finished) are skipped.
pub fn list(d: &Dirs) -> io::Result<Vec<Listed>> {
    let mut out = Vec::new();
    for (id, info) in store::read_jobs(d)? {
        let recs = store::load_state(&d.state(&id), false).unwrap_or_default();
        let n = info.rcpts.len();
        let mut states = vec![RState::Pending { last: None }; n];
        let mut held = false;
        for r in recs {
            match r {
                Rec::Done(i) if i < n => states[i] = RState::Delivered,
                Rec::Failed(i, t) if i < n => states[i] = RState::Failed(t),
                Rec::Removed(i) if i < n => states[i] = RState::Removed,
                Rec::Deferred(i, at, t) if i < n => {
                    if let RState::Pending { .. } = states[i] {
                        states[i] = RState::Pending {
                            last: Some((at, t)),
                        };
                    }
                }
                Rec::Hold => held = true,
                Rec::Release => held = false,
                _ => {}
            }
        }
        out.push(Listed {
            id,
            info,
            held,
            states,
        });
    }
    Ok(out)
}

/// Submissions in drop/ not yet taken over (None when drop/ is unreadable).
pub fn unprocessed(d: &Dirs) -> Option<usize> {
    let r = std::fs::read_dir(d.drop_dir()).ok()?;
    Some(
        r.filter_map(|e| e.ok())
            .filter(|e| {
                let n = e.file_name();
                let b = std::os::unix::ffi::OsStrExt::as_bytes(n.as_os_str());
                super::valid_id(b) && !b.ends_with(b".tmp") && !b.ends_with(b".env")
            })
            .count(),
    )
}

/// `1d02h03m04s` style.
pub fn age(secs: u64) -> String {
    let (d, h, m, s) = (secs / 86400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    if d > 0 {
        format!("{}d{:02}h{:02}m{:02}s", d, h, m, s)
    } else if h > 0 {
        format!("{}h{:02}m{:02}s", h, m, s)
    } else if m > 0 {
        format!("{}m{:02}s", m, s)
    } else {
        format!("{}s", s)
    }
}

fn oneline(t: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    for &c in crate::parse::trim(t) {
        match c {
            b'\n' => v.push(b'/'),
            0x20..=0x7e => v.push(c),
            _ => v.extend_from_slice(format!("\\x{:02x}", c).as_bytes()),
        }
    }
    v
}

/// queue-list's long format (queue-list(1)).
pub fn format_long(jobs: &[Listed], now: u64) -> Vec<u8> {
    let mut o = Vec::new();
    for j in jobs {
        o.extend_from_slice(
            format!(
                "{}  age {}  bytes {}  uid {}  from <",
                j.id,
                age(now.saturating_sub(j.info.birth)),
                j.info.size,
                j.info.uid
            )
            .as_bytes(),
        );
        o.extend_from_slice(&oneline(&j.info.sender));
        o.extend_from_slice(if j.held { b">  held\n" } else { b">\n" });
        for (r, s) in j.info.rcpts.iter().zip(&j.states) {
            o.extend_from_slice(if r.local.is_some() {
                b"  local  "
            } else {
                b"  remote "
            });
            o.extend_from_slice(&oneline(&r.addr));
            match s {
                RState::Pending { last: None } => o.extend_from_slice(b"  pending"),
                RState::Pending {
                    last: Some((at, t)),
                } => {
                    let c = if r.local.is_some() {
                        super::sched::LOCAL
                    } else {
                        super::sched::REMOTE
                    };
                    let next = super::sched::next_retry(j.info.birth, *at, c);
                    o.extend_from_slice(
                        format!(
                            "  deferred, next try in {}: ",
                            age(next.saturating_sub(now))
                        )
                        .as_bytes(),
                    );
                    o.extend_from_slice(&oneline(t));
                }
                RState::Delivered => o.extend_from_slice(b"  delivered"),
                RState::Failed(t) => {
                    o.extend_from_slice(b"  failed: ");
                    o.extend_from_slice(&oneline(t));
                }
                RState::Removed => o.extend_from_slice(b"  removed"),
            }
            o.push(b'\n');
        }
    }
    o
}

/// queue-list -s: one line of counts.
pub fn format_counts(jobs: &[Listed], unprocessed: Option<usize>, now: u64) -> Vec<u8> {
    let (mut local, mut remote, mut held) = (0, 0, 0);
    let mut oldest = 0;
    for j in jobs {
        if j.held {
            held += 1;
        }
        oldest = oldest.max(now.saturating_sub(j.info.birth));
        for (r, s) in j.info.rcpts.iter().zip(&j.states) {
            if let RState::Pending { .. } = s {
                if r.local.is_some() {
                    local += 1
                } else {
                    remote += 1
                }
            }
        }
    }
    let mut s = format!(
        "messages {} local {} remote {} held {} oldest {}",
        jobs.len(),
        local,
        remote,
        held,
        oldest
    );
    if let Some(u) = unprocessed {
        s.push_str(&format!(" unprocessed {}", u));
    }
    s.push('\n');
    s.into_bytes()
}

/// Sends one command line to queue-run through `queue/ctl`. Err(ENXIO)
/// when queue-run is not running.
pub fn send(line: &[u8]) -> io::Result<()> {
    let fd = crate::sys::fs::open_fifo_writer(&Dirs::new().sub("ctl"))?;
    let r = crate::sys::write_all(fd, line);
    crate::sys::close(fd);
    r
}

/// The command letter for a queue-ctl verb.
pub fn verb_letter(verb: &[u8]) -> Option<u8> {
    Some(match verb {
        b"retry" => b'R',
        b"hold" => b'H',
        b"release" => b'U',
        b"delete" => b'X',
        b"bounce" => b'B',
        b"etrn" => b'E',
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn ages() {
        assert_eq!(super::age(5), "5s");
        assert_eq!(super::age(125), "2m05s");
        assert_eq!(super::age(90061), "1d01h01m01s");
    }
}

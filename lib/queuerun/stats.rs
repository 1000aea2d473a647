//! The mail monitoring counters of RFC 1566 / RFC 2789 (MTA-MIB) for
//! queue-stat(8): counters that queue-run keeps in `queue/stats` (what it
//! received, transmitted, failed and deferred, per channel) and gauges read
//! from the queue itself (what is stored now, the oldest message, the
//! quarantined submissions).
//!
//! `queue/stats` holds lines `CHANNEL NAME VALUE`; queue-run loads it at
//! start (so the counters survive restarts; removing the file resets them)
//! and rewrites it (temporary file and rename, no fsync: counters are not
//! mail) at most once a second while it changes, and when it exits.

use super::ctl::{Listed, RState};
use super::store::{Dirs, Info};
use std::io;

/// The channels: `local` and `remote` are mtaGroup rows, `all` the mtaTable.
pub const CHANNELS: [&str; 3] = ["all", "local", "remote"];

/// The counters, in output order.
pub const COUNTERS: [&str; 8] = [
    "received_messages",
    "received_octets",
    "received_recipients",
    "transmitted_messages",
    "transmitted_octets",
    "transmitted_recipients",
    "failed_recipients",
    "deferred_recipients",
];

/// The gauges read from the queue, in output order.
pub const GAUGES: [&str; 6] = [
    "stored_messages",
    "stored_octets",
    "stored_recipients",
    "oldest_message_seconds",
    "rejected_messages",
    "unprocessed_messages",
];

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Stats {
    /// [channel][counter]
    pub n: [[u64; COUNTERS.len()]; CHANNELS.len()],
    pub dirty: bool,
    last_write_ms: u64,
    last_did: u64,
}

fn idx(list: &[&str], name: &[u8]) -> Option<usize> {
    list.iter().position(|c| c.as_bytes() == name)
}

impl Stats {
    /// Parses `queue/stats`; unknown lines are skipped.
    pub fn parse(b: &[u8]) -> Stats {
        let mut s = Stats::default();
        for l in b.split(|&c| c == b'\n') {
            let w: Vec<&[u8]> = l.split(|&c| c == b' ').collect();
            if let [ch, name, v] = w[..] {
                if let (Some(c), Some(k), Some(v)) = (
                    idx(&CHANNELS, ch),
                    idx(&COUNTERS, name),
                    crate::parse::number(v),
                ) {
                    s.n[c][k] = v;
                }
            }
        }
        s
    }

    /// `queue/stats`, or zeros when it is missing or unreadable.
    pub fn load(d: &Dirs) -> Stats {
        std::fs::read(d.sub("stats"))
            .map(|b| Stats::parse(&b))
            .unwrap_or_default()
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut o = Vec::new();
        for (c, ch) in CHANNELS.iter().enumerate() {
            for (k, name) in COUNTERS.iter().enumerate() {
                o.extend_from_slice(format!("{} {} {}\n", ch, name, self.n[c][k]).as_bytes());
            }
        }
        o
    }

    fn bump(&mut self, c: usize, counter: &str, v: u64) {
        if let Some(k) = idx(&COUNTERS, counter.as_bytes()) {
            self.n[c][k] = self.n[c][k].saturating_add(v);
            self.dirty = true;
        }
    }

    /// A job taken over: counted as received on `all` and on each channel
    /// it has recipients for.
    pub fn received(&mut self, i: &Info) {
        self.bump(0, "received_messages", 1);
        self.bump(0, "received_octets", i.size);
        for (c, local) in [(1, true), (2, false)] {
            let n = i
                .rcpts
                .iter()
                .filter(|r| r.local.is_some() == local)
                .count() as u64;
            if n > 0 {
                self.bump(c, "received_messages", 1);
                self.bump(c, "received_octets", i.size);
                self.bump(c, "received_recipients", n);
                self.bump(0, "received_recipients", n);
            }
        }
    }

    /// One recipient's outcome (`K`, `D` or `Z`) in delivery `did`; a
    /// delivery's first success counts the message as transmitted.
    pub fn outcome(&mut self, did: u64, local: bool, letter: u8, size: u64) {
        let first = did != self.last_did;
        let mut both = |name: &str, v: u64| {
            self.bump(0, name, v);
            self.bump(if local { 1 } else { 2 }, name, v);
        };
        match letter {
            b'K' => {
                both("transmitted_recipients", 1);
                if first {
                    both("transmitted_messages", 1);
                    both("transmitted_octets", size);
                }
            }
            b'D' => both("failed_recipients", 1),
            _ => both("deferred_recipients", 1),
        }
        if letter == b'K' {
            self.last_did = did;
        }
    }

    /// Rewrites `queue/stats` when it changed and a second has passed
    /// (`force`: whenever it changed).
    pub fn save(&mut self, d: &Dirs, force: bool) -> io::Result<()> {
        let now = crate::sys::now_ms();
        if !self.dirty || (!force && now.saturating_sub(self.last_write_ms) < 1000) {
            return Ok(());
        }
        let tmp = d.sub("stats.tmp");
        std::fs::write(&tmp, self.encode())?;
        std::fs::rename(&tmp, d.sub("stats"))?;
        self.dirty = false;
        self.last_write_ms = now;
        Ok(())
    }
}

/// The gauges per channel, from the queue's jobs, the quarantine and the
/// drop directory: [channel][gauge].
pub fn gauges(
    jobs: &[Listed],
    quarantined: usize,
    unprocessed: usize,
    now: u64,
) -> [[u64; GAUGES.len()]; CHANNELS.len()] {
    let mut g = [[0u64; GAUGES.len()]; CHANNELS.len()];
    let mut oldest: [Option<u64>; 3] = [None; 3];
    for j in jobs {
        let mut on = [false; 3];
        for (r, s) in j.info.rcpts.iter().zip(&j.states) {
            if let RState::Pending { .. } = s {
                let c = if r.local.is_some() { 1 } else { 2 };
                for c in [0, c] {
                    g[c][2] += 1;
                    on[c] = true;
                }
            }
        }
        // a job stays in the queue (stored) until it is removed
        on[0] = true;
        for c in 0..3 {
            if on[c] {
                g[c][0] += 1;
                g[c][1] += j.info.size;
                let o = oldest[c].get_or_insert(j.info.birth);
                *o = (*o).min(j.info.birth);
            }
        }
    }
    for c in 0..3 {
        g[c][3] = oldest[c].map_or(0, |b| now.saturating_sub(b));
    }
    g[0][4] = quarantined as u64;
    g[0][5] = unprocessed as u64;
    g
}

/// Submissions in quarantine/ (a message and its envelope count once).
pub fn quarantined(d: &Dirs) -> usize {
    let Ok(r) = std::fs::read_dir(d.sub("quarantine")) else {
        return 0;
    };
    let mut names: Vec<String> = r
        .filter_map(|e| e.ok())
        .map(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            n.strip_suffix(".env").map(str::to_string).unwrap_or(n)
        })
        .collect();
    names.sort();
    names.dedup();
    names.len()
}

/// queue-stat's output: `CHANNEL NAME VALUE` lines, or with `prom` the
/// Prometheus text format (node_exporter's textfile collector).
pub fn format(s: &Stats, g: &[[u64; GAUGES.len()]; CHANNELS.len()], prom: bool) -> Vec<u8> {
    let mut rows: Vec<(&str, bool, usize, u64)> = Vec::new();
    for (k, name) in COUNTERS.iter().enumerate() {
        for (c, row) in s.n.iter().enumerate() {
            rows.push((name, true, c, row[k]));
        }
    }
    for (k, name) in GAUGES.iter().enumerate() {
        for (c, row) in g.iter().enumerate() {
            if k < 4 || c == 0 {
                rows.push((name, false, c, row[k]));
            }
        }
    }
    let mut o = Vec::new();
    if !prom {
        for c in 0..CHANNELS.len() {
            for &(name, _, rc, v) in rows.iter().filter(|r| r.2 == c) {
                o.extend_from_slice(format!("{} {} {}\n", CHANNELS[rc], name, v).as_bytes());
            }
        }
        return o;
    }
    let mut last = "";
    for &(name, counter, c, v) in &rows {
        let metric = if counter {
            format!("pipemail_{}_total", name)
        } else {
            format!("pipemail_{}", name)
        };
        if name != last {
            let t = if counter { "counter" } else { "gauge" };
            o.extend_from_slice(format!("# TYPE {} {}\n", metric, t).as_bytes());
            last = name;
        }
        o.extend_from_slice(
            format!("{}{{channel=\"{}\"}} {}\n", metric, CHANNELS[c], v).as_bytes(),
        );
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queuerun::store::Rcpt;

    fn info(size: u64, local: usize, remote: usize) -> Info {
        let mut rcpts = Vec::new();
        for i in 0..local {
            rcpts.push(Rcpt {
                addr: format!("l{}@here", i).into_bytes(),
                local: Some(b"x".to_vec()),
            });
        }
        for i in 0..remote {
            rcpts.push(Rcpt {
                addr: format!("r{}@there", i).into_bytes(),
                local: None,
            });
        }
        Info {
            birth: 100,
            uid: 0,
            size,
            sender: b"s@x".to_vec(),
            rcpts,
            dsn: Default::default(),
        }
    }

    fn get(s: &Stats, ch: &str, name: &str) -> u64 {
        s.n[idx(&CHANNELS, ch.as_bytes()).unwrap()][idx(&COUNTERS, name.as_bytes()).unwrap()]
    }

    #[test]
    fn counts_and_round_trips() {
        let mut s = Stats::default();
        s.received(&info(1000, 2, 1));
        s.received(&info(10, 0, 3));
        assert_eq!(get(&s, "all", "received_messages"), 2);
        assert_eq!(get(&s, "all", "received_octets"), 1010);
        assert_eq!(get(&s, "all", "received_recipients"), 6);
        assert_eq!(get(&s, "local", "received_messages"), 1);
        assert_eq!(get(&s, "remote", "received_messages"), 2);
        assert_eq!(get(&s, "remote", "received_recipients"), 4);
        // one remote delivery of two recipients: one message transmitted
        s.outcome(7, false, b'K', 10);
        s.outcome(7, false, b'K', 10);
        s.outcome(8, true, b'K', 1000);
        s.outcome(9, true, b'D', 1000);
        s.outcome(10, false, b'Z', 10);
        assert_eq!(get(&s, "remote", "transmitted_messages"), 1);
        assert_eq!(get(&s, "remote", "transmitted_recipients"), 2);
        assert_eq!(get(&s, "all", "transmitted_messages"), 2);
        assert_eq!(get(&s, "all", "transmitted_octets"), 1010);
        assert_eq!(get(&s, "local", "failed_recipients"), 1);
        assert_eq!(get(&s, "all", "deferred_recipients"), 1);
        let mut back = Stats::parse(&s.encode());
        back.dirty = s.dirty;
        back.last_did = s.last_did;
        assert_eq!(back, s);
        assert_eq!(
            Stats::parse(b"junk\nall received_messages x\n"),
            Stats::default()
        );
    }
}

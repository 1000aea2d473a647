//! imapd under load with sessions kept open (issue 15, speed and
//! resources): memory per session, the cache file with many sessions,
//! APPENDs at once, and scripts/bench-imap itself with a tiny N.

use crate::common::{bin, scratch};
use crate::imap::{maildir, put, Sess};
use std::collections::HashSet;
use std::fs;
use std::path::Path;
use std::process::Command;

/// Anonymous memory of a process, in KiB (heap and stacks, not the
/// page cache nor the program's own pages).
fn anon_kib(pid: u32) -> u64 {
    let t = fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).unwrap();
    let l = t.lines().find(|l| l.starts_with("Anonymous:")).unwrap();
    l.split_whitespace().nth(1).unwrap().parse().unwrap()
}

fn cache_len(md: &Path) -> u64 {
    fs::metadata(md.join("pipemail-cache"))
        .map(|m| m.len())
        .unwrap_or(0)
}

/// A session's memory does not grow with the folder's answers: 2,000
/// messages whose ENVELOPEs take 3 KB each (6 MB of answers) cost a
/// session under 3 MB after it FETCHed them all, whether it computed them
/// or read them from the cache file; the answers stay right.
#[test]
fn a_session_holds_where_answers_lie_not_the_answers() {
    let md = maildir("imap-load-mem");
    let to: Vec<String> = (0..60)
        .map(|i| format!("Person Number {i:04} <person{i:04}@example.org>"))
        .collect();
    let n = 2000;
    for i in 0..n {
        let body = format!(
            "From: a{i}@example.org\nTo: {}\nSubject: message {i}\n\nbody {i}\n",
            to.join(",\n ")
        );
        put(
            &md,
            "cur",
            &format!("{}.M{i}P1.load", 1_700_000_000 + i),
            Some("S"),
            &body,
            1_700_000_000,
        );
    }
    let fetch = "FETCH 1:* (ENVELOPE BODYSTRUCTURE)";
    let mut answers = Vec::new();
    for pass in ["computes", "reads the cache"] {
        let mut s = Sess::start(&md);
        s.cmd("s", "SELECT INBOX");
        let before = anon_kib(s.child.id());
        let r = s.cmd("f", fetch);
        let grew = anon_kib(s.child.id()).saturating_sub(before);
        assert!(
            r.contains(&format!("* {n} FETCH")) && r.contains("\"person0059\""),
            "{pass}"
        );
        assert!(grew < 3 * 1024, "a session that {pass} grew by {grew} KiB");
        answers.push(r);
    }
    assert!(
        cache_len(&md) > 6_000_000,
        "answers of {} bytes",
        cache_len(&md)
    );
    assert_eq!(answers[0], answers[1]);
}

/// Ten sessions kept open on one folder, APPENDing, FETCHing ENVELOPE and
/// BODYSTRUCTURE, STOREing flags and EXPUNGEing for 15 rounds: the cache
/// file stays within three times the live folder's answers plus 64 KiB
/// (without compaction it would reach 15 x 10 x 40 answers), and every
/// session, old or new, still answers what a cache-less session does.
#[test]
fn ten_sessions_keep_the_cache_proportional_to_the_folder() {
    let md = maildir("imap-load-ten");
    let subject = "s".repeat(1000);
    for i in 0..30 {
        let body = format!("From: a{i}@example.org\nSubject: {i} {subject}\n\nbody {i}\n");
        put(
            &md,
            "cur",
            &format!("{}.M{i}P1.ten", 1_700_000_000 + i),
            Some(""),
            &body,
            1_700_000_000,
        );
    }
    let mut ss: Vec<Sess> = (0..10).map(|_| Sess::start(&md)).collect();
    for s in ss.iter_mut() {
        s.cmd("s", "SELECT INBOX");
    }
    let fetch = "FETCH 1:* (ENVELOPE BODYSTRUCTURE)";
    let mut live_answers = 0;
    let mut biggest = 0;
    for round in 0..15 {
        for (k, s) in ss.iter_mut().enumerate() {
            let msg = format!("Subject: round {round} session {k} {subject}\r\n\r\nhi\r\n");
            s.send(&format!("a APPEND INBOX {{{}+}}\r\n{msg}\r\n", msg.len()));
            loop {
                let l = s.line();
                assert!(!l.is_empty());
                if l.starts_with("a ") {
                    assert!(l.starts_with("a OK"), "{l}");
                    break;
                }
            }
        }
        for (k, s) in ss.iter_mut().enumerate() {
            s.cmd("n", "NOOP");
            let r = s.cmd("f", fetch);
            assert!(r.contains("* 40 FETCH"), "round {round} session {k}");
            live_answers = live_answers.max(r.len() as u64);
            s.cmd(
                "t",
                &format!(
                    "STORE {} {}FLAGS (\\Flagged)",
                    k + 1,
                    if round % 2 == 0 { "+" } else { "-" }
                ),
            );
            biggest = biggest.max(cache_len(&md));
        }
        ss[0].cmd("d", "STORE 31:* +FLAGS.SILENT (\\Deleted)");
        assert!(ss[0].cmd("e", "EXPUNGE").contains("* 31 EXPUNGE"));
        for s in ss.iter_mut() {
            s.cmd("n", "NOOP");
        }
    }
    let bound = 3 * live_answers + 65536;
    assert!(
        biggest < bound,
        "cache reached {biggest} bytes (bound {bound})"
    );
    let old = ss[5].cmd("f", fetch);
    let new_session = || {
        let mut s = Sess::start(&md);
        s.cmd("s", "SELECT INBOX");
        s.cmd("f", fetch)
    };
    let cached = new_session();
    fs::remove_file(md.join("pipemail-cache")).unwrap();
    let fresh = new_session();
    let fetched = |r: &str| {
        r.lines()
            .filter(|l| l.contains(" FETCH ("))
            .map(String::from)
            .collect::<Vec<_>>()
    };
    assert_eq!(fetched(&fresh).len(), 30);
    assert_eq!(fetched(&cached), fetched(&fresh));
    assert_eq!(fetched(&old), fetched(&fresh));
}

/// APPEND writes and syncs the message before it takes the folder lock:
/// eight sessions APPENDing at once get distinct UIDs, every message is
/// there once, and nothing is left in tmp/, not even by an APPEND refused
/// after its message was written.
#[test]
fn appends_at_once_get_distinct_uids_and_leave_nothing_in_tmp() {
    let md = maildir("imap-load-append");
    let threads: Vec<_> = (0..8)
        .map(|k| {
            let md = md.clone();
            std::thread::spawn(move || {
                let mut s = Sess::start(&md);
                let mut uids = Vec::new();
                for i in 0..15 {
                    let msg = format!("Subject: {k}.{i}\r\n\r\nbody\r\n");
                    s.send(&format!(
                        "a APPEND INBOX (\\Seen) {{{}+}}\r\n{msg}\r\n",
                        msg.len()
                    ));
                    let l = s.line();
                    let uid = l
                        .strip_prefix("a OK [APPENDUID 42 ")
                        .and_then(|r| r.split(']').next())
                        .unwrap_or_else(|| panic!("{l}"));
                    uids.push(uid.parse::<u32>().unwrap());
                }
                let msg = "Subject: bad\r\n\r\nx\r\n";
                s.send(&format!(
                    "b APPEND INBOX (\\Bogus) {{{}+}}\r\n{msg}\r\n",
                    msg.len()
                ));
                assert_eq!(s.line(), "b BAD Invalid system flag\r\n");
                uids
            })
        })
        .collect();
    let mut all = HashSet::new();
    for t in threads {
        for u in t.join().unwrap() {
            assert!(all.insert(u), "UID {u} given twice");
        }
    }
    assert_eq!(all.len(), 120);
    assert_eq!(all.iter().max(), Some(&120));
    let n = fs::read_dir(md.join("cur")).unwrap().count()
        + fs::read_dir(md.join("new")).unwrap().count();
    assert_eq!(n, 120);
    assert_eq!(fs::read_dir(md.join("tmp")).unwrap().count(), 0);
}

/// scripts/bench-imap --quick runs, pipemail beside Dovecot (which CI
/// installs), and prints its table with the SEARCH TEXT answers checked.
#[test]
fn bench_imap_runs_with_a_tiny_n() {
    let dovecot =
        Path::new("/usr/sbin/dovecot").exists() && Path::new("/usr/lib/dovecot/imap").exists();
    assert!(
        dovecot || std::env::var("CI").as_deref() != Ok("true"),
        "dovecot-imapd is missing in CI"
    );
    let tmp = scratch("bench-imap");
    let out = Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/bench-imap"))
        .arg("--quick")
        .env("PIPEMAIL_BIN", bin("imapd").parent().unwrap())
        .env("TMPDIR", &tmp)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let head = if dovecot {
        "| measure | pipemail | Dovecot | pipemail/Dovecot |\n"
    } else {
        "| measure | pipemail |\n"
    };
    assert!(text.contains(head), "{text}");
    for row in [
        "| FETCH commands/s (3 sessions) | ",
        "| SEARCH TEXT, then, ms | ",
        "| index+cache growth, last cycle | ",
    ] {
        assert!(text.contains(row), "{row}: {text}");
    }
    assert_eq!(fs::read_dir(&tmp).unwrap().count(), 0, "left behind");
}

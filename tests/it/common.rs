//! Helpers shared by the integration tests: scratch homes, running a
//! program with a cleared environment, and reading what it left behind.
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// The path of a built program.
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    // target/debug/deps/it-HASH -> target/debug/NAME
    exe.parent().unwrap().parent().unwrap().join(name)
}

/// A fresh scratch directory under the system temp dir.
pub fn scratch(tag: &str) -> PathBuf {
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    let d = std::env::temp_dir().join(format!(
        "pipemail-test-{}-{}-{}",
        tag,
        std::process::id(),
        n
    ));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A scratch home laid out by scripts/make-home, with control/me.
pub fn home(tag: &str) -> PathBuf {
    let h = scratch(tag).join("home");
    let st = Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/make-home"))
        .arg(&h)
        .status()
        .unwrap();
    assert!(st.success());
    std::fs::write(h.join("control/me"), "mail.example.org\n").unwrap();
    h
}

/// Writes control/NAME.
pub fn control(home: &Path, name: &str, text: &str) {
    std::fs::write(home.join("control").join(name), text).unwrap();
}

/// Runs `prog` with a cleared environment plus `env`, feeding `input` on
/// stdin from a thread; returns its output.
pub fn run(prog: &str, args: &[&str], env: &[(&str, &str)], input: &[u8]) -> Output {
    run_in(None, prog, args, env, input)
}

/// [`run`] in the working directory `dir` (when given).
pub fn run_in(
    dir: Option<&Path>,
    prog: &str,
    args: &[&str],
    env: &[(&str, &str)],
    input: &[u8],
) -> Output {
    let mut c = Command::new(bin(prog));
    if let Some(d) = dir {
        c.current_dir(d);
    }
    c.args(args).env_clear().env("PATH", "/usr/bin:/bin");
    for (k, v) in env {
        c.env(k, v);
    }
    c.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let data = input.to_vec();
    let t = std::thread::spawn(move || {
        let _ = stdin.write_all(&data);
    });
    let out = child.wait_with_output().unwrap();
    t.join().unwrap();
    out
}

/// Files in `dir` (names), sorted; empty when it does not exist.
pub fn files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = match std::fs::read_dir(dir) {
        Ok(r) => r
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => Vec::new(),
    };
    v.sort();
    v
}

/// Environment for a program working in `home`.
pub fn home_env(home: &Path) -> HashMap<String, String> {
    let mut m = HashMap::new();
    m.insert(
        "PIPEMAIL_HOME".to_string(),
        home.to_string_lossy().into_owned(),
    );
    m
}

/// Whether the tests run as root (CI does): then privilege drops are real.
pub fn is_root() -> bool {
    unsafe { libc::geteuid() == 0 }
}

/// One committed submission in queue/drop (pipemail-queue(5), version 1).
#[derive(Debug, Clone)]
pub struct Submission {
    pub id: String,
    /// The message part: queue-inject's Received line, then the message.
    pub message: Vec<u8>,
    /// The section after its I record: the qmail-queue envelope (F sender
    /// NUL, T rcpt NUL..., NUL), after a D record (DSN) in version 2.
    pub envelope: Vec<u8>,
    pub uid: u32,
}

/// Whether a drop/ name is a committed submission's (not a `.tmp`).
pub fn is_submission(name: &str) -> bool {
    pipemail::queuerun::valid_id(name.as_bytes()) && !name.ends_with(".tmp")
}

/// The committed submissions in `home`'s queue/drop, sorted by id; panics
/// on a file there that is not one.
pub fn submissions(home: &Path) -> Vec<Submission> {
    use std::os::unix::fs::MetadataExt;
    let d = home.join("queue/drop");
    files(&d)
        .into_iter()
        .filter(|f| is_submission(f))
        .map(|id| {
            let b = std::fs::read(d.join(&id)).unwrap();
            let tl = pipemail::queue::TAIL_LEN;
            let off = pipemail::queue::tail_offset(&b[b.len() - tl..], b.len() as u64)
                .unwrap_or_else(|| panic!("drop/{} has no tail", id))
                .0 as usize;
            let sec = &b[off..b.len() - tl];
            let want = format!("I{}\0", id);
            assert!(sec.starts_with(want.as_bytes()), "drop/{}: {:?}", id, sec);
            Submission {
                message: b[..off].to_vec(),
                envelope: sec[want.len()..].to_vec(),
                uid: std::fs::metadata(d.join(&id)).unwrap().uid(),
                id,
            }
        })
        .collect()
}

/// Whether the file at `p` is a whole submission (its tail and `I` record).
pub fn whole_submission(p: &Path) -> bool {
    let Ok(b) = std::fs::read(p) else {
        return false;
    };
    let tl = pipemail::queue::TAIL_LEN;
    let id = p.file_name().unwrap().to_string_lossy();
    b.len() >= tl
        && pipemail::queue::tail_offset(&b[b.len() - tl..], b.len() as u64).is_some_and(|(o, v)| {
            pipemail::queue::parse_section(&id, v, &b[o as usize..b.len() - tl]).is_some()
        })
}

/// A drop file as queue-inject writes it, for tests that forge one.
pub fn drop_file(id: &str, message: &[u8], envelope: &[u8]) -> Vec<u8> {
    let mut v = message.to_vec();
    v.extend_from_slice(&pipemail::queue::trailer(
        id,
        envelope,
        &Default::default(),
        message.len() as u64,
    ));
    v
}

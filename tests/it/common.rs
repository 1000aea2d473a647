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
    let mut c = Command::new(bin(prog));
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

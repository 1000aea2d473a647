//! Helpers shared by the integration tests, one of each: scratch homes,
//! the command runner, waiting for a condition, CRLF/LF conversion,
//! chown, writing an executable script (the ETXTBSY guard), started
//! processes and Python peers, the whole-system fixture ([`sys::Sys`]), and
//! reading what a program left behind.
#![allow(dead_code)]

pub mod sys;
pub use sys::*;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// The uid (and gid) mail users, the queue and the servers run as when the
/// tests run as root.
pub const NOBODY: u32 = 65534;

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

/// `prog` (a built program's name, or a path) with `args`, a cleared
/// environment (PATH=/usr/bin:/bin) plus `env`.
pub fn command(prog: impl AsRef<Path>, args: &[&str], env: &[(&str, &str)]) -> Command {
    // bin() keeps an absolute path as it is.
    let mut c = Command::new(bin(prog.as_ref().to_str().unwrap()));
    c.args(args).env_clear().env("PATH", "/usr/bin:/bin");
    for (k, v) in env {
        c.env(k, v);
    }
    c
}

/// The command runner: runs `c` with `input` written to its stdin from a
/// thread and `fd3` readable on fd 3 (fd 3 closed when None, so no stray
/// descriptor of the test process reaches a checkpassword interface);
/// returns its output.
pub fn feed(c: &mut Command, input: &[u8], fd3: Option<&[u8]>) -> Output {
    use std::os::fd::AsRawFd;
    use std::os::unix::process::CommandExt;
    let r3 = fd3.map(|d| {
        let (r, mut w) = std::io::pipe().unwrap();
        w.write_all(d).unwrap();
        r
    });
    let fd = r3.as_ref().map_or(-1, |r| r.as_raw_fd());
    // SAFETY: dup2 and close are async-signal-safe.
    unsafe {
        c.pre_exec(move || {
            if fd < 0 {
                libc::close(3);
            } else if libc::dup2(fd, 3) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    c.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    drop(r3);
    let mut stdin = child.stdin.take().unwrap();
    let data = input.to_vec();
    let t = std::thread::spawn(move || {
        let _ = stdin.write_all(&data);
    });
    let out = child.wait_with_output().unwrap();
    t.join().unwrap();
    out
}

/// Runs `prog` with a cleared environment plus `env`, feeding `input` on
/// stdin; returns its output.
pub fn run(prog: &str, args: &[&str], env: &[(&str, &str)], input: &[u8]) -> Output {
    feed(&mut command(prog, args, env), input, None)
}

/// [`run`] in the working directory `dir` (when given).
pub fn run_in(
    dir: Option<&Path>,
    prog: &str,
    args: &[&str],
    env: &[(&str, &str)],
    input: &[u8],
) -> Output {
    let mut c = command(prog, args, env);
    if let Some(d) = dir {
        c.current_dir(d);
    }
    feed(&mut c, input, None)
}

/// Waits (polling every 20 ms) until `f` holds; fails the test after `secs`.
pub fn wait_until(secs: u64, what: &str, mut f: impl FnMut() -> bool) {
    let t = Instant::now();
    while !f() {
        assert!(
            t.elapsed() < Duration::from_secs(secs),
            "timed out after {} s waiting for {}",
            secs,
            what
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// LF → CRLF (what goes over SMTP, POP3 and IMAP).
pub fn crlf(m: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(m.len() + m.len() / 30 + 8);
    for &c in m {
        if c == b'\n' {
            v.push(b'\r');
        }
        v.push(c);
    }
    v
}

/// CRLF → LF (how a message is stored).
pub fn lf(m: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(m.len());
    for (i, &c) in m.iter().enumerate() {
        if !(c == b'\r' && m.get(i + 1) == Some(&b'\n')) {
            v.push(c);
        }
    }
    v
}

/// The uid and gid mail users get: [`NOBODY`] as root, else our own.
pub fn mail_ids() -> (u32, u32) {
    if is_root() {
        (NOBODY, NOBODY)
    } else {
        // SAFETY: getuid and getgid cannot fail.
        unsafe { (libc::getuid(), libc::getgid()) }
    }
}

pub fn chown(p: &Path, uid: u32, gid: u32) {
    std::os::unix::fs::chown(p, Some(uid), Some(gid))
        .unwrap_or_else(|e| panic!("chown {}: {}", p.display(), e));
}

/// chown -R (symbolic links are not followed).
pub fn chown_r(p: &Path, uid: u32, gid: u32) {
    std::os::unix::fs::lchown(p, Some(uid), Some(gid))
        .unwrap_or_else(|e| panic!("chown {}: {}", p.display(), e));
    if p.is_dir() && !p.is_symlink() {
        for e in std::fs::read_dir(p).unwrap() {
            chown_r(&e.unwrap().path(), uid, gid);
        }
    }
}

/// Gives `p` (not what is below it) to the mail user when root.
pub fn own(p: &Path) {
    if is_root() {
        chown(p, NOBODY, NOBODY);
    }
}

/// Gives `p` and everything below it to the mail user when root.
pub fn own_r(p: &Path) {
    if is_root() {
        chown_r(p, NOBODY, NOBODY);
    }
}

/// Writes an executable script (mode 0755). The ETXTBSY guard: a child
/// process writes it, so no descriptor of ours open for writing can leak
/// into another thread's fork and make its exec fail with "text file busy".
pub fn script(p: &Path, text: impl AsRef<[u8]>) {
    let o = run(
        "/bin/sh",
        &[
            "-c",
            "cat > \"$0\" && chmod 755 \"$0\"",
            p.to_str().unwrap(),
        ],
        &[],
        text.as_ref(),
    );
    assert!(o.status.success(), "writing {}: {:?}", p.display(), o);
}

/// A started process, stopped by its pid when dropped: SIGTERM, then
/// SIGKILL after 3 s; always reaped.
pub struct Proc(Option<Child>);

impl Proc {
    pub fn new(c: Child) -> Proc {
        Proc(Some(c))
    }

    /// Starts `c` (stdin from /dev/null unless set).
    pub fn spawn(c: &mut Command) -> Proc {
        Proc::new(c.spawn().unwrap_or_else(|e| panic!("{:?}: {}", c, e)))
    }

    /// 0 once reaped.
    pub fn pid(&self) -> i32 {
        self.0.as_ref().map_or(0, |c| c.id() as i32)
    }

    pub fn child(&mut self) -> &mut Child {
        self.0.as_mut().expect("a running process")
    }

    pub fn signal(&self, sig: i32) {
        if let Some(c) = &self.0 {
            // SAFETY: kill has no memory effects; the child is not reaped yet.
            unsafe { libc::kill(c.id() as i32, sig) };
        }
    }

    pub fn exited(&mut self) -> bool {
        match &mut self.0 {
            Some(c) => c.try_wait().unwrap().is_some(),
            None => true,
        }
    }

    /// Waits at most `secs` for the exit; its code. Kills it and fails the
    /// test after that.
    pub fn wait(&mut self, secs: u64) -> Option<i32> {
        let mut c = self.0.take()?;
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(secs) {
            if let Some(st) = c.try_wait().unwrap() {
                return st.code();
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = c.kill();
        let _ = c.wait();
        panic!("process {} did not exit within {} s", c.id(), secs);
    }

    /// SIGTERM and wait (at most 10 s); the exit code.
    pub fn stop(&mut self) -> Option<i32> {
        self.signal(libc::SIGTERM);
        self.wait(10)
    }

    /// SIGKILL and reap.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let Some(mut c) = self.0.take() else { return };
        // SAFETY: as in signal.
        unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(3) {
            if let Ok(Some(_)) = c.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = c.kill();
        let _ = c.wait();
    }
}

/// Starts `c`, whose first line on stdout is a port number (tcp-serve,
/// the Python peers); returns the process and the port.
pub fn start_listener(c: &mut Command, what: &str) -> (Proc, u16) {
    let mut child = c
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{}: {}", what, e));
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let p = Proc::new(child);
    let port = line
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("{} printed no port: {:?}", what, line));
    (p, port)
}

/// Writes a Python helper to `dir/NAME.py` and starts it with `args`,
/// its stderr to `stderr`; it prints its port first.
pub fn start_py(dir: &Path, name: &str, script: &str, args: &[&str], stderr: Stdio) -> (Proc, u16) {
    let path = dir.join(format!("{}.py", name));
    std::fs::write(&path, script).unwrap();
    let mut c = Command::new("python3");
    c.arg(&path).args(args).stdin(Stdio::null()).stderr(stderr);
    start_listener(&mut c, name)
}

/// The test SMTP peer (aiosmtpd; see the script for its replies).
pub const SMTP_PEER_PY: &str = include_str!("smtp_peer.py");

/// The test SMTP peer on addr:port (0: any): stderr to `stderr`, each
/// accepted message appended to dir/NAME.out; (process, port, that file).
/// `size` caps DATA (None: 64 MiB); `utf8` announces SMTPUTF8.
pub fn smtp_peer(
    dir: &Path,
    name: &str,
    addr: &str,
    port: u16,
    size: Option<u32>,
    utf8: bool,
    stderr: Stdio,
) -> (Proc, u16, PathBuf) {
    let out = dir.join(format!("{}.out", name));
    let (port, out_s) = (port.to_string(), out.to_str().unwrap().to_string());
    let mut args = vec![addr, &port, &out_s];
    let size = size.map(|s| s.to_string());
    if let Some(s) = &size {
        args.push(s);
        if utf8 {
            args.push("utf8");
        }
    }
    let (p, port) = start_py(dir, name, SMTP_PEER_PY, &args, stderr);
    (p, port, out)
}

/// Whether python3 has every one of `modules`; a missing one skips a test
/// locally and fails it under CI=true.
pub fn python_has(modules: &[&str]) -> bool {
    let ok = Command::new("python3")
        .args(["-c", &format!("import {}", modules.join(", "))])
        .stderr(Stdio::null())
        .status();
    if !matches!(ok, Ok(s) if s.success()) {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "python3 or one of {:?} is missing (CI=true)",
            modules
        );
        eprintln!("skipped: python3 or one of {:?} is missing", modules);
        return false;
    }
    true
}

/// Runs a Python script with arguments; its stdout (asserting success).
pub fn py(script: &str, args: &[&str]) -> String {
    let o = Command::new("python3")
        .arg("-c")
        .arg(script)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "python failed: {}\nstdout: {}",
        String::from_utf8_lossy(&o.stderr),
        String::from_utf8_lossy(&o.stdout)
    );
    String::from_utf8(o.stdout).unwrap()
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
    /// The qmail-queue envelope (F sender NUL, T rcpt NUL..., NUL).
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
                as usize;
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
        && pipemail::queue::tail_offset(&b[b.len() - tl..], b.len() as u64).is_some_and(|o| {
            pipemail::queue::parse_section(&id, &b[o as usize..b.len() - tl]).is_some()
        })
}

/// A drop file as queue-inject writes it, for tests that forge one.
pub fn drop_file(id: &str, message: &[u8], envelope: &[u8]) -> Vec<u8> {
    let mut v = message.to_vec();
    v.extend_from_slice(&pipemail::queue::trailer(
        id,
        envelope,
        message.len() as u64,
    ));
    v
}

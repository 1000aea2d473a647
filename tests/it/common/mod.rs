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
    // SAFETY: dup2, fcntl and close are async-signal-safe.
    unsafe {
        c.pre_exec(move || {
            // (dup2 onto itself would leave close-on-exec set)
            let r = match fd {
                -1 => libc::close(3),
                3 => libc::fcntl(3, libc::F_SETFD, 0),
                _ => libc::dup2(fd, 3),
            };
            if r < 0 && fd >= 0 {
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

/// Asserts that `hay` contains `needle`, showing `hay` when not.
#[track_caller]
pub fn assert_has(hay: &str, needle: &str) {
    assert!(hay.contains(needle), "{:?} not in:\n{}", needle, hay);
}

/// Runs queue-inject in `home` (as `uid` when given) with `msg` on fd 0
/// and `envelope` on fd 1, the qmail-queue interface; its exit code.
pub fn inject(home: &Path, msg: &[u8], envelope: &[u8], uid: Option<u32>) -> Option<i32> {
    inject_env(home, msg, envelope, uid, &[])
}

/// [`inject`] with more environment variables (`$PIPEMAIL_DSN`, say).
pub fn inject_env(
    home: &Path,
    msg: &[u8],
    envelope: &[u8],
    uid: Option<u32>,
    extra: &[(&str, &str)],
) -> Option<i32> {
    use std::os::unix::process::CommandExt;
    let (er, mut ew) = std::io::pipe().unwrap();
    let mut c = command("queue-inject", &[], extra);
    c.env_remove("PATH")
        .env("PIPEMAIL_HOME", home)
        .stdin(Stdio::piped())
        .stdout(er)
        .stderr(Stdio::null());
    if let Some(u) = uid {
        c.uid(u).gid(u);
    }
    let mut child = c.spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let _ = stdin.write_all(msg);
    drop(stdin);
    let _ = ew.write_all(envelope);
    drop(ew);
    child.wait().unwrap().code()
}

/// Waits (polling every 20 ms) until `f` holds; fails the test after `secs`.
pub fn wait_until(secs: u64, what: &str, f: impl FnMut() -> bool) {
    assert!(
        wait_for(secs, f),
        "timed out after {} s waiting for {}",
        secs,
        what
    );
}

/// Waits (polling every 20 ms) at most `secs` for `f`; whether it came
/// (for a test that has more to show than a timeout).
pub fn wait_for(secs: u64, mut f: impl FnMut() -> bool) -> bool {
    let t = Instant::now();
    while !f() {
        if t.elapsed() >= Duration::from_secs(secs) {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    true
}

/// LF → CRLF (what goes over SMTP, POP3 and IMAP).
pub fn crlf(m: impl AsRef<[u8]>) -> Vec<u8> {
    let m = m.as_ref();
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
/// SIGKILL after 3 s; always reaped. Once reaped (seen exited), no signal
/// goes to its pid any more.
pub struct Proc {
    child: Option<Child>,
    /// The exit code once reaped (None inside: killed by a signal).
    code: Option<Option<i32>>,
}

impl Proc {
    pub fn new(c: Child) -> Proc {
        Proc {
            child: Some(c),
            code: None,
        }
    }

    /// No process (yet).
    pub fn none() -> Proc {
        Proc {
            child: None,
            code: None,
        }
    }

    /// Starts `c` (stdin from /dev/null unless set).
    pub fn spawn(c: &mut Command) -> Proc {
        Proc::new(c.spawn().unwrap_or_else(|e| panic!("{:?}: {}", c, e)))
    }

    /// 0 once reaped.
    pub fn pid(&self) -> i32 {
        self.child.as_ref().map_or(0, |c| c.id() as i32)
    }

    pub fn child(&mut self) -> &mut Child {
        self.child.as_mut().expect("a running process")
    }

    pub fn signal(&self, sig: i32) {
        if let Some(c) = &self.child {
            // SAFETY: kill has no memory effects; the child is not reaped yet.
            unsafe { libc::kill(c.id() as i32, sig) };
        }
    }

    /// Whether it has exited (it is reaped then).
    pub fn exited(&mut self) -> bool {
        if let Some(c) = &mut self.child {
            if let Some(st) = c.try_wait().unwrap() {
                self.code = Some(st.code());
                self.child = None;
            }
        }
        self.child.is_none()
    }

    /// Waits at most `secs` for the exit; its code. Kills it and fails the
    /// test after that.
    pub fn wait(&mut self, secs: u64) -> Option<i32> {
        let t = Instant::now();
        while !self.exited() {
            if t.elapsed() >= Duration::from_secs(secs) {
                let id = self.pid();
                self.kill9();
                panic!("process {} did not exit within {} s", id, secs);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        self.code.take().flatten()
    }

    /// SIGTERM and wait (at most 10 s); the exit code.
    pub fn stop(&mut self) -> Option<i32> {
        self.signal(libc::SIGTERM);
        self.wait(10)
    }

    /// SIGKILL and reap.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let Some(mut c) = self.child.take() else {
            return;
        };
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

/// (comm, ppid, state) of a process, from /proc/PID/stat.
pub fn stat(pid: i32) -> Option<(String, i32, char)> {
    let s = std::fs::read_to_string(format!("/proc/{}/stat", pid)).ok()?;
    let open = s.find('(')?;
    let close = s.rfind(')')?;
    let comm = s[open + 1..close].to_string();
    let mut rest = s[close + 2..].split(' ');
    let state = rest.next()?.chars().next()?;
    let ppid = rest.next()?.parse().ok()?;
    Some((comm, ppid, state))
}

/// Children of `ppid`: (pid, comm, state).
pub fn children(ppid: i32) -> Vec<(i32, String, char)> {
    let mut v = Vec::new();
    // /proc/PID/task/*/children lists them directly (CONFIG_PROC_CHILDREN).
    if let Ok(rd) = std::fs::read_dir(format!("/proc/{}/task", ppid)) {
        let mut found = false;
        for t in rd.flatten() {
            if let Ok(s) = std::fs::read_to_string(t.path().join("children")) {
                found = true;
                for p in s.split_whitespace() {
                    if let Ok(pid) = p.parse::<i32>() {
                        if let Some((c, pp, st)) = stat(pid) {
                            if pp == ppid {
                                v.push((pid, c, st));
                            }
                        }
                    }
                }
            }
        }
        if found {
            return v;
        }
    }
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        if let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) {
            if let Some((c, pp, st)) = stat(pid) {
                if pp == ppid {
                    v.push((pid, c, st));
                }
            }
        }
    }
    v
}

/// Whether process `pid` has a handler for `sig` (SigCgt in
/// /proc/PID/status): a signal sent earlier would have killed it.
pub fn catches(pid: i32, sig: i32) -> bool {
    let Ok(s) = std::fs::read_to_string(format!("/proc/{}/status", pid)) else {
        return false;
    };
    s.lines()
        .find_map(|l| l.strip_prefix("SigCgt:"))
        .and_then(|m| u64::from_str_radix(m.trim(), 16).ok())
        .is_some_and(|m| m & (1 << (sig - 1)) != 0)
}

/// Whether process `pid` sleeps in nanosleep (/proc/PID/syscall): a
/// polling retry loop between two tries.
pub fn in_nanosleep(pid: i32) -> bool {
    let Ok(s) = std::fs::read_to_string(format!("/proc/{}/syscall", pid)) else {
        return false;
    };
    let n: i64 = s
        .split(' ')
        .next()
        .and_then(|x| x.parse().ok())
        .unwrap_or(-1);
    n == libc::SYS_nanosleep || n == libc::SYS_clock_nanosleep
}

/// Whether process `pid` has the file `p` open (/proc/PID/fd).
pub fn has_open(pid: i32, p: &Path) -> bool {
    std::fs::read_dir(format!("/proc/{}/fd", pid))
        .map(|rd| {
            rd.flatten()
                .any(|e| std::fs::read_link(e.path()).is_ok_and(|l| l == p))
        })
        .unwrap_or(false)
}

/// Whether process `pid` holds a lock of `kind` (FLOCK, POSIX) on the
/// file `p` (/proc/locks).
pub fn holds_lock(pid: i32, kind: &str, p: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let Ok(m) = std::fs::metadata(p) else {
        return false;
    };
    let ino = format!(":{}", m.ino());
    std::fs::read_to_string("/proc/locks")
        .unwrap_or_default()
        .lines()
        .any(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            // "1: POSIX  ADVISORY  WRITE 1234 08:01:5678 0 EOF" (no "->": held)
            f.len() >= 6 && f[1] == kind && f[4] == pid.to_string() && f[5].ends_with(&ino)
        })
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
/// `size` caps DATA (None: 64 MiB); `opts`: "utf8" announces SMTPUTF8,
/// "dsn" DSN (its MAIL and RCPT lines go to dir/NAME.out.cmds as received).
pub fn smtp_peer(
    dir: &Path,
    name: &str,
    addr: &str,
    port: u16,
    size: Option<u32>,
    opts: &[&str],
    stderr: Stdio,
) -> (Proc, u16, PathBuf) {
    let out = dir.join(format!("{}.out", name));
    let (port, out_s) = (port.to_string(), out.to_str().unwrap().to_string());
    let mut args = vec![addr, &port, &out_s];
    let size = size.map(|s| s.to_string());
    if let Some(s) = &size {
        args.push(s);
    }
    args.extend_from_slice(opts);
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

/// Runs a Python script with arguments and `input` on its stdin; its
/// stdout (asserting success). None when python3 is missing (a failure
/// when CI=true).
pub fn py_stdin(script: &str, args: &[&str], input: &[u8]) -> Option<String> {
    let c = Command::new("python3")
        .arg("-c")
        .arg(script)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let Ok(mut ch) = c else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "python3 missing"
        );
        eprintln!("skipped: python3 missing");
        return None;
    };
    ch.stdin.take().unwrap().write_all(input).unwrap();
    let o = ch.wait_with_output().unwrap();
    assert!(
        o.status.success(),
        "python: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    Some(String::from_utf8(o.stdout).unwrap())
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

//! Tests for the pop3 area: check-password, mail-passwd, pop3-login and
//! pop3d over pipes, and the chain over 127.0.0.1 with poplib and curl.

use crate::common::{bin, home, is_root, scratch};
use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const M1: &[u8] = b"From: a@b\nSubject: one\n\n.dot line\nbody\n";
const N1: &str = "1700000000.M1P1.host,S=39,W=44";
const M2: &[u8] = b"Subject: two\n\nsecond\n";
const N2: &str = "1700000001.M2P2.host";

/// The uid:gid mail users get: nobody when root, else our own.
fn ids() -> (u32, u32) {
    if is_root() {
        (65534, 65534)
    } else {
        unsafe { (libc::getuid(), libc::getgid()) }
    }
}

fn chown_r(p: &Path) {
    if is_root() {
        let (u, g) = ids();
        assert!(Command::new("chown")
            .arg("-R")
            .arg(format!("{}:{}", u, g))
            .arg(p)
            .status()
            .unwrap()
            .success());
    }
}

/// A user home with an empty Maildir, owned by the mail user.
fn user_home(tag: &str) -> PathBuf {
    let h = scratch(tag).join("user");
    for d in ["new", "cur", "tmp"] {
        std::fs::create_dir_all(h.join("Maildir").join(d)).unwrap();
    }
    chown_r(&h);
    h
}

fn put(md: &Path, sub: &str, name: &str, data: &[u8]) {
    let p = md.join(sub).join(name);
    std::fs::write(&p, data).unwrap();
    chown_r(&p);
}

fn crlf(b: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    for &c in b {
        if c == b'\n' {
            v.push(b'\r');
        }
        v.push(c);
    }
    v
}

/// Runs a program as the mail user (when root), cleared environment plus
/// `env`, fd 3 carrying `fd3` when given; stdin written from a thread.
fn run_fd3(
    prog: &Path,
    args: &[&str],
    env: &[(&str, &str)],
    input: &[u8],
    fd3: Option<&[u8]>,
    as_user: bool,
) -> Output {
    let mut c = Command::new(prog);
    c.args(args).env_clear().env("PATH", "/usr/bin:/bin");
    for (k, v) in env {
        c.env(k, v);
    }
    if as_user && is_root() {
        let (u, g) = ids();
        c.uid(u).gid(g);
    }
    let fd = match fd3 {
        Some(d) => {
            let mut p = [0i32; 2];
            assert_eq!(unsafe { libc::pipe(p.as_mut_ptr()) }, 0);
            let mut w = unsafe { std::fs::File::from_raw_fd_(p[1]) };
            w.write_all(d).unwrap();
            drop(w);
            p[0]
        }
        None => -1,
    };
    unsafe {
        c.pre_exec(move || {
            if fd >= 0 {
                if libc::dup2(fd, 3) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            } else {
                libc::close(3);
            }
            Ok(())
        });
    }
    c.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    if fd >= 0 {
        unsafe { libc::close(fd) };
    }
    let mut stdin = child.stdin.take().unwrap();
    let data = input.to_vec();
    let t = std::thread::spawn(move || {
        let _ = stdin.write_all(&data);
    });
    let out = child.wait_with_output().unwrap();
    t.join().unwrap();
    out
}

trait FromRawFd_ {
    unsafe fn from_raw_fd_(fd: i32) -> Self;
}
impl FromRawFd_ for std::fs::File {
    unsafe fn from_raw_fd_(fd: i32) -> Self {
        std::os::fd::FromRawFd::from_raw_fd(fd)
    }
}

fn sha512(pw: &str, salt: &str) -> String {
    let o = Command::new("openssl")
        .args(["passwd", "-6", "-salt", salt, pw])
        .output()
        .unwrap();
    assert!(o.status.success());
    String::from_utf8(o.stdout).unwrap().trim().to_string()
}

/// A pipemail home whose users/passwd has ann (password "pw one") with
/// home `uh`, and root0 (uid 0, password "pw").
fn auth_home(tag: &str, uh: &Path) -> PathBuf {
    let h = home(tag);
    let (u, g) = ids();
    let text = format!(
        "# test accounts\nann:{}:{}:{}:{}:\nroot0:{}:0:0:/:\n",
        sha512("pw one", "saltsalt"),
        u,
        g,
        uh.display(),
        sha512("pw", "abcdefgh")
    );
    std::fs::write(h.join("users/passwd"), text).unwrap();
    h
}

fn cp(h: &Path, fd3: Option<&[u8]>, prog: &[&str]) -> Output {
    let hs = h.to_str().unwrap();
    run_fd3(
        &bin("check-password"),
        prog,
        &[("PIPEMAIL_HOME", hs), ("CHECKPASSWORD_DELAY", "50")],
        b"",
        fd3,
        false,
    )
}

#[test]
fn check_password_exit_codes() {
    let uh = user_home("cpcodes");
    let h = auth_home("cpcodes", &uh);
    let id = ["sh", "-c", "echo in"];
    // No fd 3, no prog, missing NULs, too long: misuse.
    assert_eq!(cp(&h, None, &id).status.code(), Some(2));
    assert_eq!(
        cp(&h, Some(b"ann\0pw one\0ts\0"), &[]).status.code(),
        Some(2)
    );
    for bad in [&b""[..], b"ann", b"ann\0pw one", b"annpw one"] {
        let o = cp(&h, Some(bad), &id);
        assert_eq!(o.status.code(), Some(2), "{:?}", bad);
        assert!(o.stderr.starts_with(b"check-password: fatal: "));
        assert!(o.stdout.is_empty());
    }
    let mut long = b"ann\0pw one\0".to_vec();
    long.resize(513, b'x');
    assert_eq!(cp(&h, Some(&long), &id).status.code(), Some(2));
    long.truncate(512);
    let o = cp(&h, Some(&long), &id);
    assert_eq!(
        (o.status.code(), &o.stdout[..]),
        (Some(0), &b"in\n"[..]),
        "512 bytes are fine"
    );
    // Bad password, unknown user, root: 1, after the fixed delay.
    for input in [
        &b"ann\0pw two\0<1.2@h>\0"[..],
        b"nosuchuser\0pw\0\0",
        b"root0\0pw\0\0",
        b"root\0x\0\0",
        b"ann\0\0\0",
    ] {
        let t = std::time::Instant::now();
        let o = cp(&h, Some(input), &id);
        assert_eq!(o.status.code(), Some(1), "{:?}", input);
        assert!(o.stdout.is_empty());
        assert!(t.elapsed() >= std::time::Duration::from_millis(50));
    }
    // Temporary: a malformed users/passwd.
    std::fs::write(h.join("users/passwd"), "ann:x:notanumber:1:/:\n").unwrap();
    let o = cp(&h, Some(b"ann\0pw one\0\0"), &id);
    assert_eq!(o.status.code(), Some(111));
    assert!(
        o.stderr
            .ends_with(b"users/passwd line 1: malformed line, want name:hash:uid:gid:home:\n"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn check_password_good_login_becomes_the_user() {
    let uh = user_home("cpgood");
    let h = auth_home("cpgood", &uh);
    let o = cp(
        &h,
        Some(b"ann\0pw one\0<1.2@h>\0"),
        &[
            "sh",
            "-c",
            "id -u; id -g; pwd; echo $USER $HOME $SHELL $MAILDIR",
        ],
    );
    let (u, g) = ids();
    let want = format!(
        "{}\n{}\n{}\nann {} /bin/sh {}/Maildir/\n",
        u,
        g,
        uh.display(),
        uh.display(),
        uh.display()
    );
    assert_eq!(String::from_utf8_lossy(&o.stdout), want);
    assert_eq!(o.status.code(), Some(0));
    // The library helper runs it the same way (through env for a clean environment).
    let hs = format!("PIPEMAIL_HOME={}", h.display());
    let args: Vec<std::ffi::OsString> = ["env", "-i", &hs, "CHECKPASSWORD_DELAY=10"]
        .iter()
        .map(|s| s.into())
        .chain([bin("check-password").into(), "true".into()])
        .collect();
    assert_eq!(
        pipemail::auth::check(&args, b"ann", b"pw one", b"").unwrap(),
        0
    );
    assert_eq!(pipemail::auth::check(&args, b"ann", b"pw", b"").unwrap(), 1);
}

#[test]
fn mail_passwd_adds_and_changes() {
    let uh = user_home("mpw");
    let h = home("mpw");
    let hs = h.to_str().unwrap();
    let env = [("PIPEMAIL_HOME", hs)];
    let (u, g) = ids();
    let ug = format!("{}:{}", u, g);
    let r =
        |args: &[&str], input: &[u8]| run_fd3(&bin("mail-passwd"), args, &env, input, None, false);
    let o = r(&["bob"], b"secret\n");
    assert_eq!(o.status.code(), Some(100));
    assert_eq!(
        o.stderr,
        b"mail-passwd: fatal: a new account needs -u uid:gid and -d home\n"
    );
    assert_eq!(
        r(&["-u", &ug, "-d", uh.to_str().unwrap(), "bob"], b"\n")
            .status
            .code(),
        Some(100)
    );
    assert_eq!(
        r(&["-u", &ug, "-d", "relative", "bob"], b"x\n")
            .status
            .code(),
        Some(100)
    );
    assert_eq!(
        r(&["-u", "x", "-d", "/", "bob"], b"x\n").status.code(),
        Some(100)
    );
    assert_eq!(
        r(&["-u", &ug, "-d", "/", "b:ob"], b"x\n").status.code(),
        Some(100)
    );
    let o = r(
        &["-u", &ug, "-d", uh.to_str().unwrap(), "bob"],
        b"first pw\n",
    );
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let f = h.join("users/passwd");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&f).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let text = std::fs::read_to_string(&f).unwrap();
    let fields: Vec<&str> = text.trim_end().split(':').collect();
    assert_eq!(fields.len(), 6);
    assert_eq!(
        (fields[0], fields[2], fields[3], fields[4], fields[5]),
        (
            "bob",
            &*u.to_string(),
            &*g.to_string(),
            uh.to_str().unwrap(),
            ""
        )
    );
    assert!(
        fields[1].starts_with("$y$") || fields[1].starts_with("$6$"),
        "{}",
        fields[1]
    );
    let ok = |pw: &[u8]| {
        let mut i = b"bob\0".to_vec();
        i.extend_from_slice(pw);
        i.extend_from_slice(b"\0\0");
        cp(&h, Some(&i), &["true"]).status.code()
    };
    assert_eq!(ok(b"first pw"), Some(0));
    // Change: the password only; uid, gid and home stay.
    assert_eq!(r(&["bob"], b"second pw\r\n").status.code(), Some(0));
    assert_eq!(ok(b"first pw"), Some(1));
    assert_eq!(ok(b"second pw"), Some(0));
    let text2 = std::fs::read_to_string(&f).unwrap();
    assert_eq!(text2.lines().count(), 1);
    assert!(text2.ends_with(&format!(":{}:{}:{}:\n", u, g, uh.display())));
    let leftovers: Vec<String> = crate::common::files(&h.join("users"))
        .into_iter()
        .filter(|n| n.contains("tmp"))
        .collect();
    assert!(leftovers.is_empty());
}

/// pop3d run directly on a Maildir, as the mail user.
fn pop3d(md: &Path, input: &[u8], env: &[(&str, &str)]) -> Output {
    run_fd3(
        &bin("pop3d"),
        &[md.to_str().unwrap()],
        env,
        input,
        None,
        true,
    )
}

fn two_messages(tag: &str) -> PathBuf {
    let md = user_home(tag).join("Maildir");
    put(&md, "new", N1, M1);
    put(&md, "cur", &format!("{}:2,F", N2), M2);
    md
}

#[test]
fn pop3d_every_command_exact_bytes() {
    let md = two_messages("p3d");
    let input = b"CAPA\r\nSTAT\r\nLIST\r\nLIST 2\r\nLIST 3\r\nUIDL\r\nUIDL 1\r\nTOP 1 0\r\nRETR 1\r\nDELE 2\r\nDELE 2\r\nRETR 2\r\nSTAT\r\nRSET\r\nDELE 1\r\nnoop\r\nXYZZY\r\nLIST x\r\nTOP 1\r\nLIST 0\r\nQUIT\r\n";
    let o = pop3d(&md, input, &[]);
    let want = "+OK 2 messages (68 octets)\r\n\
+OK capability list follows\r\nTOP\r\nUIDL\r\nRESP-CODES\r\nPIPELINING\r\nIMPLEMENTATION pipemail\r\n.\r\n\
+OK 2 68\r\n\
+OK 2 messages (68 octets)\r\n1 44\r\n2 24\r\n.\r\n\
+OK 2 24\r\n\
-ERR no such message\r\n\
+OK unique-id listing follows\r\n1 1700000000.M1P1.host,S=39,W=44\r\n2 1700000001.M2P2.host\r\n.\r\n\
+OK 1 1700000000.M1P1.host,S=39,W=44\r\n\
+OK top of message follows\r\nFrom: a@b\r\nSubject: one\r\n\r\n.\r\n\
+OK 44 octets\r\nFrom: a@b\r\nSubject: one\r\n\r\n..dot line\r\nbody\r\n.\r\n\
+OK message 2 deleted\r\n\
-ERR message 2 already deleted\r\n\
-ERR message 2 already deleted\r\n\
+OK 1 44\r\n\
+OK maildrop has 2 messages (68 octets)\r\n\
+OK message 1 deleted\r\n\
+OK \r\n\
-ERR unimplemented\r\n\
-ERR no such message\r\n\
-ERR syntax error: TOP msg n\r\n\
-ERR no such message\r\n\
+OK bye\r\n";
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        want,
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(o.status.code(), Some(0));
    // UPDATE: message 1 (deleted after RSET) is gone; 2 stays as it was.
    assert_eq!(crate::common::files(&md.join("new")), Vec::<String>::new());
    assert_eq!(
        crate::common::files(&md.join("cur")),
        vec![format!("{}:2,F", N2)]
    );
    // The size of message 2 was computed once and cached.
    assert_eq!(
        std::fs::read(md.join("pop3d-sizes")).unwrap(),
        format!("{} 24\n", N2).into_bytes()
    );
}

#[test]
fn pop3d_update_only_at_quit() {
    let md = two_messages("p3upd");
    // No QUIT: nothing changes.
    let o = pop3d(&md, b"RETR 1\r\nDELE 2\r\n", &[]);
    assert!(o.stdout.ends_with(b"+OK message 2 deleted\r\n"));
    assert_eq!(crate::common::files(&md.join("new")), vec![N1.to_string()]);
    assert_eq!(
        crate::common::files(&md.join("cur")),
        vec![format!("{}:2,F", N2)]
    );
    // RETR then QUIT: to cur/ with S; RETR of one with flags keeps them in order.
    let o = pop3d(&md, b"RETR 2\r\nRETR 1\r\nQUIT\r\n", &[]);
    assert!(o.stdout.ends_with(b".\r\n+OK bye\r\n"));
    assert_eq!(crate::common::files(&md.join("new")), Vec::<String>::new());
    assert_eq!(
        crate::common::files(&md.join("cur")),
        vec![format!("{}:2,S", N1), format!("{}:2,FS", N2)]
    );
    // UIDL is the same from cur/ as it was from new/.
    let o = pop3d(&md, b"UIDL\r\nQUIT\r\n", &[]);
    let want = format!("+OK 2 messages (68 octets)\r\n+OK unique-id listing follows\r\n1 {}\r\n2 {}\r\n.\r\n+OK bye\r\n", N1, N2);
    assert_eq!(String::from_utf8_lossy(&o.stdout), want);
}

#[test]
fn pop3d_lock_tmp_timeout_root() {
    let md = two_messages("p3lock");
    // A second session gets [IN-USE] and changes nothing.
    let lock = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(md.join("pop3d.lock"))
        .unwrap();
    chown_r(&md.join("pop3d.lock"));
    assert_eq!(
        unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&lock), libc::LOCK_EX) },
        0
    );
    let o = pop3d(&md, b"DELE 1\r\nQUIT\r\n", &[]);
    assert_eq!(
        o.stdout,
        b"-ERR [IN-USE] maildir in use by another session\r\n"
    );
    assert_eq!(o.status.code(), Some(0));
    drop(lock);
    assert_eq!(crate::common::files(&md.join("new")), vec![N1.to_string()]);
    // Stale tmp/ files (36 hours unread) go; fresh ones stay.
    put(&md, "tmp", "old", b"x");
    put(&md, "tmp", "fresh", b"x");
    let old = std::ffi::CString::new(md.join("tmp/old").to_str().unwrap()).unwrap();
    let t = libc::timeval {
        tv_sec: (pipemail::sys::now() - 37 * 3600) as i64,
        tv_usec: 0,
    };
    assert_eq!(unsafe { libc::utimes(old.as_ptr(), [t, t].as_ptr()) }, 0);
    // Idle timeout: stdin stays open and silent.
    let mut c = Command::new(bin("pop3d"));
    c.arg(&md)
        .env_clear()
        .env("POP3_TIMEOUT", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    if is_root() {
        c.uid(65534).gid(65534);
    }
    let mut child = c.spawn().unwrap();
    let t0 = std::time::Instant::now();
    let mut out = Vec::new();
    child.stdout.take().unwrap().read_to_end(&mut out).unwrap();
    assert_eq!(
        out,
        b"+OK 2 messages (68 octets)\r\n-ERR autologout; idle for too long\r\n"
    );
    assert!(t0.elapsed() < std::time::Duration::from_secs(5));
    assert_eq!(child.wait().unwrap().code(), Some(0));
    assert_eq!(
        crate::common::files(&md.join("tmp")),
        vec!["fresh".to_string()]
    );
    if is_root() {
        let o = run_fd3(
            &bin("pop3d"),
            &[md.to_str().unwrap()],
            &[],
            b"STAT\r\n",
            None,
            false,
        );
        assert_eq!(o.status.code(), Some(1));
        assert!(o.stdout.is_empty());
        assert!(o.stderr.ends_with(b"fatal: refusing to run as root\n"));
    }
}

/// A fake checkpassword program: records fd 3 (NULs as |) and accepts
/// only ann with password "pw" (or the APOP digest "d1g3st").
fn fake_checkprog(dir: &Path) -> PathBuf {
    let p = dir.join("fakecp");
    let log = dir.join("fd3.log");
    std::fs::write(
        &p,
        format!(
            "#!/bin/sh\ntr '\\000' '|' <&3 >> {log}\necho >> {log}\ncase \"$(tail -n 1 {log})\" in\nann\\|pw\\|*|ann\\|d1g3st\\|*) exec \"$@\";;\nerr*) exit 111;;\nkill*) kill -9 $$;;\nesac\nexit 1\n",
            log = log.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    chown_r(dir);
    p
}

/// A Maildir with two messages, the fake checkpassword program beside
/// it, and pop3-login's arguments to run them: (maildir, its directory,
/// arguments).
fn fake_login(tag: &str) -> (PathBuf, PathBuf, Vec<String>) {
    let md = two_messages(tag);
    let dir = md.parent().unwrap().to_path_buf();
    let fake = fake_checkprog(&dir);
    let args = [
        "mail.example.org".to_string(),
        fake.to_string_lossy().into_owned(),
        bin("pop3d").to_string_lossy().into_owned(),
        md.to_string_lossy().into_owned(),
    ];
    (md, dir, args.to_vec())
}

#[test]
fn pop3_login_over_pipes() {
    let (md, dir, args) = fake_login("p3login");
    let args: Vec<&str> = args.iter().map(|a| a.as_str()).collect();
    let pop3d = bin("pop3d");
    let input = b"NOOP\r\nPASS pw\r\nUSER\r\nUSER ann\r\nPASS wrong\r\nUSER err\r\nPASS x\r\nUSER kill\r\nPASS x\r\nAPOP ann\r\nCAPA\r\nAUTH\r\nAUTH LOGIN\r\nAUTH PLAIN\r\n*\r\nAUTH PLAIN\r\n!!!\r\nAUTH PLAIN Ym9iAGFubgBwdw==\r\nAUTH PLAIN AGFubgBwdw==\r\nSTAT\r\nQUIT\r\n";
    let o = run_fd3(
        &bin("pop3-login"),
        &args,
        &[("TCPREMOTEIP", "127.0.0.9")],
        input,
        None,
        true,
    );
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    let (greet, rest) = out.split_once("\r\n").unwrap();
    assert!(
        greet.starts_with("+OK <") && greet.ends_with("@mail.example.org>"),
        "{}",
        greet
    );
    let want = "-ERR authorization first\r\n\
-ERR USER first\r\n\
-ERR syntax error: USER name\r\n\
+OK \r\n\
-ERR [AUTH] authorization failed\r\n\
+OK \r\n\
-ERR [SYS/TEMP] temporary failure, try again later\r\n\
+OK \r\n\
-ERR [SYS/TEMP] aack, child crashed\r\n\
-ERR syntax error: APOP name digest\r\n\
+OK capability list follows\r\nTOP\r\nUIDL\r\nUSER\r\nSASL PLAIN\r\nRESP-CODES\r\nAUTH-RESP-CODE\r\nPIPELINING\r\nIMPLEMENTATION pipemail\r\n.\r\n\
+OK\r\nPLAIN\r\n.\r\n\
-ERR unsupported SASL mechanism\r\n\
+ \r\n-ERR authentication cancelled\r\n\
+ \r\n-ERR malformed base64\r\n\
-ERR [AUTH] authorization identity not allowed\r\n\
+OK 2 messages (68 octets)\r\n\
+OK 2 68\r\n\
+OK bye\r\n";
    assert_eq!(rest, want, "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(o.status.code(), Some(0));
    let log = std::fs::read_to_string(dir.join("fd3.log")).unwrap();
    let ts = &greet[4..];
    assert_eq!(
        log,
        format!("ann|wrong|{ts}|\nerr|x|{ts}|\nkill|x|{ts}|\nann|pw|{ts}|\n")
    );
    assert!(String::from_utf8_lossy(&o.stderr)
        .contains("info: login failed user=ann remote=127.0.0.9 status=1"));

    // APOP: the name and digest with the greeting's timestamp on fd 3.
    let o = run_fd3(
        &bin("pop3-login"),
        &args,
        &[],
        b"APOP ann d1g3st\r\nLIST 1\r\nQUIT\r\n",
        None,
        true,
    );
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    let (greet, rest) = out.split_once("\r\n").unwrap();
    assert_eq!(
        rest,
        "+OK 2 messages (68 octets)\r\n+OK 1 44\r\n+OK bye\r\n"
    );
    let log = std::fs::read_to_string(dir.join("fd3.log")).unwrap();
    assert!(log.ends_with(&format!("ann|d1g3st|{}|\n", &greet[4..])));
    // check-password has only hashes: APOP through it is refused.
    let uh = md.parent().unwrap();
    let h = auth_home("p3apop", uh);
    let cpw = bin("check-password");
    let args = [
        "mail.example.org",
        cpw.to_str().unwrap(),
        pop3d.to_str().unwrap(),
        "Maildir",
    ];
    let env = [
        ("PIPEMAIL_HOME", h.to_str().unwrap()),
        ("CHECKPASSWORD_DELAY", "10"),
    ];
    let o = run_fd3(
        &bin("pop3-login"),
        &args,
        &env,
        b"APOP ann 0123456789abcdef0123456789abcdef\r\nUSER ann\r\nPASS pw one\r\nSTAT\r\nQUIT\r\n",
        None,
        false,
    );
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(out.ends_with("\r\n-ERR [AUTH] authorization failed\r\n+OK \r\n+OK 2 messages (68 octets)\r\n+OK 2 68\r\n+OK bye\r\n"), "{}", out);
}

/// Issue 13: password guessing ends after three refused logins, as in
/// imap-login; temporary failures and syntax errors do not count.
#[test]
fn pop3_login_closes_after_three_failed_logins() {
    let (_, dir, args) = fake_login("p3fails");
    let args: Vec<&str> = args.iter().map(|a| a.as_str()).collect();
    let input = b"USER ann\r\nPASS a\r\nUSER err\r\nPASS x\r\nAPOP ann b\r\nAUTH PLAIN !!!\r\n\
AUTH PLAIN AGFubgBj\r\nUSER ann\r\nPASS pw\r\nSTAT\r\nQUIT\r\n";
    let o = run_fd3(
        &bin("pop3-login"),
        &args,
        &[("TCPREMOTEIP", "127.0.0.9")],
        input,
        None,
        true,
    );
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    let (_, rest) = out.split_once("\r\n").unwrap();
    assert_eq!(
        rest,
        "+OK \r\n-ERR [AUTH] authorization failed\r\n\
+OK \r\n-ERR [SYS/TEMP] temporary failure, try again later\r\n\
-ERR [AUTH] authorization failed\r\n\
-ERR malformed base64\r\n\
-ERR [AUTH] authorization failed; too many failures, closing connection\r\n"
    );
    assert_eq!(o.status.code(), Some(0));
    let log = std::fs::read_to_string(dir.join("fd3.log")).unwrap();
    assert_eq!(log.lines().count(), 4, "{}", log);
    assert!(String::from_utf8_lossy(&o.stderr)
        .contains("info: closed after too many failed logins remote=127.0.0.9"));
}

/// tcpserver on a free port running pop3-login check-password pop3d.
struct Server {
    child: std::process::Child,
    port: u16,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(h: &Path) -> Option<Server> {
    if Command::new("tcpserver")
        .arg("-?")
        .stderr(Stdio::null())
        .stdout(Stdio::null())
        .status()
        .is_err()
    {
        eprintln!("tcpserver missing: skipping the network test");
        return None;
    }
    let mut child = Command::new("tcpserver")
        .args(["-1", "-R", "-H", "-l", "localhost", "127.0.0.1", "0"])
        .arg(bin("pop3-login"))
        .arg("localhost")
        .arg(bin("check-password"))
        .arg(bin("pop3d"))
        .arg("Maildir")
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("PIPEMAIL_HOME", h)
        .env("CHECKPASSWORD_DELAY", "10")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut so = child.stdout.take().unwrap();
    let mut line = Vec::new();
    let mut b = [0u8; 1];
    while so.read(&mut b).unwrap() == 1 && b[0] != b'\n' {
        line.push(b[0]);
    }
    let port = String::from_utf8(line).unwrap().trim().parse().unwrap();
    Some(Server { child, port })
}

const POPLIB: &str = r#"
import poplib, sys
port, phase = int(sys.argv[1]), sys.argv[2]
p = poplib.POP3("127.0.0.1", port, timeout=10)
caps = p.capa()
assert "UIDL" in caps and "SASL" in caps, caps
p.user("ann"); p.pass_("pw one")
n, size = p.stat()
uidl = [x.decode() for x in p.uidl()[1]]
print("stat", n, size)
print("uidl", " ".join(uidl))
if phase == "1":
    resp, lines, octets = p.retr(1)
    sys.stdout.buffer.write(b"retr " + str(octets).encode() + b"\n")
    open(sys.argv[3], "wb").write(b"\r\n".join(lines) + b"\r\n")
    p.dele(1)
p.quit()
"#;

#[test]
fn pop3_over_tcp_with_poplib_and_curl() {
    let uh = user_home("p3tcp");
    let md = uh.join("Maildir");
    put(&md, "new", N1, M1);
    put(&md, "new", N2, M2);
    let h = auth_home("p3tcp", &uh);
    let Some(srv) = serve(&h) else { return };
    let port = srv.port.to_string();
    let got = uh.parent().unwrap().join("retr.out");
    let py = |phase: &str| {
        let o = Command::new("python3")
            .args(["-c", POPLIB, &port, phase, got.to_str().unwrap()])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8(o.stdout).unwrap()
    };
    let first = py("1");
    assert_eq!(
        first,
        format!("stat 2 68\nuidl 1 {} 2 {}\nretr 44\n", N1, N2)
    );
    // poplib strips the dot-stuffing: the lines are the delivered file's, with CRLF.
    assert_eq!(std::fs::read(&got).unwrap(), crlf(M1));
    let second = py("2");
    assert_eq!(second, format!("stat 1 24\nuidl 1 {}\n", N2));
    assert_eq!(
        crate::common::files(&md.join("cur")),
        vec![format!("{}:2,", N2)]
    );

    // curl: list, then retrieve (it logs in with AUTH PLAIN).
    let curl = |path: &str| {
        let o = Command::new("curl")
            .args(["-s", "-S", "--max-time", "10", "-u", "ann:pw one"])
            .arg(format!("pop3://127.0.0.1:{}/{}", port, path))
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "curl: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        o.stdout
    };
    assert_eq!(curl(""), b"1 24\r\n");
    assert_eq!(curl("1"), crlf(M2));
    // A wrong password is refused.
    let o = Command::new("curl")
        .args(["-s", "-u", "ann:nope"])
        .arg(format!("pop3://127.0.0.1:{}/", port))
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(67),
        "curl exit code for a failed login"
    );
    drop(srv);
}

#[test]
fn pop3d_lists_many_messages_fast() {
    let md = user_home("p3many").join("Maildir");
    let n = 20000;
    for i in 0..n {
        std::fs::write(
            md.join("new")
                .join(format!("{}.M{}P1.host,S=10,W=12", 1700000000 + i, i)),
            b"",
        )
        .unwrap();
    }
    chown_r(&md);
    let t = std::time::Instant::now();
    let o = pop3d(&md, b"STAT\r\nLIST\r\nUIDL\r\n", &[]);
    let el = t.elapsed();
    assert!(o.stdout.starts_with(
        format!(
            "+OK {} messages ({} octets)\r\n+OK {} {}\r\n",
            n,
            n * 12,
            n,
            n * 12
        )
        .as_bytes()
    ));
    assert!(el < std::time::Duration::from_secs(3), "{:?}", el);
}

#[test]
fn pop3_over_tcp_with_fetchmail() {
    if Command::new("fetchmail")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_err()
    {
        eprintln!("fetchmail missing: skipping");
        return;
    }
    let uh = user_home("p3fm");
    let md = uh.join("Maildir");
    put(&md, "new", N1, M1);
    let h = auth_home("p3fm", &uh);
    let Some(srv) = serve(&h) else { return };
    let dir = uh.parent().unwrap();
    let out = dir.join("fetched");
    let rc = dir.join("fetchmailrc");
    std::fs::write(
        &rc,
        format!(
            "poll 127.0.0.1 service {} protocol pop3 user \"ann\" password \"pw one\" sslproto \"\" mda \"cat > {}\" no keep\n",
            srv.port,
            out.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&rc, std::fs::Permissions::from_mode(0o600)).unwrap();
    let o = Command::new("fetchmail")
        .arg("-f")
        .arg(&rc)
        .args(["--nosyslog", "--timeout", "10"])
        .env("FETCHMAILHOME", dir)
        .env("HOME", dir)
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    // fetchmail adds its Received: line and hands LF lines to the MDA.
    let got = std::fs::read(&out).unwrap();
    assert!(got.ends_with(M1), "{}", String::from_utf8_lossy(&got));
    assert!(got.starts_with(b"Received: "));
    assert_eq!(crate::common::files(&md.join("new")), Vec::<String>::new());
    assert_eq!(crate::common::files(&md.join("cur")), Vec::<String>::new());
    drop(srv);
}

//! LMTP: deliver-lmtp against a scripted peer (exact bytes, every reply
//! class, a peer that hangs up) over a unix socket and TCP, from a dot-file
//! of a virtual domain, and against Dovecot's LMTP server from Debian.

use crate::common::{is_root, run, scratch};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Answers one connection with `replies` in turn (the greeting first, then
/// one per command; after a 354, one for the data up to its dot); hangs up
/// when they run out. Returns every byte the client sent.
fn serve<S: std::io::Read + Write>(mut s: S, replies: Vec<&'static str>) -> Vec<u8> {
    let mut got = Vec::new();
    let mut r = replies.into_iter();
    let say = |s: &mut S, t: &str| s.write_all(format!("{}\r\n", t).as_bytes()).is_ok();
    let Some(g) = r.next() else { return got };
    say(&mut s, g);
    let mut data = false;
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = {
            let mut br = BufReader::with_capacity(1, &mut s);
            br.read_until(b'\n', &mut line).unwrap_or(0)
        };
        if n == 0 {
            break;
        }
        got.extend_from_slice(&line);
        if data && line != b".\r\n" {
            continue;
        }
        let Some(t) = r.next() else { break };
        data = t.starts_with("354");
        if !say(&mut s, t) {
            break;
        }
    }
    got
}

fn unix_peer(dir: &Path, replies: Vec<&'static str>) -> (PathBuf, JoinHandle<Vec<u8>>) {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let p = dir.join(format!("lmtp.{}", n));
    let _ = std::fs::remove_file(&p);
    let l = UnixListener::bind(&p).unwrap();
    // deliveries as the mail user must be able to connect
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o666)).unwrap();
    let h = std::thread::spawn(move || {
        let (s, _) = l.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        serve(s, replies)
    });
    (p, h)
}

fn tcp_peer(replies: Vec<&'static str>) -> (u16, JoinHandle<Vec<u8>>) {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let h = std::thread::spawn(move || {
        let (s, _) = l.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        serve(s, replies)
    });
    (port, h)
}

const LHLO: &str = "250-peer.test\r\n250-PIPELINING\r\n250-ENHANCEDSTATUSCODES\r\n250-SIZE 1000000\r\n250 8BITMIME";
const MSG: &[u8] = b"Subject: t\n\n.dot line\n\xe9t\xe9\n";

fn lmtp(target: &str, env: &[(&str, &str)], args: &[&str]) -> Output {
    let h = scratch("lmtp-home");
    std::fs::create_dir_all(h.join("control")).unwrap();
    std::fs::write(h.join("control/me"), "mx.example.org\n").unwrap();
    let hs = h.to_str().unwrap();
    let mut e = vec![
        ("PIPEMAIL_HOME", hs),
        ("SENDER", "s@a.test"),
        ("RECIPIENT", "joe@b.test"),
    ];
    e.extend_from_slice(env);
    let mut a = args.to_vec();
    a.push(target);
    run("deliver-lmtp", &a, &e, MSG)
}

fn transcript(head: &str) -> String {
    format!(
        "LHLO mx.example.org\r\nMAIL FROM:<s@a.test> SIZE={} BODY=8BITMIME\r\n{}",
        MSG.len(),
        head
    )
}

const RCPT: &str = "RCPT TO:<joe@b.test>\r\n";

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn scripted_peer_every_reply_class() {
    let d = scratch("lmtp-peer");
    let ok = vec![
        "220 peer.test LMTP",
        LHLO,
        "250 2.1.0 ok",
        "250 2.1.5 ok",
        "354 go",
        "250 2.0.0 <joe@b.test> saved",
        "221 bye",
    ];
    let (p, h) = unix_peer(&d, ok.clone());
    let o = lmtp(p.to_str().unwrap(), &[], &[]);
    let got = h.join().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    // exact bytes: CRLF, dot-stuffing, the 8-bit body declared
    let mut want = transcript(RCPT).into_bytes();
    want.extend_from_slice(b"DATA\r\nSubject: t\r\n\r\n..dot line\r\n\xe9t\xe9\r\n.\r\nQUIT\r\n");
    assert_eq!(text(&got), text(&want));
    assert_eq!(got, want);
    assert_eq!(
        text(&o.stderr),
        format!("deliver-lmtp: info: LMTP server {} took the message: Remote host said: 250 2.0.0 <joe@b.test> saved\n", p.display())
    );

    // per-recipient results: 5xx bounces (100), 4xx defers (111)
    // what the client sent before it gave up: never a command after a refusal
    let mail = transcript("").into_bytes();
    let rcpt = transcript(RCPT).into_bytes();
    let data = [
        &rcpt[..],
        b"DATA\r\nSubject: t\r\n\r\n..dot line\r\n\xe9t\xe9\r\n.\r\n",
    ]
    .concat();
    let lhlo = b"LHLO mx.example.org\r\n".to_vec();
    let cases: Vec<(Vec<&'static str>, i32, &str, &[u8])> = vec![
        (
            vec!["220 p", LHLO, "250 ok", "550 5.1.1 no such user"],
            100,
            "refused the recipient: Remote host said: 550 5.1.1 no such user",
            &rcpt,
        ),
        (
            vec!["220 p", LHLO, "250 ok", "452 4.2.2 over quota"],
            111,
            "refused the recipient: Remote host said: 452 4.2.2 over quota",
            &rcpt,
        ),
        (
            vec![
                "220 p",
                LHLO,
                "250 ok",
                "250 ok",
                "354 go",
                "552 5.2.2 <joe@b.test> mailbox full",
            ],
            100,
            "did not take the message: Remote host said: 552 5.2.2 <joe@b.test> mailbox full",
            &data,
        ),
        (
            vec![
                "220 p",
                LHLO,
                "250 ok",
                "250 ok",
                "354 go",
                "451 4.3.0 <joe@b.test> try later",
            ],
            111,
            "did not take the message: Remote host said: 451 4.3.0 <joe@b.test> try later",
            &data,
        ),
        (
            vec!["220 p", LHLO, "250 ok", "250 ok", "354 go"],
            111,
            "did not take the message: connection closed",
            &data,
        ),
        (
            vec!["220 p", LHLO, "553 5.1.8 bad sender"],
            100,
            "refused the sender: Remote host said: 553 5.1.8 bad sender",
            &mail,
        ),
        (
            vec!["554 go away"],
            111,
            "greeting failed: Remote host said: 554 go away",
            b"",
        ),
        (
            vec!["220 p", "500 what is LHLO"],
            111,
            "refused LHLO: Remote host said: 500 what is LHLO",
            &lhlo,
        ),
    ];
    for (replies, code, why, sent) in cases {
        let (p, h) = unix_peer(&d, replies);
        let o = lmtp(p.to_str().unwrap(), &[], &[]);
        assert_eq!(text(&h.join().unwrap()), text(sent), "{}", why);
        assert_eq!(o.status.code(), Some(code), "{}", text(&o.stderr));
        assert_eq!(
            text(&o.stderr),
            format!("deliver-lmtp: fatal: LMTP server {} {}\n", p.display(), why)
        );
    }

    // TCP, with -f and -r instead of $SENDER and $RECIPIENT; no SIZE or
    // 8BITMIME offered, so none is sent
    let (port, h) = tcp_peer(vec![
        "220 p", "250 p", "250 ok", "250 ok", "354 go", "250 ok", "221 bye",
    ]);
    let t = format!("127.0.0.1:{}", port);
    let o = lmtp(&t, &[], &["-f", "", "-r", "ann@c.test"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let got = text(&h.join().unwrap());
    assert!(
        got.starts_with("LHLO mx.example.org\r\nMAIL FROM:<>\r\nRCPT TO:<ann@c.test>\r\nDATA\r\n"),
        "{}",
        got
    );

    // nothing listening: temporary
    let o = lmtp(d.join("none").to_str().unwrap(), &[], &[]);
    assert_eq!(o.status.code(), Some(111));
    assert!(
        text(&o.stderr).ends_with("/none unreachable: no such file or directory\n"),
        "{}",
        text(&o.stderr)
    );
    // usage
    for a in [&["relative"][..], &[][..], &["-t", "0", "/x"][..]] {
        let o = run(
            "deliver-lmtp",
            a,
            &[("SENDER", "a"), ("RECIPIENT", "b")],
            b"",
        );
        assert_eq!(o.status.code(), Some(100), "{:?}", a);
    }
    let o = run("deliver-lmtp", &["/x"], &[], b"");
    assert_eq!(o.status.code(), Some(100));
}

#[test]
fn dot_file_of_a_virtual_domain() {
    let t = crate::deliver::T::new("lmtp-vd");
    let home = t.user("vd");
    crate::common::control(&t.home, "virtualdomains", "lmtp.test:vd\n");
    let d = scratch("lmtp-vd-sock");
    std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755)).unwrap();
    let ok = vec![
        "220 p",
        LHLO,
        "250 ok",
        "250 ok",
        "354 go",
        "250 2.0.0 saved",
        "221 bye",
    ];
    let (p, h) = unix_peer(&d, ok);
    let line = format!(
        "|{} -r \"$DEFAULT@$HOST\" {}\n",
        crate::common::bin("deliver-lmtp").display(),
        p.display()
    );
    crate::deliver::put(&home.join(".qmail-default"), line.as_bytes(), 0o644);
    let o = t.deliver("s@a.test", "vd-joe@lmtp.test", b"Subject: v\n\nhi\n");
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}{}",
        text(&o.stdout),
        text(&o.stderr)
    );
    let got = text(&h.join().unwrap());
    assert!(
        got.starts_with(&format!("LHLO mail.example.org\r\nMAIL FROM:<s@a.test> SIZE=15\r\nRCPT TO:<joe@lmtp.test>\r\nDATA\r\nSubject: v\r\n\r\nhi\r\n.\r\nQUIT\r\n")),
        "{}",
        got
    );
}

// ---------------------------------------------------------------------------
// Dovecot's LMTP server, run as the mail user with a private config.

struct Dovecot {
    child: Child,
    dir: PathBuf,
    port: u16,
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        // the master stops its children on SIGTERM
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn dovecot() -> Option<Dovecot> {
    if !Path::new("/usr/sbin/dovecot").exists() || !Path::new("/usr/lib/dovecot/lmtp").exists() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "dovecot-lmtpd is not installed"
        );
        eprintln!("skipped: dovecot-lmtpd is not installed");
        return None;
    }
    let d = scratch("dovecot");
    let uid = crate::deliver::mail_uid();
    let user = if is_root() {
        "nobody".to_string()
    } else {
        std::env::var("USER").unwrap_or_else(|_| "nobody".into())
    };
    let group = if is_root() {
        "nogroup".to_string()
    } else {
        user.clone()
    };
    let port = free_port();
    for s in ["run", "state", "mail"] {
        std::fs::create_dir_all(d.join(s)).unwrap();
    }
    let conf = format!(
        "base_dir = {d}/run\nstate_dir = {d}/state\nlog_path = {d}/dovecot.log\n\
         instance_name = pipemail-test-{port}\nprotocols = lmtp\nssl = no\n\
         default_login_user = {user}\ndefault_internal_user = {user}\ndefault_internal_group = {group}\n\
         mail_location = maildir:~/Maildir\n\
         service lmtp {{\n  unix_listener lmtp {{\n    mode = 0666\n  }}\n  inet_listener lmtp {{\n    address = 127.0.0.1\n    port = {port}\n  }}\n}}\n\
         service anvil {{\n  chroot =\n}}\n\
         passdb {{\n  driver = passwd-file\n  args = {d}/users\n}}\n\
         userdb {{\n  driver = passwd-file\n  args = {d}/users\n}}\n",
        d = d.display(), port = port, user = user, group = group
    );
    std::fs::write(d.join("dovecot.conf"), conf).unwrap();
    std::fs::write(
        d.join("users"),
        format!("joe::{u}:{u}::{d}/mail/joe::\n", u = uid, d = d.display()),
    )
    .unwrap();
    if is_root() {
        let o = Command::new("chown")
            .args(["-R", "65534:65534"])
            .arg(&d)
            .status()
            .unwrap();
        assert!(o.success());
    }
    let mut c = if is_root() {
        let mut c = Command::new("setpriv");
        c.args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "/usr/sbin/dovecot",
        ]);
        c
    } else {
        Command::new("/usr/sbin/dovecot")
    };
    let child = c
        .args(["-F", "-c"])
        .arg(d.join("dovecot.conf"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let dc = Dovecot {
        child,
        dir: d.clone(),
        port,
    };
    let t = Instant::now();
    while !(d.join("run/lmtp").exists()
        && std::net::TcpStream::connect(("127.0.0.1", port)).is_ok())
    {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "dovecot did not start: {}",
            std::fs::read_to_string(d.join("dovecot.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Some(dc)
}

#[test]
fn against_dovecot_lmtp() {
    let Some(dc) = dovecot() else { return };
    let sock = dc.dir.join("run/lmtp");
    let env = |r: &'static str| vec![("RECIPIENT", r)];
    let o = lmtp(sock.to_str().unwrap(), &env("joe"), &[]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert!(
        text(&o.stderr).contains(" took the message: Remote host said: 250 2.0.0 <joe> "),
        "{}",
        text(&o.stderr)
    );
    let new = dc.dir.join("mail/joe/Maildir/new");
    let files = crate::common::files(&new);
    assert_eq!(files.len(), 1, "{:?}", files);
    let m = std::fs::read(new.join(&files[0])).unwrap();
    assert!(
        text(&m).starts_with("Return-Path: <s@a.test>\nDelivered-To: joe\n"),
        "{}",
        text(&m)
    );
    assert!(
        m.ends_with(b"Subject: t\n\n.dot line\n\xe9t\xe9\n"),
        "{}",
        text(&m)
    );
    // over TCP
    let o = lmtp(&format!("127.0.0.1:{}", dc.port), &env("joe"), &[]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert_eq!(crate::common::files(&new).len(), 2);
    // an unknown user bounces
    let o = lmtp(sock.to_str().unwrap(), &env("nosuch"), &[]);
    assert_eq!(o.status.code(), Some(100));
    assert!(
        text(&o.stderr).ends_with("refused the recipient: Remote host said: 550 5.1.1 <nosuch> User doesn't exist: nosuch\n"),
        "{}",
        text(&o.stderr)
    );
}

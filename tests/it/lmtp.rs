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
    assert_eq!(
        got,
        "LHLO mail.example.org\r\nMAIL FROM:<s@a.test> SIZE=15\r\nRCPT TO:<joe@lmtp.test>\r\nDATA\r\nSubject: v\r\n\r\nhi\r\n.\r\nQUIT\r\n"
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
    // as root: nobody/nogroup (65534); otherwise ourselves
    let id = |flag: &str| -> String {
        let o = Command::new("id").arg(flag).output().unwrap();
        text(&o.stdout).trim().to_string()
    };
    let (user, group) = if is_root() {
        ("nobody".to_string(), "nogroup".to_string())
    } else {
        (id("-un"), id("-gn"))
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
        format!(
            "joe::{u}:{u}::{d}/mail/joe::\nbroken::{u}:{u}::{d}/ro/broken::\n",
            u = uid,
            d = d.display()
        ),
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
    // a home the mail user cannot create: Dovecot answers 451 after DATA
    std::fs::create_dir(d.join("ro")).unwrap();
    if is_root() {
        std::os::unix::fs::chown(d.join("ro"), Some(0), Some(0)).unwrap();
    }
    std::fs::set_permissions(d.join("ro"), std::fs::Permissions::from_mode(0o555)).unwrap();
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
    // a mailbox Dovecot cannot write: deferred
    let o = lmtp(sock.to_str().unwrap(), &env("broken"), &[]);
    assert_eq!(o.status.code(), Some(111));
    assert!(
        text(&o.stderr)
            .contains(" did not take the message: Remote host said: 451 4.2.0 <broken> "),
        "{}",
        text(&o.stderr)
    );
    // an unknown user bounces
    let o = lmtp(sock.to_str().unwrap(), &env("nosuch"), &[]);
    assert_eq!(o.status.code(), Some(100));
    assert!(
        text(&o.stderr).ends_with("refused the recipient: Remote host said: 550 5.1.1 <nosuch> User doesn't exist: nosuch\n"),
        "{}",
        text(&o.stderr)
    );
}

// ---------------------------------------------------------------------------
// lmtp-recv: one session with mixed recipients, exact bytes.

/// Runs lmtp-recv as the mail user (setpriv when we are root: it refuses
/// to run as root).
fn lmtp_recv(home: &Path, input: &[u8]) -> Output {
    let h = home.to_str().unwrap();
    let prog = crate::common::bin("lmtp-recv");
    let env = [("PIPEMAIL_HOME", h)];
    if is_root() {
        let p = prog.to_str().unwrap();
        run(
            "/usr/bin/setpriv",
            &["--reuid=65534", "--regid=65534", "--clear-groups", p],
            &env,
            input,
        )
    } else {
        run("lmtp-recv", &[], &env, input)
    }
}

#[test]
fn lmtp_recv_replies_per_recipient_after_the_dot() {
    let t = crate::deliver::T::new("lmtp-recv");
    let joe = t.user("joe");
    let ann = t.user("ann");
    let bob = t.user("bob");
    crate::deliver::put(&ann.join(".qmail"), b"|exit 111\n", 0o644);
    crate::deliver::put(
        &bob.join(".qmail"),
        b"|echo mailbox disabled; exit 100\n",
        0o644,
    );
    let a = t.home.join("users/assign");
    let text0 = std::fs::read_to_string(&a).unwrap().replace(".\n", "");
    std::fs::write(
        &a,
        format!("{}=other:other:1:1:/nonexistent:::\n.\n", text0),
    )
    .unwrap();
    let input = b"LHLO client.test\r\nMAIL FROM:<s@a.test> BODY=8BITMIME SIZE=40\r\n\
RCPT TO:<joe@mail.example.org>\r\nRCPT TO:<nosuch@mail.example.org>\r\n\
RCPT TO:<ann@mail.example.org>\r\nRCPT TO:<x@remote.test>\r\nRCPT TO:<bob@mail.example.org>\r\n\
RCPT TO:<other@mail.example.org>\r\nDATA\r\nSubject: lmtp\r\n\r\n..dot\r\nhi \xe9\r\n.\r\nQUIT\r\n";
    let o = lmtp_recv(&t.home, input);
    let want = "220 mail.example.org LMTP\r\n\
250-mail.example.org\r\n250-PIPELINING\r\n250-ENHANCEDSTATUSCODES\r\n250-8BITMIME\r\n250 SIZE 10240000\r\n\
250 2.1.0 ok\r\n250 2.1.5 ok\r\n\
550 5.1.1 <nosuch@mail.example.org> no such user here\r\n\
250 2.1.5 ok\r\n\
550 5.1.2 <x@remote.test> not a local address\r\n\
250 2.1.5 ok\r\n\
451 4.3.5 <other@mail.example.org> mailbox of another uid; not delivered by this lmtp-recv\r\n\
354 go ahead, end with <CRLF>.<CRLF>\r\n\
250 2.0.0 <joe@mail.example.org> delivered\r\n\
451 4.3.0 <ann@mail.example.org> Program exited 111. (#4.3.0)\r\n\
550 5.0.0 <bob@mail.example.org> mailbox disabled\r\n\
221 2.0.0 mail.example.org closing connection\r\n";
    assert_eq!(text(&o.stdout), want, "stderr: {}", text(&o.stderr));
    assert_eq!(o.status.code(), Some(0));
    let new = joe.join("Maildir/new");
    let f = crate::common::files(&new);
    assert_eq!(f.len(), 1);
    let m = std::fs::read(new.join(&f[0])).unwrap();
    let s = text(&m);
    assert!(
        s.starts_with("Return-Path: <s@a.test>\nDelivered-To: joe@mail.example.org\nReceived: from client.test (local)\n\tby mail.example.org with LMTP; "),
        "{}",
        s
    );
    assert!(m.ends_with(b"\nSubject: lmtp\n\n.dot\nhi \xe9\n"), "{}", s);
    // one log line per recipient
    let e = text(&o.stderr);
    assert!(e.contains(": info: result rcpt=<joe@mail.example.org> from=<s@a.test> remote=local: 250 2.0.0 <joe@mail.example.org> delivered\n"), "{}", e);

    // a bare LF refuses the message for every recipient; nothing delivered
    let input = b"LHLO c\r\nMAIL FROM:<>\r\nRCPT TO:<joe@mail.example.org>\r\nRCPT TO:<ann@mail.example.org>\r\nDATA\r\nbare\nlf\r\n.\r\nQUIT\r\n";
    let o = lmtp_recv(&t.home, input);
    let s = text(&o.stdout);
    assert!(
        s.ends_with(
            "354 go ahead, end with <CRLF>.<CRLF>\r\n\
550 5.6.2 <joe@mail.example.org> message refused: bare CR or LF in data\r\n\
550 5.6.2 <ann@mail.example.org> message refused: bare CR or LF in data\r\n\
221 2.0.0 mail.example.org closing connection\r\n"
        ),
        "{}",
        s
    );
    assert_eq!(crate::common::files(&new).len(), 1);
    // HELO is not LMTP; MAIL before LHLO; DATA without recipients
    let o = lmtp_recv(
        &t.home,
        b"HELO x\r\nMAIL FROM:<>\r\nLHLO x\r\nMAIL FROM:<>\r\nDATA\r\nQUIT\r\n",
    );
    let s = text(&o.stdout);
    assert!(
        s.contains("\r\n500 5.5.1 this is LMTP: say LHLO\r\n503 5.5.1 send LHLO first\r\n250-"),
        "{}",
        s
    );
    assert!(s.ends_with("250 2.1.0 ok\r\n503 5.5.1 no valid recipients\r\n221 2.0.0 mail.example.org closing connection\r\n"), "{}", s);
    if is_root() {
        let o = run(
            "lmtp-recv",
            &[],
            &[("PIPEMAIL_HOME", t.home.to_str().unwrap())],
            b"",
        );
        assert_eq!(o.status.code(), Some(111));
        assert_eq!(o.stdout, b"421 4.3.0 lmtp-recv does not run as root\r\n");
    }
}

/// The chain: tcp-serve -> lmtp-recv, with Python's smtplib.LMTP and with
/// deliver-lmtp as clients.
#[test]
fn lmtp_recv_under_tcp_serve_with_real_clients() {
    let t = crate::deliver::T::new("lmtp-chain");
    let joe = t.user("joe");
    let ann = t.user("ann");
    crate::deliver::put(&ann.join(".qmail"), b"|exit 111\n", 0o644);
    let h = t.home.to_str().unwrap();
    let prog = crate::common::bin("lmtp-recv");
    let user: &[&str] = if is_root() { &["-u", "nobody"] } else { &[] };
    let srv = crate::tcpserve::start(user, &[prog.to_str().unwrap()], &[("PIPEMAIL_HOME", h)]);
    let py = format!(
        r#"
import smtplib
s = smtplib.LMTP("127.0.0.1", {})
print(s.ehlo("py.test")[0], s.does_esmtp, s.has_extn("pipelining"), s.has_extn("enhancedstatuscodes"))
print(s.mail("s@a.test"))
for r in ["joe@mail.example.org", "nosuch@mail.example.org", "ann@mail.example.org"]:
    print(s.rcpt(r))
# smtplib.LMTP sends LHLO for ehlo(); after the dot one reply per
# accepted recipient: data() reads the first, getreply() the next
print(s.data(b"Subject: py\r\n\r\nfrom python\r\n"))
print(s.getreply())
print(s.quit())
"#,
        srv.port
    );
    let o = Command::new("python3").args(["-c", &py]).output().unwrap();
    assert_eq!(
        text(&o.stdout),
        "250 True True True\n(250, b'2.1.0 ok')\n(250, b'2.1.5 ok')\n\
(550, b'5.1.1 <nosuch@mail.example.org> no such user here')\n(250, b'2.1.5 ok')\n\
(250, b'2.0.0 <joe@mail.example.org> delivered')\n\
(451, b'4.3.0 <ann@mail.example.org> Program exited 111. (#4.3.0)')\n\
(221, b'2.0.0 mail.example.org closing connection')\n",
        "{}",
        text(&o.stderr)
    );
    let new = joe.join("Maildir/new");
    wait(|| crate::common::files(&new).len() == 1);
    // deliver-lmtp against lmtp-recv
    let target = format!("127.0.0.1:{}", srv.port);
    let o = lmtp(&target, &[("RECIPIENT", "joe@mail.example.org")], &[]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert!(text(&o.stderr).ends_with(
        "took the message: Remote host said: 250 2.0.0 <joe@mail.example.org> delivered\n"
    ));
    assert_eq!(crate::common::files(&new).len(), 2);
    let o = lmtp(&target, &[("RECIPIENT", "ann@mail.example.org")], &[]);
    assert_eq!(o.status.code(), Some(111));
    let o = lmtp(&target, &[("RECIPIENT", "nosuch@mail.example.org")], &[]);
    assert_eq!(o.status.code(), Some(100));
    assert!(text(&o.stderr).ends_with("refused the recipient: Remote host said: 550 5.1.1 <nosuch@mail.example.org> no such user here\n"));
}

fn wait(mut f: impl FnMut() -> bool) {
    let t = Instant::now();
    while !f() {
        assert!(t.elapsed() < Duration::from_secs(10), "timed out");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// local-spawn -u nobody lmtp-recv, started as root: the session runs as
/// nobody and local-spawn delivers as each recipient's own uid (the
/// message passed as a descriptor), never as root.
#[test]
fn lmtp_recv_under_local_spawn_delivers_as_each_uid() {
    if !is_root() {
        eprintln!("skipped: needs root (CI runs as root)");
        return;
    }
    let t = crate::deliver::T::new("lmtp-helper");
    let joe = t.user("joe"); // uid 65534
                             // an account of another uid (daemon, 1) and one of root
    let base = joe.parent().unwrap().to_path_buf();
    let dh = base.join("dmn");
    for d in ["", "Maildir", "Maildir/tmp", "Maildir/new", "Maildir/cur"] {
        std::fs::create_dir_all(dh.join(d)).unwrap();
        std::os::unix::fs::chown(dh.join(d), Some(1), Some(1)).unwrap();
    }
    let a = t.home.join("users/assign");
    let t0 = std::fs::read_to_string(&a).unwrap().replace(".\n", "");
    std::fs::write(
        &a,
        format!(
            "{}=dmn:daemon:1:1:{}:::\n=boss:root:0:0:/root:::\n.\n",
            t0,
            dh.display()
        ),
    )
    .unwrap();
    let h = t.home.to_str().unwrap();
    let prog = crate::common::bin("lmtp-recv");
    let env = [("PIPEMAIL_HOME", h)];
    let input = b"LHLO c\r\nMAIL FROM:<s@a.test>\r\nRCPT TO:<joe@mail.example.org>\r\n\
RCPT TO:<dmn@mail.example.org>\r\nRCPT TO:<boss@mail.example.org>\r\nDATA\r\nSubject: u\r\n\r\nhi\r\n.\r\nQUIT\r\n";
    let ls = crate::common::bin("local-spawn");
    let p = prog.to_str().unwrap();
    let o = run(ls.to_str().unwrap(), &["-u", "nobody", p], &env, input);
    let out = text(&o.stdout);
    assert!(
        out.ends_with(
            "354 go ahead, end with <CRLF>.<CRLF>\r\n\
250 2.0.0 <joe@mail.example.org> delivered\r\n\
250 2.0.0 <dmn@mail.example.org> delivered\r\n\
451 4.3.0 <boss@mail.example.org> refusing to deliver as root (#4.3.0)\r\n\
221 2.0.0 mail.example.org closing connection\r\n"
        ),
        "{}{}",
        out,
        text(&o.stderr)
    );
    assert_eq!(o.status.code(), Some(0));
    use std::os::unix::fs::MetadataExt;
    for (dir, uid) in [
        (joe.join("Maildir/new"), 65534),
        (dh.join("Maildir/new"), 1),
    ] {
        let f = crate::common::files(&dir);
        assert_eq!(f.len(), 1, "{:?}", dir);
        assert_eq!(std::fs::metadata(dir.join(&f[0])).unwrap().uid(), uid);
    }
    // lmtp-recv itself never runs as root, nor under local-spawn -u root
    let o = run(p, &[], &env, b"");
    assert_eq!(o.status.code(), Some(111));
    assert_eq!(o.stdout, b"421 4.3.0 lmtp-recv does not run as root\r\n");
    let o = run(ls.to_str().unwrap(), &["-u", "root", p], &env, b"");
    assert_eq!(o.status.code(), Some(100));
}

/// lmtp-recv on a unix socket, as a systemd socket with Accept=yes runs
/// it (the connection on fds 0 and 1), with deliver-lmtp as the client.
#[test]
fn lmtp_recv_on_a_unix_socket() {
    let t = crate::deliver::T::new("lmtp-unix");
    let joe = t.user("joe");
    let d = scratch("lmtp-unix-sock");
    std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755)).unwrap();
    let sock = d.join("lmtp");
    let l = UnixListener::bind(&sock).unwrap();
    std::fs::set_permissions(&sock, std::fs::Permissions::from_mode(0o666)).unwrap();
    let home = t.home.clone();
    let server = std::thread::spawn(move || {
        let (c, _) = l.accept().unwrap();
        let prog = crate::common::bin("lmtp-recv");
        let mut cmd = if is_root() {
            let mut c = Command::new("/usr/bin/setpriv");
            c.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
                .arg(&prog);
            c
        } else {
            Command::new(&prog)
        };
        let fd = std::os::fd::OwnedFd::from(c);
        let st = cmd
            .env_clear()
            .env("PIPEMAIL_HOME", &home)
            .stdin(Stdio::from(fd.try_clone().unwrap()))
            .stdout(Stdio::from(fd))
            .stderr(Stdio::null())
            .status()
            .unwrap();
        st.code()
    });
    let o = lmtp(
        sock.to_str().unwrap(),
        &[("RECIPIENT", "joe@mail.example.org")],
        &[],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert!(text(&o.stderr).ends_with(
        " took the message: Remote host said: 250 2.0.0 <joe@mail.example.org> delivered\n"
    ));
    assert_eq!(server.join().unwrap(), Some(0));
    let new = joe.join("Maildir/new");
    let f = crate::common::files(&new);
    assert_eq!(f.len(), 1);
    let m = text(&std::fs::read(new.join(&f[0])).unwrap());
    assert!(
        m.contains("\nReceived: from mx.example.org (local)\n\tby mail.example.org with LMTP; "),
        "{}",
        m
    );
}

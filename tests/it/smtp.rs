//! smtp-recv over pipes: exact replies, what reaches the queue, relay
//! control, the DATA state machine against smuggling, AUTH and timeouts.

use crate::common::*;
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::OnceLock;

const GREET: &str = "220 mail.example.org ESMTP\r\n";
const EHLO: &str =
    "250-mail.example.org\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250-8BITMIME\r\n\
250-ENHANCEDSTATUSCODES\r\n250-ETRN\r\n250-HELP\r\n250 SMTPUTF8\r\n";
const BYE: &str = "221 2.0.0 mail.example.org closing connection\r\n";

/// Scripts shared by every test: written once, before anything runs them.
fn fakes() -> &'static PathBuf {
    static D: OnceLock<PathBuf> = OnceLock::new();
    D.get_or_init(|| {
        let d = scratch("smtp-fakes");
        // A qmail-queue stand-in: records message and envelope in $FAKEQ,
        // exits with the code in $FAKEQ/code (kill: dies by SIGKILL).
        std::fs::write(
            d.join("fakeq"),
            "#!/bin/sh\nD=$FAKEQ\nn=$$\ncat > $D/q.$n.tmp\ncat <&1 > $D/e.$n.tmp\n\
             code=$(cat $D/code 2>/dev/null || echo 0)\n\
             case $code in kill) kill -9 $$ ;; 82) printf 'Dsorry (#5.7.1)' >&6 ;; esac\n\
             if [ \"$code\" = 0 ]; then mv $D/e.$n.tmp $D/q.$n.env; mv $D/q.$n.tmp $D/q.$n.msg; fi\nexit $code\n",
        )
        .unwrap();
        // A checkpassword stand-in: alice/secret is good, tempuser is a
        // temporary failure, everything else is bad.
        std::fs::write(
            d.join("checkpw"),
            "#!/bin/sh\nin=$(tr '\\0' '\\n' <&3)\nu=$(printf '%s\\n' \"$in\" | sed -n 1p)\n\
             p=$(printf '%s\\n' \"$in\" | sed -n 2p)\n\
             [ \"$u\" = tempuser ] && exit 111\n\
             [ \"$u\" = alice ] && [ \"$p\" = secret ] && exec \"$@\"\nexit 1\n",
        )
        .unwrap();
        for f in ["fakeq", "checkpw"] {
            let st = Command::new("chmod").arg("755").arg(d.join(f)).status().unwrap();
            assert!(st.success());
            // Another thread's fork may briefly hold the file open for
            // writing (ETXTBSY); once it ran, nobody can hold it any more.
            for _ in 0..100 {
                let r = Command::new(d.join(f)).env("FAKEQ", "/nonexistent").stdin(Stdio::null()).output();
                match r {
                    Ok(_) => break,
                    Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) => {
                        std::thread::sleep(std::time::Duration::from_millis(10))
                    }
                    Err(e) => panic!("cannot run {}: {}", f, e),
                }
            }
        }
        d
    })
}

/// A home with control/me = mail.example.org and a fake queue directory.
struct T {
    home: PathBuf,
    q: PathBuf,
}

impl T {
    fn new(tag: &str) -> T {
        let home = home(tag);
        let q = home.parent().unwrap().join("fakeq");
        std::fs::create_dir_all(&q).unwrap();
        // Every local part exists unless a test says otherwise.
        let catch = home.parent().unwrap().join("catch");
        std::fs::write(
            home.join("users/assign"),
            format!("+:catch:65534:65534:{}:::\n.\n", catch.display()),
        )
        .unwrap();
        T { home, q }
    }

    fn code(&self, c: &str) {
        std::fs::write(self.q.join("code"), c).unwrap();
    }

    fn base_env(&self) -> Vec<(String, String)> {
        vec![
            (
                "PIPEMAIL_HOME".into(),
                self.home.to_string_lossy().into_owned(),
            ),
            ("TCPREMOTEIP".into(), "192.0.2.7".into()),
            ("TCPREMOTEHOST".into(), "client.example".into()),
            ("TCPLOCALIP".into(), "10.0.0.1".into()),
            (
                "QMAILQUEUE".into(),
                fakes().join("fakeq").to_string_lossy().into_owned(),
            ),
            ("FAKEQ".into(), self.q.to_string_lossy().into_owned()),
        ]
    }

    /// Runs one session; returns (stdout with queue ids replaced, exit code, stderr).
    fn session(&self, extra: &[(&str, &str)], input: &[u8]) -> (String, Option<i32>, String) {
        let mut env = self.base_env();
        for (k, v) in extra {
            env.retain(|(ek, _)| ek != k);
            if !v.starts_with('\u{0}') {
                env.push((k.to_string(), v.to_string()));
            }
        }
        let e: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let out = run("smtp-recv", &[], &e, input);
        (
            norm(&out.stdout),
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// Queued messages (message, envelope) recorded by the fake queue.
    fn queued(&self) -> Vec<(Vec<u8>, Vec<u8>)> {
        files(&self.q)
            .iter()
            .filter(|f| f.ends_with(".msg"))
            .map(|f| {
                let m = std::fs::read(self.q.join(f)).unwrap();
                let e = std::fs::read(self.q.join(f.replace(".msg", ".env"))).unwrap();
                (m, e)
            })
            .collect()
    }
}

/// Replaces the queue id after `250 2.0.0 ok ` with QID.
fn norm(b: &[u8]) -> String {
    let s = String::from_utf8_lossy(b);
    s.split_inclusive("\r\n")
        .map(|l| {
            if l.starts_with("250 2.0.0 ok ") {
                "250 2.0.0 ok QID\r\n".to_string()
            } else {
                l.to_string()
            }
        })
        .collect()
}

/// The message as stored, without our Received: line (checked apart).
fn body_after_received(m: &[u8]) -> (String, Vec<u8>) {
    let s = m;
    assert!(
        s.starts_with(b"Received: from "),
        "{}",
        String::from_utf8_lossy(s)
    );
    // Two lines: "Received: from ...\n\tby ...\n".
    let first = s.iter().position(|&c| c == b'\n').unwrap();
    let second = first + 1 + s[first + 1..].iter().position(|&c| c == b'\n').unwrap();
    (
        String::from_utf8_lossy(&s[..second + 1]).into_owned(),
        s[second + 1..].to_vec(),
    )
}

fn s(v: &[&str]) -> String {
    v.concat()
}

#[test]
fn full_dialogue() {
    let t = T::new("smtp-full");
    let input = b"EHLO client.example\r\nMAIL FROM:<a@b.example> BODY=8BITMIME\r\nRCPT TO:<u@mail.example.org>\r\n\
RCPT TO:<\"v w\"@mail.example.org>\r\nDATA\r\nSubject: hi\r\n\r\n..dot\r\n\xc3\xa9t\xc3\xa9\r\n.\r\nNOOP\r\nRSET\r\nVRFY u\r\nHELP\r\nQUIT\r\n";
    let (out, code, err) = t.session(&[], input);
    assert_eq!(
        out,
        s(&[
            GREET,
            EHLO,
            "250 2.1.0 ok\r\n250 2.1.5 ok\r\n250 2.1.5 ok\r\n354 go ahead, end with <CRLF>.<CRLF>\r\n250 2.0.0 ok QID\r\n",
            "250 2.0.0 ok\r\n250 2.0.0 ok\r\n252 2.5.2 cannot verify, send some mail and I will try my best\r\n",
            "214-2.0.0 commands: HELO EHLO MAIL RCPT DATA RSET NOOP QUIT VRFY HELP\r\n214 2.0.0 see smtp-recv(8)\r\n",
            BYE
        ])
    );
    assert_eq!(code, Some(0));
    let q = t.queued();
    assert_eq!(q.len(), 1);
    let (rcv, body) = body_after_received(&q[0].0);
    assert_eq!(body, "Subject: hi\n\n.dot\nété\n".as_bytes());
    assert!(
        rcv.starts_with(
            "Received: from client.example (client.example [192.0.2.7])\n\tby mail.example.org with ESMTP id "
        ),
        "{}",
        rcv
    );
    assert_eq!(
        q[0].1,
        b"Fa@b.example\0Tu@mail.example.org\0Tv w@mail.example.org\0\0"
    );
    assert!(err.contains("info: accepted id="), "{}", err);
    assert!(
        err.contains(" from=<a@b.example> rcpts=2 bytes="),
        "{}",
        err
    );
    assert!(err.starts_with("smtp-recv: pid "), "{}", err);
}

#[test]
fn helo_gives_smtp_and_linked_queue_writes_the_drop_directory() {
    let t = T::new("smtp-linked");
    let input = b"HELO c\r\nMAIL FROM:<>\r\nRCPT TO:<postmaster>\r\nDATA\r\nSubject: x\r\n\r\nbody\r\n.\r\nQUIT\r\n";
    let (out, code, _) = t.session(&[("QMAILQUEUE", "\0")], input);
    assert_eq!(
        out,
        s(&[GREET, "250 mail.example.org\r\n250 2.1.0 ok\r\n250 2.1.5 ok\r\n354 go ahead, end with <CRLF>.<CRLF>\r\n250 2.0.0 ok QID\r\n", BYE])
    );
    assert_eq!(code, Some(0));
    let subs = submissions(&t.home);
    assert_eq!(subs.len(), 1);
    assert_eq!(subs[0].envelope, b"F\0Tpostmaster@mail.example.org\0\0");
    let m = subs[0].message.clone();
    let nl = m.iter().position(|&c| c == b'\n').unwrap();
    assert!(m.starts_with(b"Received: (pipemail "));
    let (rcv, body) = body_after_received(&m[nl + 1..]);
    assert!(rcv.contains(" with SMTP id "), "{}", rcv);
    assert_eq!(body, b"Subject: x\n\nbody\n");
}

/// smtp-recv started with descriptor 2 closed (it has no Rust runtime to
/// reopen it) puts /dev/null there first, so no file it opens later (a
/// queue file) becomes fd 2 and takes its log lines.
#[test]
fn closed_stderr_becomes_dev_null() {
    use std::os::unix::process::CommandExt;
    let t = T::new("smtp-closed2");
    let mut c = Command::new(bin("smtp-recv"));
    c.env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("PIPEMAIL_HOME", &t.home)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    unsafe {
        c.pre_exec(|| {
            libc::close(2);
            Ok(())
        });
    }
    let mut child = c.spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut out = child.stdout.take().unwrap();
    let mut greeting = [0u8; 100];
    let n = out.read(&mut greeting).unwrap();
    assert_eq!(&greeting[..n], GREET.as_bytes());
    let fd2 = std::fs::read_link(format!("/proc/{}/fd/2", child.id()));
    stdin.write_all(b"QUIT\r\n").unwrap();
    drop(stdin);
    let mut rest = Vec::new();
    out.read_to_end(&mut rest).unwrap();
    assert_eq!(rest, BYE.as_bytes());
    assert_eq!(child.wait().unwrap().code(), Some(0));
    assert_eq!(fd2.unwrap(), PathBuf::from("/dev/null"));
}

/// A child whose replies are read as they come, to check what was flushed.
struct Live {
    child: Child,
    stdin: Option<ChildStdin>,
    out: ChildStdout,
    got: Vec<u8>,
}

impl Live {
    fn start(t: &T, extra: &[(&str, &str)]) -> Live {
        let mut c = Command::new(bin("smtp-recv"));
        c.env_clear().env("PATH", "/usr/bin:/bin");
        for (k, v) in t.base_env() {
            c.env(k, v);
        }
        for (k, v) in extra {
            c.env(k, v);
        }
        c.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        let mut child = c.spawn().unwrap();
        let stdin = child.stdin.take();
        let out = child.stdout.take().unwrap();
        Live {
            child,
            stdin,
            out,
            got: Vec::new(),
        }
    }

    fn send(&mut self, b: &[u8]) {
        self.stdin.as_mut().unwrap().write_all(b).unwrap();
    }

    /// Waits (at most 5 s) until the output so far ends with `want`.
    fn expect(&mut self, want: &str) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while !self.got.ends_with(want.as_bytes()) {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            assert!(
                !left.is_zero(),
                "waited for {:?}, got {:?}",
                want,
                String::from_utf8_lossy(&self.got)
            );
            let mut p = libc::pollfd {
                fd: self.out.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            if unsafe { libc::poll(&mut p, 1, left.as_millis() as i32) } <= 0 {
                continue;
            }
            let mut buf = [0u8; 4096];
            let n = self.out.read(&mut buf).unwrap();
            assert!(
                n > 0,
                "eof while waiting for {:?}, got {:?}",
                want,
                String::from_utf8_lossy(&self.got)
            );
            self.got.extend_from_slice(&buf[..n]);
        }
    }

    fn finish(mut self) -> (String, Option<i32>) {
        drop(self.stdin.take());
        self.out.read_to_end(&mut self.got).unwrap();
        let st = self.child.wait().unwrap();
        (norm(&self.got), st.code())
    }
}

#[test]
fn pipelined_group_is_answered_in_order_and_flushed_before_reading() {
    let t = T::new("smtp-pipe");
    let mut l = Live::start(&t, &[]);
    l.expect(GREET);
    l.send(b"EHLO c\r\n");
    l.expect("250 SMTPUTF8\r\n");
    // The whole group in one write; the replies must come without more input.
    l.send(b"MAIL FROM:<a@b.example>\r\nRCPT TO:<u@mail.example.org>\r\nRCPT TO:<x@elsewhere.example>\r\nDATA\r\n");
    l.expect("250 2.1.0 ok\r\n250 2.1.5 ok\r\n554 5.7.1 relaying denied\r\n354 go ahead, end with <CRLF>.<CRLF>\r\n");
    l.send(b"Subject: p\r\n\r\nhi\r\n.\r\nQUIT\r\n");
    let (out, code) = l.finish();
    assert!(out.ends_with(
        "354 go ahead, end with <CRLF>.<CRLF>\r\n250 2.0.0 ok QID\r\n221 2.0.0 mail.example.org closing connection\r\n"
    ));
    assert_eq!(code, Some(0));
    assert_eq!(t.queued().len(), 1);
    assert_eq!(t.queued()[0].1, b"Fa@b.example\0Tu@mail.example.org\0\0");
}

#[test]
fn sequence_and_syntax_refusals() {
    let t = T::new("smtp-refuse");
    let cases: &[(&str, &str)] = &[
        (
            "MAIL FROM:<a@b.example>",
            "503 5.5.1 send HELO or EHLO first",
        ),
        ("HELO", "501 5.5.4 syntax: HELO hostname"),
        ("EHLO", "501 5.5.4 syntax: EHLO hostname"),
        ("RCPT TO:<u@mail.example.org>", "503 5.5.1 MAIL first"),
        ("DATA", "503 5.5.1 MAIL first"),
        (
            "MAIL TO:<a@b.example>",
            "501 5.5.4 syntax: MAIL FROM:<address>",
        ),
        (
            "MAIL FROM:a@b.example",
            "501 5.1.7 bad sender address syntax",
        ),
        (
            "MAIL FROM:<a@b.example",
            "501 5.1.7 bad sender address syntax",
        ),
        (
            "MAIL FROM:<a..b@b.example>",
            "501 5.1.7 bad sender address syntax",
        ),
        (
            "MAIL FROM:<a>",
            "553 5.1.7 sender address must have a domain",
        ),
        (
            "MAIL FROM:<a@b.example> FOO=bar",
            "555 5.5.4 unsupported parameter FOO",
        ),
        (
            "MAIL FROM:<a@b.example> BODY=BINARYMIME",
            "555 5.5.4 unsupported parameter BODY",
        ),
        (
            "MAIL FROM:<a@b.example> SIZE=x",
            "501 5.5.4 bad SIZE parameter",
        ),
        (
            "MAIL FROM:<j\u{f6}rg@b.example>",
            "553 5.6.7 non-ASCII address needs SMTPUTF8",
        ),
        ("MAIL FROM:<j\u{f6}rg@b.example> SMTPUTF8", "250 2.1.0 ok"),
        ("MAIL FROM:<a@b.example>", "503 5.5.1 nested MAIL command"),
        ("DATA", "554 5.5.1 no valid recipients"),
        (
            "RCPT TO:<u@mail.example.org> NOTIFY=NEVER",
            "555 5.5.4 unsupported parameter NOTIFY",
        ),
        ("RCPT TO:<>", "501 5.1.3 bad recipient address syntax"),
        (
            "RCPT TO:<u>",
            "553 5.1.3 recipient address must have a domain",
        ),
        (
            "RCPT TO:u@mail.example.org",
            "501 5.1.3 bad recipient address syntax",
        ),
        (
            "RCPT FROM:<u@mail.example.org>",
            "501 5.5.4 syntax: RCPT TO:<address>",
        ),
        ("RCPT TO:<Postmaster>", "250 2.1.5 ok"),
        (
            "RCPT TO:<@relay.example:u@mail.example.org>",
            "250 2.1.5 ok",
        ),
        ("RSET", "250 2.0.0 ok"),
        ("EXPN list", "502 5.5.1 EXPN not available"),
        ("TURN", "502 5.5.1 command not implemented"),
        (
            "ETRN Mail.Example.ORG",
            "250 2.0.0 queueing for mail.example.org started",
        ),
        ("ETRN", "501 5.5.4 syntax: ETRN domain"),
        ("ETRN @mail.example.org", "501 5.5.4 syntax: ETRN domain"),
        (
            "ETRN elsewhere.example",
            "459 4.7.1 ETRN not allowed for this domain",
        ),
        (
            "SEND FROM:<a@b.example>",
            "502 5.5.1 command not implemented",
        ),
        (
            "SOML FROM:<a@b.example>",
            "502 5.5.1 command not implemented",
        ),
        (
            "SAML FROM:<a@b.example>",
            "502 5.5.1 command not implemented",
        ),
        ("AUTH PLAIN", "502 5.5.1 command not implemented"),
        ("XYZZY", "500 5.5.1 command not recognized"),
        (
            "vrfy x",
            "252 2.5.2 cannot verify, send some mail and I will try my best",
        ),
    ];
    // Two sessions, each under the limit of 20 protocol errors.
    for (part, pre, pre_want) in [
        (&cases[..17], "", ""),
        (
            &cases[17..],
            "EHLO c\r\nMAIL FROM:<a@b.example>\r\n",
            "EHLO\r\n250 2.1.0 ok\r\n",
        ),
    ] {
        let mut input = pre.as_bytes().to_vec();
        let mut want = s(&[GREET, &pre_want.replace("EHLO\r\n", EHLO)]);
        for (i, (cmd, reply)) in part.iter().enumerate() {
            if pre.is_empty() && i == 3 {
                input.extend_from_slice(b"EHLO c\r\n");
                want.push_str(EHLO);
            }
            input.extend_from_slice(cmd.as_bytes());
            input.extend_from_slice(b"\r\n");
            want.push_str(reply);
            want.push_str("\r\n");
        }
        input.extend_from_slice(b"QUIT\r\n");
        want.push_str(BYE);
        let (out, code, _) = t.session(&[], &input);
        assert_eq!(out, want);
        assert_eq!(code, Some(0));
    }
    assert!(t.queued().is_empty());
}

#[test]
fn receiver_nits_from_the_differential_run() {
    let t = T::new("smtp-nits");
    let input = b"EHLO c\r\nVRFY\r\nVRFY  \r\nRSET x\r\n\
MAIL FROM:<a@b.example> SIZE=99999999999999999999\r\nMAIL FROM:<a@b.example> SIZE=123456789012345678901\r\n\
MAIL FROM:<a@[300.1.1.1]>\r\nMAIL FROM:<a@[IPv6:2001:db8::1]>\r\nRSET\r\nMAIL FROM:<a@b.example>\r\n\
RCPT TO:<x@[1.2.3]>\r\nRCPT TO:<x@[IPv6:zz]>\r\nRCPT TO:<x@[tag:y]>\r\nRCPT TO:<postmaster@[10.0.0.1]>\r\n\
RCPT TO:<PostMaster@[10.0.0.1]>\r\nRCPT TO:<u@[10.0.0.1]>\r\nDATA\r\nx\r\n.\r\nQUIT\r\n";
    // Relaying only through rcpthosts: [10.0.0.1] is not in it.
    control(&t.home, "rcpthosts", "mail.example.org\n");
    let (out, _, _) = t.session(&[], input);
    assert_eq!(
        out,
        s(&[
            GREET,
            EHLO,
            "501 5.5.4 syntax: VRFY address\r\n501 5.5.4 syntax: VRFY address\r\n501 5.5.4 syntax: RSET\r\n",
            "552 5.3.4 message size exceeds fixed maximum message size\r\n501 5.5.4 bad SIZE parameter\r\n",
            "501 5.1.7 bad sender address syntax\r\n250 2.1.0 ok\r\n250 2.0.0 ok\r\n250 2.1.0 ok\r\n",
            "501 5.1.3 bad recipient address syntax\r\n501 5.1.3 bad recipient address syntax\r\n",
            "501 5.1.3 bad recipient address syntax\r\n250 2.1.5 ok\r\n250 2.1.5 ok\r\n",
            "554 5.7.1 relaying denied\r\n354 go ahead, end with <CRLF>.<CRLF>\r\n250 2.0.0 ok QID\r\n",
            BYE
        ])
    );
    let q = t.queued();
    assert_eq!(
        q[0].1,
        b"Fa@b.example\0Tpostmaster@mail.example.org\0Tpostmaster@mail.example.org\0\0"
    );
    // With $QMAILQUEUE the reply names the queue program's pid: `ok qp N`.
    let env = t.base_env();
    let e: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let o = run(
        "smtp-recv",
        &[],
        &e,
        b"HELO c\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<u@mail.example.org>\r\nDATA\r\nx\r\n.\r\nQUIT\r\n",
    );
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    let line = out
        .lines()
        .find(|l| l.starts_with("250 2.0.0 ok "))
        .expect("accepted");
    let pid = line.strip_prefix("250 2.0.0 ok qp ").expect(line);
    assert!(
        !pid.is_empty() && pid.bytes().all(|c| c.is_ascii_digit()),
        "{}",
        line
    );
}

#[test]
fn too_many_errors_close_the_session() {
    let t = T::new("smtp-errors");
    let input = b"XYZZY\r\n".repeat(25);
    let (out, code, err) = t.session(&[], &input);
    let want = s(&[
        GREET,
        &"500 5.5.1 command not recognized\r\n".repeat(20),
        "421 4.7.0 mail.example.org too many errors, closing connection\r\n",
    ]);
    assert_eq!(out, want);
    assert_eq!(code, Some(0));
    assert!(err.contains("too many errors"));
}

#[test]
fn recipient_limit_and_address_length() {
    let t = T::new("smtp-limits");
    let mut input = b"EHLO c\r\nMAIL FROM:<a@b.example>\r\n".to_vec();
    let mut want = s(&[GREET, EHLO, "250 2.1.0 ok\r\n"]);
    for i in 0..101 {
        input.extend_from_slice(format!("RCPT TO:<u{}@mail.example.org>\r\n", i).as_bytes());
        want.push_str(if i < 100 {
            "250 2.1.5 ok\r\n"
        } else {
            "452 4.5.3 too many recipients\r\n"
        });
    }
    let long = "a".repeat(890);
    input.extend_from_slice(format!("RCPT TO:<{}@mail.example.org>\r\n", long).as_bytes());
    want.push_str("501 5.1.3 recipient address too long\r\n");
    input.extend_from_slice(b"DATA\r\nx\r\n.\r\nQUIT\r\n");
    want.push_str("354 go ahead, end with <CRLF>.<CRLF>\r\n250 2.0.0 ok QID\r\n");
    want.push_str(BYE);
    let (out, _, _) = t.session(&[], &input);
    assert_eq!(out, want);
    let q = t.queued();
    assert_eq!(
        q[0].1
            .split(|&c| c == 0)
            .filter(|f| f.starts_with(b"T"))
            .count(),
        100
    );
}

#[test]
fn size_parameter_and_databytes() {
    let t = T::new("smtp-size");
    control(&t.home, "databytes", "100\n");
    let ehlo = EHLO.replace("SIZE 10240000", "SIZE 100");
    let big = "x".repeat(120);
    let input = format!(
        "EHLO c\r\nMAIL FROM:<a@b.example> SIZE=101\r\nMAIL FROM:<a@b.example> SIZE=100\r\nRCPT TO:<u@mail.example.org>\r\n\
DATA\r\n{}\r\n.\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<u@mail.example.org>\r\nDATA\r\n{}\r\n.\r\nQUIT\r\n",
        big,
        "y".repeat(99)
    );
    let (out, _, err) = t.session(&[], input.as_bytes());
    assert_eq!(
        out,
        s(&[
            GREET,
            &ehlo,
            "552 5.3.4 message size exceeds fixed maximum message size\r\n250 2.1.0 ok\r\n250 2.1.5 ok\r\n",
            "354 go ahead, end with <CRLF>.<CRLF>\r\n552 5.3.4 message size exceeds fixed maximum message size\r\n",
            "250 2.1.0 ok\r\n250 2.1.5 ok\r\n354 go ahead, end with <CRLF>.<CRLF>\r\n250 2.0.0 ok QID\r\n",
            BYE
        ])
    );
    assert_eq!(
        t.queued().len(),
        1,
        "only the message of 100 bytes (99 + LF)"
    );
    assert!(err.contains("reason=size"));
    // $DATABYTES overrides the control file; 0 means no limit.
    let (out, _, _) = t.session(
        &[("DATABYTES", "0")],
        b"EHLO c\r\nMAIL FROM:<a@b.example> SIZE=999999999\r\nQUIT\r\n",
    );
    assert_eq!(
        out,
        s(&[
            GREET,
            &EHLO.replace("SIZE 10240000", "SIZE 0"),
            "250 2.1.0 ok\r\n",
            BYE
        ])
    );
}

#[test]
fn command_line_limits() {
    let t = T::new("smtp-lines");
    let l1000 = format!("NOOP {}\r\n", "a".repeat(1000 - 7));
    let l1001 = format!("NOOP {}\r\n", "a".repeat(1001 - 7));
    assert_eq!(l1000.len(), 1000);
    let long = format!("NOOP {}\r\n", "b".repeat(70000));
    let input = format!("{}{}{}NOOP\nQUIT\r\n", l1000, l1001, long);
    let (out, code, _) = t.session(&[], input.as_bytes());
    assert_eq!(
        out,
        s(&[GREET, "250 2.0.0 ok\r\n500 5.5.2 line too long\r\n500 5.5.2 line too long\r\n250 2.0.0 ok\r\n", BYE])
    );
    assert_eq!(code, Some(0));
}

#[test]
fn nul_and_ff_in_commands() {
    let t = T::new("smtp-nul");
    let input = b"NOOP\0x\r\n\xffNOOP\r\nNO\rOP\r\nHELO c\x01\r\nHELO c\r\nQUIT\r\n";
    let (out, code, _) = t.session(&[], input);
    assert_eq!(
        out,
        s(&[
            GREET,
            "500 5.5.2 syntax error: NUL byte in command\r\n",
            "500 5.5.2 syntax error: byte that is not UTF-8 in command\r\n",
            "500 5.5.2 syntax error: bare CR in command\r\n",
            "500 5.5.2 syntax error: control character in command\r\n",
            "250 mail.example.org\r\n",
            BYE
        ])
    );
    assert_eq!(code, Some(0));
}

const SMUGGLE: &[u8] =
    b"MAIL FROM:<evil@mail.example.org>\r\nRCPT TO:<u@mail.example.org>\r\nDATA\r\nSubject: smuggled\r\n\r\nevil\r\n";

#[test]
fn bare_lf_and_cr_never_end_data_pipelined() {
    let fakes: &[&[u8]] = &[
        b"\n.\n",
        b"\n.\r\n",
        b"\r\n.\n",
        b"\r.\r",
        b"\r\n.\r",
        b"\r.\r\n",
        b"\n.\0\n",
        b"\0\n.\n",
        b"\n..\n",
        b"\r\n.\r\r\n",
    ];
    for fake in fakes {
        let t = T::new("smtp-smuggle");
        let mut input =
            b"EHLO c\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<u@mail.example.org>\r\nDATA\r\nSubject: x\r\n\r\nhello"
                .to_vec();
        input.extend_from_slice(fake);
        input.extend_from_slice(SMUGGLE);
        input.extend_from_slice(b".\r\nQUIT\r\n");
        let (out, code, err) = t.session(&[], &input);
        assert_eq!(
            out,
            s(&[
                GREET,
                EHLO,
                "250 2.1.0 ok\r\n250 2.1.5 ok\r\n354 go ahead, end with <CRLF>.<CRLF>\r\n",
                "550 5.6.2 message refused: bare CR or LF in data (lines must end in CRLF)\r\n",
                BYE
            ]),
            "fake terminator {:?}",
            String::from_utf8_lossy(fake)
        );
        assert_eq!(code, Some(0));
        assert!(t.queued().is_empty(), "nothing queued for {:?}", fake);
        assert!(files(&t.q).iter().all(|f| !f.ends_with(".env")));
        assert!(err.contains("reason=bare-cr-lf"));
    }
}

#[test]
fn bare_lf_and_cr_never_end_data_step_by_step() {
    for fake in [&b"\n.\n"[..], b"\n.\r\n", b"\r\n.\n", b"\r.\r", b"\r\n.\r"] {
        let t = T::new("smtp-smuggle-step");
        let mut l = Live::start(&t, &[]);
        l.expect(GREET);
        for (cmd, reply) in [
            ("HELO c\r\n", "250 mail.example.org\r\n"),
            ("MAIL FROM:<a@b.example>\r\n", "250 2.1.0 ok\r\n"),
            ("RCPT TO:<u@mail.example.org>\r\n", "250 2.1.5 ok\r\n"),
            ("DATA\r\n", "354 go ahead, end with <CRLF>.<CRLF>\r\n"),
        ] {
            l.send(cmd.as_bytes());
            l.expect(reply);
        }
        l.send(b"Subject: x\r\n\r\nhello");
        l.send(fake);
        l.send(SMUGGLE);
        l.send(b".\r\n");
        l.expect("550 5.6.2 message refused: bare CR or LF in data (lines must end in CRLF)\r\n");
        // The session is in step: the next transaction works.
        l.send(b"MAIL FROM:<a@b.example>\r\nRCPT TO:<u@mail.example.org>\r\nDATA\r\n");
        l.expect("354 go ahead, end with <CRLF>.<CRLF>\r\n");
        l.send(b"Subject: good\r\n\r\nfine\r\n.\r\nQUIT\r\n");
        let (out, code) = l.finish();
        assert!(
            out.ends_with("250 2.0.0 ok QID\r\n221 2.0.0 mail.example.org closing connection\r\n"),
            "{}",
            out
        );
        assert_eq!(out.matches("250 2.0.0 ok QID").count(), 1);
        assert_eq!(code, Some(0));
        let q = t.queued();
        assert_eq!(q.len(), 1);
        assert_eq!(body_after_received(&q[0].0).1, b"Subject: good\n\nfine\n");
    }
}

#[test]
fn nul_in_data_is_data_and_smuggled_text_stays_inside() {
    let t = T::new("smtp-nul-data");
    let mut input =
        b"HELO c\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<u@mail.example.org>\r\nDATA\r\nhello\r\n.\0\r\n".to_vec();
    input.extend_from_slice(SMUGGLE);
    input.extend_from_slice(b".\r\nQUIT\r\n");
    let (out, _, _) = t.session(&[], &input);
    assert_eq!(out.matches("250 2.0.0 ok QID").count(), 1);
    let q = t.queued();
    assert_eq!(q.len(), 1);
    assert_eq!(
        body_after_received(&q[0].0).1,
        b"hello\n\0\nMAIL FROM:<evil@mail.example.org>\nRCPT TO:<u@mail.example.org>\nDATA\nSubject: smuggled\n\nevil\n"
    );
    assert_eq!(q[0].1, b"Fa@b.example\0Tu@mail.example.org\0\0");
}

#[test]
fn hop_count() {
    let t = T::new("smtp-hops");
    let mk = |n: usize| {
        let mut m =
            b"HELO c\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<u@mail.example.org>\r\nDATA\r\n"
                .to_vec();
        for i in 0..n {
            m.extend_from_slice(if i % 2 == 0 {
                b"Received: x\r\n"
            } else {
                b"Delivered-To: y\r\n"
            });
        }
        m.extend_from_slice(b"\r\nReceived: in the body does not count\r\n.\r\nQUIT\r\n");
        m
    };
    let (out, _, _) = t.session(&[], &mk(100));
    assert!(out.contains("250 2.0.0 ok QID"), "{}", out);
    let (out, _, _) = t.session(&[], &mk(101));
    assert!(
        out.contains("\r\n554 5.4.6 too many hops, this message is looping\r\n"),
        "{}",
        out
    );
    assert_eq!(t.queued().len(), 1);
}

#[test]
fn queue_program_exit_codes() {
    let cases = [
        ("0", "250 2.0.0 ok QID"),
        ("11", "554 5.1.3 envelope address too long for qq (#5.1.3)"),
        (
            "31",
            "554 5.3.0 mail server permanently rejected message (#5.3.0)",
        ),
        (
            "71",
            "451 4.3.0 mail server temporarily rejected message (#4.3.0)",
        ),
        ("82", "554 5.7.1 sorry (#5.7.1)"),
        ("kill", "451 4.3.0 qq crashed (#4.3.0)"),
    ];
    for (c, reply) in cases {
        let t = T::new("smtp-qq");
        t.code(c);
        let input = b"EHLO c\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<u@mail.example.org>\r\nDATA\r\nSubject: q\r\n\r\nx\r\n.\r\nQUIT\r\n";
        let (out, code, _) = t.session(&[], input);
        assert_eq!(
            out,
            s(&[
                GREET,
                EHLO,
                "250 2.1.0 ok\r\n250 2.1.5 ok\r\n354 go ahead, end with <CRLF>.<CRLF>\r\n",
                reply,
                "\r\n",
                BYE
            ]),
            "exit {}",
            c
        );
        assert_eq!(code, Some(0));
        assert_eq!(t.queued().len(), if c == "0" { 1 } else { 0 });
    }
    // A queue program that cannot be run.
    let t = T::new("smtp-qq-missing");
    let input =
        b"HELO c\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<u@mail.example.org>\r\nDATA\r\nQUIT\r\n";
    let (out, _, _) = t.session(&[("QMAILQUEUE", "/nonexistent/qq")], input);
    assert!(
        out.contains("\r\n451 4.3.0 unable to start queue program\r\n221 "),
        "{}",
        out
    );
}

#[test]
fn relay_control() {
    let t = T::new("smtp-relay");
    let tricks = [
        "<\"x@other.example\"@mail.example.org>",
        "<x%other.example@mail.example.org>",
        "<other.example!x@mail.example.org>",
        "<@mail.example.org:x@other.example>",
        "<x@other.example>",
        "<x@[192.0.2.99]>",
        "<x@mail.example.org.other.example>",
    ];
    let mut input = b"EHLO c\r\nMAIL FROM:<a@b.example>\r\n".to_vec();
    let mut want = s(&[GREET, EHLO, "250 2.1.0 ok\r\n"]);
    for r in tricks {
        input.extend_from_slice(format!("RCPT TO:{}\r\n", r).as_bytes());
        want.push_str("554 5.7.1 relaying denied\r\n");
    }
    input.extend_from_slice(b"QUIT\r\n");
    want.push_str(BYE);
    // No rcpthosts: only locals (control/me) and virtualdomains.
    let (out, _, err) = t.session(&[], &input);
    assert_eq!(out, want);
    assert!(err.contains("reason=relay-trick") && err.contains("reason=relaying"));
    // The same with rcpthosts listing only the local domain.
    control(&t.home, "rcpthosts", "mail.example.org\n.sub.example\n");
    let (out, _, _) = t.session(&[], &input);
    assert_eq!(out, want);
    // rcpthosts: exact and .suffix entries; virtualdomains without rcpthosts.
    let (out, _, _) = t.session(
        &[],
        b"HELO c\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<u@MAIL.example.org>\r\nRCPT TO:<u@a.sub.example>\r\nRCPT TO:<u@sub.example>\r\nQUIT\r\n",
    );
    assert_eq!(
        out,
        s(&[
            GREET,
            "250 mail.example.org\r\n250 2.1.0 ok\r\n250 2.1.5 ok\r\n250 2.1.5 ok\r\n554 5.7.1 relaying denied\r\n",
            BYE
        ])
    );
    std::fs::remove_file(t.home.join("control/rcpthosts")).unwrap();
    control(&t.home, "virtualdomains", "virt.example:joe\n");
    let (out, _, _) = t.session(
        &[],
        b"HELO c\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<u@virt.example>\r\nRCPT TO:<u@sub.example>\r\nQUIT\r\n",
    );
    assert_eq!(
        out,
        s(&[
            GREET,
            "250 mail.example.org\r\n250 2.1.0 ok\r\n250 2.1.5 ok\r\n554 5.7.1 relaying denied\r\n",
            BYE
        ])
    );
}

/// Control files are read once per session, not per command: an edit
/// made while a session runs takes effect for the next session.
#[test]
fn control_files_are_read_once_per_session() {
    let t = T::new("smtp-once");
    control(&t.home, "virtualdomains", "virt.example:joe\n");
    let mut l = Live::start(&t, &[]);
    l.expect(GREET);
    l.send(b"HELO c\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<u@virt.example>\r\n");
    l.expect("250 2.1.5 ok\r\n");
    std::fs::remove_file(t.home.join("control/virtualdomains")).unwrap();
    control(&t.home, "locals", "other.example\n");
    l.send(b"RCPT TO:<v@virt.example>\r\nRCPT TO:<w@mail.example.org>\r\nQUIT\r\n");
    let (out, code) = l.finish();
    assert_eq!(
        out,
        s(&[
            GREET,
            "250 mail.example.org\r\n250 2.1.0 ok\r\n250 2.1.5 ok\r\n250 2.1.5 ok\r\n250 2.1.5 ok\r\n",
            BYE
        ])
    );
    assert_eq!(code, Some(0));
    let (out, _, _) = t.session(
        &[],
        b"HELO c\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<u@virt.example>\r\nRCPT TO:<w@mail.example.org>\r\nRCPT TO:<x@other.example>\r\nQUIT\r\n",
    );
    assert_eq!(
        out,
        s(&[
            GREET,
            "250 mail.example.org\r\n250 2.1.0 ok\r\n554 5.7.1 relaying denied\r\n554 5.7.1 relaying denied\r\n250 2.1.5 ok\r\n",
            BYE
        ])
    );
}

#[test]
fn relayclient_allows_relaying_and_is_appended() {
    let t = T::new("smtp-relayclient");
    let input = b"HELO c\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<x@other.example>\r\nRCPT TO:<\"y@z\"@other.example>\r\nDATA\r\nx\r\n.\r\nQUIT\r\n";
    let (out, _, _) = t.session(&[("RELAYCLIENT", "")], input);
    assert!(
        out.contains("250 2.1.5 ok\r\n250 2.1.5 ok\r\n354"),
        "{}",
        out
    );
    assert_eq!(
        t.queued()[0].1,
        b"Fa@b.example\0Tx@other.example\0Ty@z@other.example\0\0"
    );
    let t = T::new("smtp-relayclient2");
    let (_, _, _) = t.session(
        &[("RELAYCLIENT", ".fix")],
        b"HELO c\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<x@other.example>\r\nDATA\r\nx\r\n.\r\nQUIT\r\n",
    );
    assert_eq!(t.queued()[0].1, b"Fa@b.example\0Tx@other.example.fix\0\0");
}

#[test]
fn localiphost_and_badmailfrom() {
    let t = T::new("smtp-bmf");
    control(
        &t.home,
        "badmailfrom",
        "spammer@bad.example\n@worse.example\n",
    );
    control(&t.home, "localiphost", "mail.example.org\n");
    let input =
        b"HELO c\r\nMAIL FROM:<SPAMMER@bad.example>\r\nMAIL FROM:<x@worse.example>\r\nMAIL FROM:<ok@bad.example>\r\n\
RCPT TO:<u@[10.0.0.1]>\r\nRCPT TO:<u@[10.0.0.2]>\r\nDATA\r\nx\r\n.\r\nQUIT\r\n";
    let (out, _, err) = t.session(&[], input);
    assert_eq!(
        out,
        s(&[
            GREET,
            "250 mail.example.org\r\n553 5.7.1 sender address refused (badmailfrom)\r\n553 5.7.1 sender address refused (badmailfrom)\r\n",
            "250 2.1.0 ok\r\n250 2.1.5 ok\r\n554 5.7.1 relaying denied\r\n354 go ahead, end with <CRLF>.<CRLF>\r\n250 2.0.0 ok QID\r\n",
            BYE
        ])
    );
    assert!(
        err.contains("refused from=<SPAMMER@bad.example> reason=badmailfrom remote=192.0.2.7"),
        "{}",
        err
    );
    assert_eq!(t.queued()[0].1, b"Fok@bad.example\0Tu@mail.example.org\0\0");
}

#[test]
fn read_timeout_gives_421() {
    let t = T::new("smtp-timeout");
    control(&t.home, "timeoutsmtpd", "1\n");
    let start = std::time::Instant::now();
    let mut l = Live::start(&t, &[]);
    l.expect(GREET);
    l.send(b"HELO c\r\nDATA\r\n");
    l.expect(
        "250 mail.example.org\r\n503 5.5.1 MAIL first\r\n421 4.4.2 mail.example.org timeout, closing connection\r\n",
    );
    let (out, code) = l.finish();
    assert!(out.ends_with("timeout, closing connection\r\n"));
    assert_eq!(code, Some(111));
    assert!(start.elapsed() < std::time::Duration::from_secs(4));
    // Also in the middle of DATA: nothing is queued.
    let mut l = Live::start(&t, &[]);
    l.send(
        b"HELO c\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<u@mail.example.org>\r\nDATA\r\npartial\r\n",
    );
    l.expect("354 go ahead, end with <CRLF>.<CRLF>\r\n421 4.4.2 mail.example.org timeout, closing connection\r\n");
    assert_eq!(l.finish().1, Some(111));
    assert!(t.queued().is_empty());
}

#[test]
fn bad_control_file_gives_421() {
    let t = T::new("smtp-badctl");
    control(&t.home, "databytes", "lots\n");
    let (out, code, err) = t.session(&[], b"QUIT\r\n");
    assert_eq!(out, "421 4.3.0 unable to read controls\r\n");
    assert_eq!(code, Some(111));
    assert!(
        err.contains("control/databytes line 1: not a number"),
        "{}",
        err
    );
}

#[test]
fn greeting_and_remote_fallback() {
    let t = T::new("smtp-greet");
    control(&t.home, "smtpgreeting", "mx.example.org welcome\n");
    let (out, _, _) = t.session(
        &[("TCPREMOTEIP", "\0"), ("TCPREMOTEHOST", "\0")],
        b"HELO c\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<u@mail.example.org>\r\nDATA\r\nx\r\n.\r\nQUIT\r\n",
    );
    assert!(
        out.starts_with("220 mx.example.org welcome ESMTP\r\n250 mail.example.org\r\n"),
        "{}",
        out
    );
    let (rcv, _) = body_after_received(&t.queued()[0].0);
    assert!(
        rcv.starts_with(
            "Received: from c (unknown [unknown])\n\tby mail.example.org with SMTP id "
        ),
        "{}",
        rcv
    );
    let (_, code, _) = t.session(&[], b"");
    assert_eq!(code, Some(0), "client closed without QUIT");
    let out = run("smtp-recv", &["x"], &[], b"");
    assert_eq!(out.status.code(), Some(100));
}

fn b64(b: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut o = String::new();
    for c in b.chunks(3) {
        let n = (c[0] as u32) << 16
            | (*c.get(1).unwrap_or(&0) as u32) << 8
            | *c.get(2).unwrap_or(&0) as u32;
        for k in 0..4 {
            o.push(if k <= c.len() {
                T[((n >> (18 - 6 * k)) & 63) as usize] as char
            } else {
                '='
            });
        }
    }
    o
}

/// AUTH in clear text: allowed explicitly ($AUTH_CLEARTEXT), as it is
/// refused before TLS otherwise (tests/it/tls.rs).
fn auth_env() -> Vec<(&'static str, String)> {
    vec![
        (
            "SMTPAUTH",
            fakes().join("checkpw").to_string_lossy().into_owned(),
        ),
        ("AUTH_CLEARTEXT", "1".to_string()),
    ]
}

fn auth_session(t: &T, input: &[u8]) -> (String, Option<i32>, String) {
    let e = auth_env();
    let e: Vec<(&str, &str)> = e.iter().map(|(k, v)| (*k, v.as_str())).collect();
    t.session(&e, input)
}

const EHLO_AUTH: &str =
    "250-mail.example.org\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250-8BITMIME\r\n\
250-ENHANCEDSTATUSCODES\r\n250-ETRN\r\n250-HELP\r\n250-SMTPUTF8\r\n250 AUTH PLAIN LOGIN\r\n";

#[test]
fn auth_plain_allows_relaying() {
    let t = T::new("smtp-auth-plain");
    let good = b64(b"\0alice\0secret");
    let input = format!(
        "EHLO c\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<x@other.example>\r\nRSET\r\nAUTH PLAIN {}\r\nAUTH PLAIN {}\r\n\
MAIL FROM:<alice@mail.example.org> AUTH=<>\r\nRCPT TO:<x@other.example>\r\nDATA\r\nx\r\n.\r\nQUIT\r\n",
        good, good
    );
    let (out, code, err) = auth_session(&t, input.as_bytes());
    assert_eq!(
        out,
        s(&[
            GREET,
            EHLO_AUTH,
            "250 2.1.0 ok\r\n554 5.7.1 relaying denied\r\n250 2.0.0 ok\r\n235 2.7.0 authentication successful\r\n",
            "503 5.5.1 already authenticated\r\n250 2.1.0 ok\r\n250 2.1.5 ok\r\n354 go ahead, end with <CRLF>.<CRLF>\r\n250 2.0.0 ok QID\r\n",
            BYE
        ])
    );
    assert_eq!(code, Some(0));
    let q = t.queued();
    assert_eq!(q[0].1, b"Falice@mail.example.org\0Tx@other.example\0\0");
    let (rcv, _) = body_after_received(&q[0].0);
    assert!(
        rcv.starts_with(
            "Received: from c (client.example [192.0.2.7]) (AUTH alice)\n\tby mail.example.org with ESMTPA id "
        ),
        "{}",
        rcv
    );
    assert!(
        err.contains("info: auth ok user=alice remote=192.0.2.7"),
        "{}",
        err
    );
    assert!(err.contains("auth=alice"), "{}", err);
}

#[test]
fn auth_continuations_login_cancel_and_failures() {
    let t = T::new("smtp-auth-login");
    let input = format!(
        "EHLO c\r\nAUTH PLAIN\r\n{}\r\nAUTH LOGIN\r\n*\r\nAUTH CRAM-MD5\r\nAUTH PLAIN !!!!\r\nAUTH LOGIN {}\r\n{}\r\nQUIT\r\n",
        b64(b"\0alice\0wrong"),
        b64(b"alice"),
        b64(b"secret")
    );
    let (out, _, _) = auth_session(&t, input.as_bytes());
    assert_eq!(
        out,
        s(&[
            GREET,
            EHLO_AUTH,
            "334 \r\n535 5.7.8 authentication credentials invalid\r\n",
            "334 VXNlcm5hbWU6\r\n501 5.0.0 authentication cancelled\r\n",
            "504 5.5.4 unrecognized authentication type\r\n",
            "501 5.5.2 cannot decode response\r\n",
            "334 UGFzc3dvcmQ6\r\n235 2.7.0 authentication successful\r\n",
            BYE
        ])
    );
    // Three failures close the session; a temporary failure is 454.
    let bad = b64(b"\0bob\0x");
    let input = format!(
        "EHLO c\r\nAUTH PLAIN {}\r\nAUTH PLAIN {}\r\nAUTH LOGIN\r\n{}\r\n{}\r\nAUTH PLAIN {}\r\nNOOP\r\n",
        b64(b"\0tempuser\0x"),
        bad,
        b64(b"carol"),
        b64(b"pw"),
        bad
    );
    let (out, code, err) = auth_session(&t, input.as_bytes());
    assert_eq!(
        out,
        s(&[
            GREET,
            EHLO_AUTH,
            "454 4.7.0 temporary authentication failure\r\n535 5.7.8 authentication credentials invalid\r\n",
            "334 VXNlcm5hbWU6\r\n334 UGFzc3dvcmQ6\r\n535 5.7.8 authentication credentials invalid\r\n",
            "421 4.7.0 mail.example.org too many authentication failures, closing connection\r\n"
        ])
    );
    assert_eq!(code, Some(0));
    assert_eq!(err.matches("info: auth failed user=").count(), 3, "{}", err);
    // AUTH in a transaction, and before EHLO.
    let (out, _, _) = auth_session(
        &t,
        b"HELO c\r\nAUTH PLAIN\r\nEHLO c\r\nMAIL FROM:<a@b.example>\r\nAUTH PLAIN\r\nQUIT\r\n",
    );
    assert_eq!(
        out,
        s(&[
            GREET,
            "250 mail.example.org\r\n503 5.5.1 send EHLO first\r\n",
            EHLO_AUTH,
            "250 2.1.0 ok\r\n503 5.5.1 AUTH not allowed during a mail transaction\r\n",
            BYE
        ])
    );
}

/// One connection on 127.0.0.1 served by smtp-recv with the socket on fds
/// 0 and 1 and no UCSPI variables (plain inetd): getpeername names the
/// client. Python's smtplib is the client.
#[test]
fn smtplib_over_tcp_with_auth() {
    let t = T::new("smtp-tcp");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let mut c = Command::new(bin("smtp-recv"));
    c.env_clear().env("PATH", "/usr/bin:/bin");
    for (k, v) in t.base_env() {
        if !k.starts_with("TCP") {
            c.env(k, v);
        }
    }
    for (k, v) in auth_env() {
        c.env(k, v);
    }
    let server = std::thread::spawn(move || {
        let (sock, _) = listener.accept().unwrap();
        let out = sock.try_clone().unwrap();
        c.stdin(Stdio::from(std::os::fd::OwnedFd::from(sock)))
            .stdout(Stdio::from(std::os::fd::OwnedFd::from(out)))
            .stderr(Stdio::piped());
        c.output().unwrap()
    });
    let script = r#"
import smtplib, sys
s = smtplib.SMTP('127.0.0.1', int(sys.argv[1]), local_hostname='py.example', timeout=10)
s.ehlo('py.example')
try:
    s.sendmail('a@b.example', ['x@other.example'], 'Subject: t\r\n\r\nbody\r\n')
    print('relay accepted')
except smtplib.SMTPRecipientsRefused as e:
    print('relay refused', e.recipients['x@other.example'][0])
try:
    s.login('alice', 'wrong')
except smtplib.SMTPAuthenticationError as e:
    print('login refused', e.smtp_code)
s.login('alice', 'secret')
print('login ok')
s.sendmail('alice@mail.example.org', ['x@other.example'], 'Subject: t\r\n\r\n.dot\r\nbody\r\n')
print('sent')
s.quit()
"#;
    let Ok(py) = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(port.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    else {
        eprintln!("skipped: python3 is not installed");
        drop(std::net::TcpStream::connect(("127.0.0.1", port)));
        let _ = server.join();
        return;
    };
    let py = py.wait_with_output().unwrap();
    let srv = server.join().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&py.stdout),
        "relay refused 554\nlogin refused 535\nlogin ok\nsent\n",
        "{}",
        String::from_utf8_lossy(&py.stderr)
    );
    assert_eq!(srv.status.code(), Some(0));
    let q = t.queued();
    assert_eq!(q.len(), 1);
    assert_eq!(q[0].1, b"Falice@mail.example.org\0Tx@other.example\0\0");
    let (rcv, body) = body_after_received(&q[0].0);
    assert!(
        rcv.starts_with(
            "Received: from py.example (unknown [127.0.0.1]) (AUTH alice)\n\tby mail.example.org with ESMTPA id "
        ),
        "{}",
        rcv
    );
    assert_eq!(body, b"Subject: t\n\n.dot\nbody\n");
    let err = String::from_utf8_lossy(&srv.stderr);
    assert!(
        err.contains("refused rcpt=<x@other.example> reason=relaying remote=127.0.0.1"),
        "{}",
        err
    );
}

#[test]
fn unknown_local_recipient_is_refused_at_rcpt() {
    let t = T::new("smtp-unknown");
    std::fs::write(
        t.home.join("users/assign"),
        "=u:u:65534:65534:/nonexistent:::\n.\n",
    )
    .unwrap();
    let input = b"EHLO c\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<nobody-here@mail.example.org>\r\nRCPT TO:<u@mail.example.org>\r\nQUIT\r\n";
    let (out, code, _) = t.session(&[], input);
    assert!(
        out.ends_with("250 2.1.0 ok\r\n550 5.1.1 no such user here\r\n250 2.1.5 ok\r\n221 2.0.0 mail.example.org closing connection\r\n"),
        "{}",
        out
    );
    assert_eq!(code, Some(0));
}

#[test]
fn authrequired_refuses_mail_before_auth_with_530() {
    let t = T::new("smtp-auth-required");
    let mut e = auth_env();
    e.push(("AUTHREQUIRED", "1".into()));
    let e: Vec<(&str, &str)> = e.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let input = format!(
        "EHLO c\r\nMAIL FROM:<alice@mail.example.org>\r\nAUTH PLAIN {}\r\nMAIL FROM:<alice@mail.example.org>\r\nQUIT\r\n",
        b64(b"\0alice\0secret")
    );
    let (out, code, _) = t.session(&e, input.as_bytes());
    assert_eq!(
        out,
        s(&[
            GREET,
            EHLO_AUTH,
            "530 5.7.0 authentication required\r\n235 2.7.0 authentication successful\r\n250 2.1.0 ok\r\n",
            BYE
        ])
    );
    assert_eq!(code, Some(0));
}

/// Issue 13: refused recipients count toward the error limit, so one
/// connection cannot probe for addresses (or relays) without end; from
/// the third unknown recipient on, each refusal waits badrcptdelay.
#[test]
fn refused_recipients_count_as_errors_and_probes_are_slowed() {
    let t = T::new("smtp-probe");
    std::fs::write(
        t.home.join("users/assign"),
        "=u:u:65534:65534:/nonexistent:::\n.\n",
    )
    .unwrap();
    control(&t.home, "badrcptdelay", "0\n");
    let mut input =
        b"EHLO c\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<x@other.example>\r\nXYZZY\r\n".to_vec();
    let mut want = s(&[
        GREET,
        EHLO,
        "250 2.1.0 ok\r\n554 5.7.1 relaying denied\r\n500 5.5.1 command not recognized\r\n",
    ]);
    for i in 0..25 {
        input.extend_from_slice(format!("RCPT TO:<probe{}@mail.example.org>\r\n", i).as_bytes());
        if i < 18 {
            want.push_str("550 5.1.1 no such user here\r\n");
        }
    }
    input.extend_from_slice(b"RCPT TO:<u@mail.example.org>\r\nQUIT\r\n");
    want.push_str("421 4.7.0 mail.example.org too many errors, closing connection\r\n");
    let (out, code, err) = t.session(&[], &input);
    assert_eq!(out, want);
    assert_eq!(code, Some(0));
    assert_eq!(err.matches("reason=unknown-user").count(), 18, "{}", err);
    assert!(
        err.contains("closed after too many errors remote=192.0.2.7"),
        "{}",
        err
    );

    // The default delay: two unknown recipients at once, then a second each.
    std::fs::remove_file(t.home.join("control/badrcptdelay")).unwrap();
    let mut input = b"HELO c\r\nMAIL FROM:<a@b.example>\r\n".to_vec();
    let mut want = s(&[GREET, "250 mail.example.org\r\n250 2.1.0 ok\r\n"]);
    for i in 0..4 {
        input.extend_from_slice(format!("RCPT TO:<p{}@mail.example.org>\r\n", i).as_bytes());
        want.push_str("550 5.1.1 no such user here\r\n");
    }
    input.extend_from_slice(b"RCPT TO:<u@mail.example.org>\r\nQUIT\r\n");
    want.push_str("250 2.1.5 ok\r\n");
    want.push_str(BYE);
    let t0 = std::time::Instant::now();
    let (out, _, _) = t.session(&[], &input);
    let took = t0.elapsed();
    assert_eq!(out, want);
    assert!(
        took >= std::time::Duration::from_millis(1950) && took < std::time::Duration::from_secs(4),
        "{:?}",
        took
    );
}

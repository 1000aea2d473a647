//! Local submission: sendmail, mail-inject, mail-header, queue-filter, and
//! the proof that submitting needs no setuid bit (DESIGN.md, "Who runs as
//! whom"). As root (CI) the submitter runs as uid 65534.

use crate::common::*;
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const NOBODY: u32 = 65534;

/// The uid submissions run as: 65534 when the tests run as root.
fn submitter() -> Option<u32> {
    if is_root() {
        Some(NOBODY)
    } else {
        None
    }
}

/// common::run, optionally as another uid (and gid).
fn run_as(
    uid: Option<u32>,
    prog: &Path,
    args: &[&str],
    env: &[(&str, &str)],
    input: &[u8],
) -> Output {
    let mut c = command(prog, args, env);
    if let Some(u) = uid {
        c.uid(u).gid(u);
    }
    feed(&mut c, input, None)
}

fn sh_as(uid: Option<u32>, script: &str, env: &[(&str, &str)]) -> Output {
    let mut c = command("/bin/sh", &["-c", script], &[("LC_ALL", "C")]);
    for (k, v) in env {
        c.env(k, v);
    }
    if let Some(u) = uid {
        c.uid(u).gid(u);
    }
    c.stdin(Stdio::null()).output().unwrap()
}

fn hs(h: &Path) -> String {
    h.to_string_lossy().into_owned()
}

/// Committed submissions in drop/: (message bytes, envelope bytes, owner).
fn dropped(h: &Path) -> Vec<(Vec<u8>, Vec<u8>, u32)> {
    submissions(h)
        .into_iter()
        .map(|s| (s.message, s.envelope, s.uid))
        .collect()
}

fn has_line(m: &[u8], prefix: &str) -> bool {
    m.split(|&c| c == b'\n')
        .any(|l| l.starts_with(prefix.as_bytes()))
}

fn header_of(m: &[u8]) -> &[u8] {
    let i = memchr::memmem::find(m, b"\n\n")
        .map(|i| i + 1)
        .unwrap_or(m.len());
    &m[..i]
}

fn body_of(m: &[u8]) -> &[u8] {
    let i = memchr::memmem::find(m, b"\n\n")
        .map(|i| i + 2)
        .unwrap_or(m.len());
    &m[i..]
}

fn s(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

// ---- sendmail ----

#[test]
fn sendmail_t_as_ordinary_user_lands_in_drop_completed() {
    let h = home("sm-t");
    let uid = submitter();
    let input = b"To: Rcpt <rcpt@mail.example.org>\nSubject: hi\n\nbody line\n";
    let out = run_as(
        uid,
        &bin("sendmail"),
        &["-t"],
        &[("PIPEMAIL_HOME", &hs(&h)), ("USER", "alice")],
        input,
    );
    assert_eq!(out.status.code(), Some(0), "stderr: {}", s(&out.stderr));
    assert_eq!(out.stdout, b"");
    let d = dropped(&h);
    assert_eq!(d.len(), 1);
    let (m, env, owner) = &d[0];
    assert_eq!(env, b"Falice@mail.example.org\0Trcpt@mail.example.org\0\0");
    let me = uid.unwrap_or_else(|| unsafe { libc::geteuid() });
    assert_eq!(*owner, me, "the kernel records who submitted");
    let first = m.split(|&c| c == b'\n').next().unwrap();
    assert!(s(first).starts_with("Received: (pipemail "), "{}", s(first));
    assert!(
        s(first).contains(&format!(" invoked by uid {});", me)),
        "{}",
        s(first)
    );
    assert_eq!(pipemail::queue::received_uid(first), Some(me));
    let hd = header_of(&m[first.len() + 1..]);
    assert!(has_line(hd, "To: Rcpt <rcpt@mail.example.org>"));
    assert!(has_line(hd, "Subject: hi"));
    assert!(has_line(hd, "From: alice@mail.example.org"), "{}", s(hd));
    assert!(has_line(hd, "Date: "));
    let mid = hd
        .split(|&c| c == b'\n')
        .find(|l| l.starts_with(b"Message-ID: <"))
        .expect("Message-ID added");
    assert!(mid.ends_with(b"@mail.example.org>"), "{}", s(mid));
    assert_eq!(body_of(m), b"body line\n");
}

#[test]
fn sendmail_f_i_and_the_dot_line() {
    let h = home("sm-fi");
    let he = hs(&h);
    let env = [("PIPEMAIL_HOME", he.as_str()), ("USER", "bob")];
    let input = b"Subject: dots\r\n\r\nline 1\r\n.\r\nline 3\r\n";
    // -i: the dot line is data.
    let out = run_as(
        submitter(),
        &bin("sendmail"),
        &["-i", "-f", "sender@other.example", "a@x.example"],
        &env,
        input,
    );
    assert_eq!(out.status.code(), Some(0), "{}", s(&out.stderr));
    // -oi means the same; without it the dot line ends the message.
    let out = run_as(
        submitter(),
        &bin("sendmail"),
        &["-fbounce@other.example", "--", "b@x.example"],
        &env,
        input,
    );
    assert_eq!(out.status.code(), Some(0), "{}", s(&out.stderr));
    let mut d = dropped(&h);
    d.sort_by(|a, b| a.1.cmp(&b.1));
    assert_eq!(d[1].1, b"Fsender@other.example\0Ta@x.example\0\0");
    assert_eq!(
        body_of(&d[1].0),
        b"line 1\n.\nline 3\n",
        "CRLF became LF, the dot line kept"
    );
    assert_eq!(d[0].1, b"Fbounce@other.example\0Tb@x.example\0\0");
    assert_eq!(body_of(&d[0].0), b"line 1\n");
    // The arguments do not become header fields.
    assert!(
        !has_line(header_of(&d[1].0), "To: a@x"),
        "no To added from the arguments"
    );
}

#[test]
fn sendmail_cron_and_mutt_command_lines() {
    let h = home("sm-cron");
    let he = hs(&h);
    let input = b"To: root\nSubject: Cron <root@host> run-parts\n\noutput\n";
    let out = run(
        "sendmail",
        &[
            "-FCronDaemon",
            "-i",
            "-B8BITMIME",
            "-odi",
            "-oem",
            "-oi",
            "-t",
            "-f",
            "root",
        ],
        &[("PIPEMAIL_HOME", &he)],
        input,
    );
    assert_eq!(out.status.code(), Some(0), "{}", s(&out.stderr));
    let out = run(
        "sendmail",
        &[
            "-oem",
            "-oi",
            "-N",
            "never",
            "-R",
            "hdrs",
            "-V",
            "envid",
            "--",
            "x@y.example",
        ],
        &[("PIPEMAIL_HOME", &he)],
        b"Subject: m\n\nb\n",
    );
    assert_eq!(out.status.code(), Some(0), "{}", s(&out.stderr));
    let mut d = dropped(&h);
    d.sort_by(|a, b| a.1.cmp(&b.1));
    assert_eq!(d.len(), 2);
    assert_eq!(
        d[0].1,
        b"Froot@mail.example.org\0Troot@mail.example.org\0\0"
    );
    assert!(
        has_line(header_of(&d[0].0), "From: CronDaemon <"),
        "{}",
        s(&d[0].0)
    );
    assert!(has_line(header_of(&d[0].0), "To: root@mail.example.org"));
}

#[test]
fn sendmail_unknown_option_and_missing_recipients_are_usage_errors() {
    let h = home("sm-usage");
    let he = hs(&h);
    // Out of the grammar: the one usage line (tests/it/usage.rs checks it
    // against the SYNOPSIS); a mode or recipients missing: what is wrong.
    for (args, want) in [
        (&["-Z", "a@b"][..], "sendmail: usage: sendmail [-t]"),
        (&["--bogus", "a@b"], "sendmail: usage: sendmail [-t]"),
        (&["-f"], "sendmail: usage: sendmail [-t]"),
        (&["-bd"], "sendmail: fatal: unsupported mode -bd\n"),
        (&["-bt"], "sendmail: fatal: unsupported mode -bt\n"),
        (
            &[],
            "sendmail: fatal: no recipients (give them as arguments, or use -t)\n",
        ),
    ] {
        let out = run(
            "sendmail",
            args,
            &[("PIPEMAIL_HOME", &he)],
            b"Subject: x\n\ny\n",
        );
        assert_eq!(out.status.code(), Some(64), "{:?}", args);
        assert!(s(&out.stderr).starts_with(want), "{}", s(&out.stderr));
        assert_eq!(out.stderr.iter().filter(|&&c| c == b'\n').count(), 1);
    }
    // -t but no recipient in the header: a data error.
    let out = run(
        "sendmail",
        &["-t"],
        &[("PIPEMAIL_HOME", &he)],
        b"Subject: x\n\ny\n",
    );
    assert_eq!(out.status.code(), Some(65), "{}", s(&out.stderr));
    assert!(dropped(&h).is_empty());
    // No home: the queue is not there, try again later.
    let out = run(
        "sendmail",
        &["a@b"],
        &[("PIPEMAIL_HOME", "/nonexistent/pipemail")],
        b"x\n",
    );
    assert_eq!(out.status.code(), Some(75), "{}", s(&out.stderr));
}

/// Whether the sibling `prog` is still the "not implemented yet" stub.
fn is_stub(prog: &str, h: &Path) -> bool {
    let out = run(prog, &[], &[("PIPEMAIL_HOME", &hs(h))], b"");
    memchr::memmem::find(&out.stderr, b"not implemented yet").is_some()
}

#[test]
fn sendmail_bs_speaks_smtp_through_smtp_recv() {
    let h = home("sm-bs");
    if is_stub("smtp-recv", &h) {
        // At least show that -bs runs the sibling smtp-recv.
        let out = run(
            "sendmail",
            &["-bs"],
            &[("PIPEMAIL_HOME", &hs(&h))],
            b"QUIT\r\n",
        );
        assert!(out.stderr.starts_with(b"smtp-recv: "), "{}", s(&out.stderr));
        eprintln!("skipped: smtp-recv is still a stub");
        return;
    }
    let dialogue = b"EHLO localhost\r\nMAIL FROM:<me@mail.example.org>\r\nRCPT TO:<you@elsewhere.example>\r\nDATA\r\nSubject: bs\r\n\r\nhello\r\n.\r\nQUIT\r\n";
    let out = run_as(
        submitter(),
        &bin("sendmail"),
        &["-bs"],
        &[("PIPEMAIL_HOME", &hs(&h))],
        dialogue,
    );
    let replies: Vec<&[u8]> = out
        .stdout
        .split(|&c| c == b'\n')
        .filter(|l| !l.is_empty())
        .collect();
    assert!(replies[0].starts_with(b"220 "), "{}", s(&out.stdout));
    // The last line of each reply: EHLO 250, MAIL 250, RCPT 250 (relaying
    // allowed for the local user), DATA 354, end of data 250, QUIT 221.
    let finals: Vec<&[u8]> = replies
        .iter()
        .filter(|l| l.len() >= 4 && l[3] == b' ')
        .map(|l| &l[..3])
        .collect();
    assert_eq!(
        finals,
        vec![&b"220"[..], b"250", b"250", b"250", b"354", b"250", b"221"],
        "{}",
        s(&out.stdout)
    );
    let d = dropped(&h);
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].1, b"Fme@mail.example.org\0Tyou@elsewhere.example\0\0");
    assert!(memchr::memmem::find(&d[0].0, b"hello\n").is_some());
}

#[test]
fn sendmail_bp_is_queue_list() {
    let h = home("sm-bp");
    if is_stub("queue-list", &h) {
        let out = run("sendmail", &["-bp"], &[("PIPEMAIL_HOME", &hs(&h))], b"");
        assert!(
            out.stderr.starts_with(b"queue-list: "),
            "{}",
            s(&out.stderr)
        );
        eprintln!("skipped: queue-list is still a stub");
        return;
    }
    let he = hs(&h);
    let a = run("sendmail", &["-bp"], &[("PIPEMAIL_HOME", &he)], b"");
    let b = run("queue-list", &[], &[("PIPEMAIL_HOME", &he)], b"");
    assert_eq!(a.status.code(), b.status.code());
    assert_eq!(a.stdout, b.stdout);
}

#[test]
fn sendmail_q_pulls_the_trigger() {
    let h = home("sm-q");
    let c = std::ffi::CString::new(h.join("queue/trigger").to_string_lossy().as_bytes()).unwrap();
    let fd = unsafe { libc::open(c.as_ptr(), libc::O_RDONLY | libc::O_NONBLOCK) };
    assert!(fd >= 0);
    let out = run("sendmail", &["-q"], &[("PIPEMAIL_HOME", &hs(&h))], b"");
    assert_eq!(out.status.code(), Some(0), "{}", s(&out.stderr));
    let mut b = [0u8; 8];
    let n = unsafe { libc::read(fd, b.as_mut_ptr() as *mut libc::c_void, 8) };
    unsafe { libc::close(fd) };
    assert_eq!(n, 1, "one byte in the trigger");
}

// ---- mail-inject ----

const TRICKY: &[u8] = b"From: \"Smith, Ann\" <ann@ex.org>\n\
To: \"Doe, John\" <john@ex.org>, (comment, with comma) plain@ex.org,\n\x20\
=?utf-8?q?M=C3=BCller,_K?= <km@ex.org>\n\
Cc: team: a@ex.org, \"b, c\" <b@ex.org>;, bare,\n\
\tJoe (the <boss>) <joe@ex.org>\n\
Bcc: hidden@ex.org\n\
Subject: =?iso-8859-1?q?caf=E9?=\n\
Return-Path: <rp@ex.org>\n\
\n\
To: body@not.a.header\n";

#[test]
fn mail_inject_tricky_headers() {
    let h = home("mi-tricky");
    control(&h, "defaultdomain", "dd.example\n");
    control(&h, "defaulthost", "dh.example\n");
    let he = hs(&h);
    let out = run_as(
        submitter(),
        &bin("mail-inject"),
        &["-h"],
        &[("PIPEMAIL_HOME", &he), ("USER", "carol")],
        TRICKY,
    );
    assert_eq!(out.status.code(), Some(0), "{}", s(&out.stderr));
    let d = dropped(&h);
    assert_eq!(d.len(), 1);
    // Return-Path gives the envelope sender; recipients come from To, Cc and
    // Bcc, not from the body; the bare address gets the default domain.
    assert_eq!(
        s(&d[0].1),
        s(b"Frp@ex.org\0Tjohn@ex.org\0Tplain@ex.org\0Tkm@ex.org\0Ta@ex.org\0Tb@ex.org\0Tbare@dd.example\0Tjoe@ex.org\0Thidden@ex.org\0\0")
    );
    let m = &d[0].0;
    let hd = s(header_of(m));
    assert!(!hd.contains("Bcc"), "Bcc removed: {}", hd);
    assert!(!hd.contains("Return-Path"), "Return-Path removed: {}", hd);
    assert!(hd.contains("Cc: team: a@ex.org, \"b, c\" <b@ex.org>;, bare@dd.example,\n\tJoe (the <boss>) <joe@ex.org>\n"), "{}", hd);
    assert!(
        hd.contains("From: \"Smith, Ann\" <ann@ex.org>\n"),
        "From kept"
    );
    assert!(!hd.contains("From: carol"), "no second From");
    assert_eq!(body_of(m), b"To: body@not.a.header\n");

    // -n prints the same message; -f overrides Return-Path; arguments win over the header (-A).
    let out = run(
        "mail-inject",
        &["-n"],
        &[("PIPEMAIL_HOME", &he), ("USER", "carol")],
        b"Subject: x\n\nb\n",
    );
    assert_eq!(out.status.code(), Some(0));
    let o = s(&out.stdout);
    assert!(o.starts_with("Subject: x\nDate: "), "{}", o);
    assert_has(&o, "\nFrom: carol@dh.example\nMessage-ID: <");
    assert!(
        o.ends_with("@mail.example.org>\nTo: undisclosed-recipients: ;\n\nb\n"),
        "{}",
        o
    );
    let out = run(
        "mail-inject",
        &["-f", "s@ex.org", "arg@ex.org"],
        &[("PIPEMAIL_HOME", &he)],
        TRICKY,
    );
    assert_eq!(out.status.code(), Some(0), "{}", s(&out.stderr));
    let e: Vec<Vec<u8>> = dropped(&h)
        .into_iter()
        .map(|d| d.1)
        .filter(|e| e.starts_with(b"Fs@"))
        .collect();
    assert_eq!(e, vec![b"Fs@ex.org\0Targ@ex.org\0\0".to_vec()]);
}

#[test]
fn mail_inject_resent_and_identity() {
    let h = home("mi-resent");
    let he = hs(&h);
    let input = b"From: orig@ex.org\nTo: old@ex.org\nResent-To: new@ex.org\nResent-Bcc: quiet@ex.org\nSubject: fwd\n\nb\n";
    let env = [
        ("PIPEMAIL_HOME", he.as_str()),
        ("MAILUSER", "dave"),
        ("MAILHOST", "dh.example"),
        ("NAME", "Dave \"D\" Q."),
    ];
    let out = run("mail-inject", &["-h"], &env, input);
    assert_eq!(out.status.code(), Some(0), "{}", s(&out.stderr));
    let d = dropped(&h);
    assert_eq!(d[0].1, b"Fdave@dh.example\0Tnew@ex.org\0Tquiet@ex.org\0\0");
    let hd = s(header_of(&d[0].0));
    assert_has(
        &hd,
        "\nResent-From: \"Dave \\\"D\\\" Q.\" <dave@dh.example>\n",
    );
    assert!(
        hd.contains("\nResent-Date: ") && hd.contains("\nResent-Message-ID: <"),
        "{}",
        hd
    );
    assert!(
        !hd.contains("Resent-Bcc") && !hd.contains("\nDate: "),
        "{}",
        hd
    );
    // No recipient anywhere: permanent, nothing queued.
    let out = run("mail-inject", &[], &env, b"Subject: none\n\n");
    assert_eq!(out.status.code(), Some(100));
    assert!(
        out.stderr.starts_with(b"mail-inject: fatal: no recipients"),
        "{}",
        s(&out.stderr)
    );
    let out = run("mail-inject", &["-x"], &env, b"");
    assert_eq!(out.status.code(), Some(100));
    assert!(out.stderr.starts_with(b"mail-inject: usage: "));
    assert_eq!(dropped(&h).len(), 1);
    // A header field cannot be smuggled in through the environment.
    let out = run(
        "mail-inject",
        &["-n"],
        &[
            ("PIPEMAIL_HOME", &he),
            ("NAME", "x\nBcc: evil@ex.org"),
            ("USER", "a\nb"),
        ],
        b"To: t@ex.org\n\n",
    );
    assert!(!s(&out.stdout).contains("\nBcc"), "{}", s(&out.stdout));
    assert!(
        s(&out.stdout).contains("From: \"x Bcc: evil@ex.org\" <ab@"),
        "{}",
        s(&out.stdout)
    );
}

// ---- mail-header ----

#[test]
fn mail_header_prints_fields() {
    let msg = b"Received: one\nSubject: hello\n  world\nreceived: two\nX-Enc: =?utf-8?q?J=C3=B6rg?= =?iso-8859-1?b?6Q==?=\r\n\r\nSubject: in the body\n";
    let ok = |args: &[&str], want: &[u8]| {
        let out = run("mail-header", args, &[], msg);
        assert_eq!(out.status.code(), Some(0), "{:?}", args);
        assert_eq!(s(&out.stdout), s(want), "{:?}", args);
    };
    ok(&["Subject"], b"hello  world\n");
    ok(&["RECEIVED"], b"one\n");
    ok(&["-a", "received"], b"one\ntwo\n");
    ok(&["-a", "Received", "Subject"], b"one\ntwo\nhello  world\n");
    ok(&["X-Enc"], b"=?utf-8?q?J=C3=B6rg?= =?iso-8859-1?b?6Q==?=\n");
    ok(&["-d", "X-Enc"], "Jörgé\n".as_bytes());
    let out = run("mail-header", &["To"], &[], msg);
    assert_eq!((out.status.code(), out.stdout), (Some(1), vec![]));
    let out = run("mail-header", &[], &[], msg);
    assert_eq!(out.status.code(), Some(100));
    assert!(out.stderr.starts_with(b"mail-header: usage: "));
    // A directory on stdin cannot be read: 111.
    let out = Command::new(bin("mail-header"))
        .arg("Subject")
        .stdin(std::fs::File::open("/").unwrap())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(111));
    assert!(out
        .stderr
        .starts_with(b"mail-header: fatal: unable to read message: "));
    // A file on stdin gets its offset back: a script can read the message again.
    let dir = scratch("mh-seek");
    std::fs::write(dir.join("m"), b"Subject: again\n\nbody\n").unwrap();
    let script = format!("'{}' Subject && cat", bin("mail-header").display());
    let out = Command::new("/bin/sh")
        .arg("-c")
        .arg(script)
        .stdin(std::fs::File::open(dir.join("m")).unwrap())
        .output()
        .unwrap();
    assert_eq!(s(&out.stdout), "again\nSubject: again\n\nbody\n");
    // It stops at the end of the header: an endless body is never read.
    let mut c = Command::new(bin("mail-header"))
        .arg("Subject")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut i = c.stdin.take().unwrap();
    i.write_all(b"Subject: early\n\n").unwrap();
    let mut o = Vec::new();
    c.stdout.take().unwrap().read_to_end(&mut o).unwrap();
    assert_eq!(o, b"early\n");
    assert_eq!(c.wait().unwrap().code(), Some(0));
    drop(i);
}

/// mail-header -d decodes with the one RFC 2047 decoder (iconv), as
/// imapd's ENVELOPE and SEARCH do: any charset the C library knows, an
/// unknown one left as written.
#[test]
fn mail_header_decodes_every_charset_iconv_knows() {
    let msg = b"X-Koi: =?koi8-r?b?8NLJ18XU?=\nX-Win: =?windows-1252?q?=80_5?=\nX-Bad: =?x-unknown?q?a?=\n\n";
    let out = run("mail-header", &["-d", "X-Koi", "X-Win", "X-Bad"], &[], msg);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(s(&out.stdout), "Привет\n€ 5\n=?x-unknown?q?a?=\n");
}

// ---- queue-filter ----

struct Filtered {
    code: Option<i32>,
    fd6: Vec<u8>,
    stderr: Vec<u8>,
}

/// Runs queue-filter with `msg` on fd 0, `envelope` on fd 1 and a pipe on fd 6.
fn queue_filter(env: &[(&str, &str)], msg: &[u8], envelope: &[u8]) -> Filtered {
    let (er, mut ew) = std::io::pipe().unwrap();
    let (mut r6, w6) = std::io::pipe().unwrap();
    let w6fd = std::os::fd::AsRawFd::as_raw_fd(&w6);
    let mut c = Command::new(bin("queue-filter"));
    c.env_clear().env("PATH", "/usr/bin:/bin");
    for (k, v) in env {
        c.env(k, v);
    }
    c.stdin(Stdio::piped()).stdout(er).stderr(Stdio::piped());
    unsafe {
        c.pre_exec(move || {
            if w6fd == 6 {
                let f = libc::fcntl(6, libc::F_GETFD);
                libc::fcntl(6, libc::F_SETFD, f & !libc::FD_CLOEXEC);
            } else if libc::dup2(w6fd, 6) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = c.spawn().unwrap();
    drop(w6);
    let mut stdin = child.stdin.take().unwrap();
    let (m, e) = (msg.to_vec(), envelope.to_vec());
    let t = std::thread::spawn(move || {
        let _ = stdin.write_all(&m);
        drop(stdin);
        let _ = ew.write_all(&e);
    });
    let mut stderr = Vec::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_end(&mut stderr)
        .unwrap();
    let code = child.wait().unwrap().code();
    t.join().unwrap();
    let mut fd6 = Vec::new();
    r6.read_to_end(&mut fd6).unwrap();
    Filtered { code, fd6, stderr }
}

/// A queue program that records message and envelope in `dir`.
fn recorder(dir: &Path) -> PathBuf {
    let p = dir.join("record");
    crate::common::script(
        &p,
        format!(
            "#!/bin/sh\ncat > '{0}/msg' && cat <&1 > '{0}/env' && exit 0\nexit 111\n",
            dir.display()
        ),
    );
    p
}

fn script(name: &str) -> String {
    format!("{}/scripts/filters/{}", env!("CARGO_MANIFEST_DIR"), name)
}

const ENV: &[u8] = b"Fs@ex.org\0Ta@ex.org\0Tb@ex.org\0\0";
const MSG: &[u8] = b"Subject: offer\n\nbuy cheap pills\n";

#[test]
fn queue_filter_modifies_and_passes_the_envelope_on() {
    let dir = scratch("qf-mod");
    let rec = recorder(&dir);
    let recs = rec.to_string_lossy().into_owned();
    let f = queue_filter(
        &[
            ("QUEUE_FILTER", &script("add-header")),
            ("QUEUE_FILTER_NEXT", &recs),
            ("QMAILQUEUE", "/nonexistent"),
        ],
        MSG,
        ENV,
    );
    assert_eq!(f.code, Some(0), "{}", s(&f.stderr));
    assert_eq!(
        std::fs::read(dir.join("msg")).unwrap(),
        b"X-Filtered: yes\nSubject: offer\n\nbuy cheap pills\n"
    );
    assert_eq!(std::fs::read(dir.join("env")).unwrap(), ENV);
    // The filter sees the envelope in SENDER and RECIPIENTS.
    let filt =
        "printf 'X-Env: %s|%s\\n' \"$SENDER\" \"$(printf '%s' \"$RECIPIENTS\" | tr '\\n' ,)\"; cat";
    let f = queue_filter(
        &[("QUEUE_FILTER", filt), ("QUEUE_FILTER_NEXT", &recs)],
        MSG,
        ENV,
    );
    assert_eq!(f.code, Some(0), "{}", s(&f.stderr));
    assert!(std::fs::read(dir.join("msg"))
        .unwrap()
        .starts_with(b"X-Env: s@ex.org|a@ex.org,b@ex.org\n"));
    // Without QUEUE_FILTER_NEXT the message goes into the queue itself.
    let h = home("qf-linked");
    let f = queue_filter(
        &[
            ("QUEUE_FILTER", &script("add-header")),
            ("PIPEMAIL_HOME", &hs(&h)),
        ],
        MSG,
        ENV,
    );
    assert_eq!(f.code, Some(0), "{}", s(&f.stderr));
    let d = dropped(&h);
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].1, ENV);
    assert!(memchr::memmem::find(&d[0].0, b"\nX-Filtered: yes\nSubject: offer\n").is_some());
}

/// $PIPEMAIL_DSN goes through queue-filter: to the next program as it is,
/// into a version 2 drop file by the linked queue code; one that does not
/// parse is 91 there.
#[test]
fn queue_filter_passes_dsn_parameters_on() {
    let dir = scratch("qf-dsn");
    let rec = dir.join("record");
    std::fs::write(
        &rec,
        format!(
            "#!/bin/sh\ncat >/dev/null; printf %s \"$PIPEMAIL_DSN\" > '{}/dsn'\n",
            dir.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&rec, std::fs::Permissions::from_mode(0o755)).unwrap();
    let dsn = "RET=HDRS\nNOTIFY=NEVER\n\n";
    let recs = rec.to_string_lossy().into_owned();
    let f = queue_filter(
        &[
            ("QUEUE_FILTER", "cat"),
            ("QUEUE_FILTER_NEXT", &recs),
            ("PIPEMAIL_DSN", dsn),
        ],
        MSG,
        ENV,
    );
    assert_eq!(f.code, Some(0), "{}", s(&f.stderr));
    assert_eq!(std::fs::read(dir.join("dsn")).unwrap(), dsn.as_bytes());
    let h = home("qf-dsn-linked");
    let f = queue_filter(
        &[
            ("QUEUE_FILTER", "cat"),
            ("PIPEMAIL_HOME", &hs(&h)),
            ("PIPEMAIL_DSN", dsn),
        ],
        MSG,
        ENV,
    );
    assert_eq!(f.code, Some(0), "{}", s(&f.stderr));
    let subs = submissions(&h);
    let mut want = format!("D{}\0", dsn).into_bytes();
    want.extend_from_slice(ENV);
    assert_eq!(subs[0].envelope, want);
    let h = home("qf-dsn-bad");
    let f = queue_filter(
        &[
            ("QUEUE_FILTER", "cat"),
            ("PIPEMAIL_HOME", &hs(&h)),
            ("PIPEMAIL_DSN", "RET=ALL\n"),
        ],
        MSG,
        ENV,
    );
    assert_eq!(f.code, Some(91));
    assert!(submissions(&h).is_empty());
}

#[test]
fn queue_filter_rejections_and_crashes() {
    let dir = scratch("qf-rej");
    let rec = recorder(&dir);
    let recs = rec.to_string_lossy().into_owned();
    let cases: &[(&str, &[(&str, &str)], Option<i32>, &[u8])] = &[
        (
            "echo 'no pills here (#5.7.1)' >&2; exit 100",
            &[],
            Some(82),
            b"Dno pills here (#5.7.1)",
        ),
        ("exit 100", &[], Some(31), b""),
        (
            "echo 'busy, later' >&2; exit 111",
            &[],
            Some(82),
            b"Zbusy, later",
        ),
        ("exit 111", &[], Some(71), b""),
        (
            "kill -9 $$",
            &[],
            Some(82),
            b"Zmessage filter crashed (#4.3.0)",
        ),
        (
            "exit 7",
            &[],
            Some(82),
            b"Zmessage filter failed with exit code 7 (#4.3.0)",
        ),
        (
            "cat >/dev/null; exit 0",
            &[],
            Some(82),
            b"Zthe filter wrote no message (#4.3.0)",
        ),
    ];
    for (filt, extra, code, fd6) in cases {
        let mut env = vec![
            ("QUEUE_FILTER", *filt),
            ("QUEUE_FILTER_NEXT", recs.as_str()),
        ];
        env.extend_from_slice(extra);
        let f = queue_filter(&env, MSG, ENV);
        assert_eq!(
            (f.code, s(&f.fd6)),
            (*code, s(fd6)),
            "filter {}: {}",
            filt,
            s(&f.stderr)
        );
        assert!(f.stderr.starts_with(b"queue-filter: "), "{}", s(&f.stderr));
        assert!(!dir.join("msg").exists(), "nothing passed on for {}", filt);
    }
    // The example script that rejects by a pattern in the body.
    let pat = script("reject-pattern");
    let f = queue_filter(
        &[
            ("QUEUE_FILTER", &pat),
            ("QUEUE_FILTER_NEXT", &recs),
            ("REJECT_PATTERN", "cheap (pills|watches)"),
        ],
        MSG,
        ENV,
    );
    assert_eq!(
        (f.code, s(&f.fd6)),
        (Some(82), s(b"Dmessage refused by content filter (#5.7.1)"))
    );
    let f = queue_filter(
        &[
            ("QUEUE_FILTER", &pat),
            ("QUEUE_FILTER_NEXT", &recs),
            ("REJECT_PATTERN", "offer"),
        ],
        MSG,
        ENV,
    );
    assert_eq!(
        f.code,
        Some(0),
        "the pattern looks at the body only: {}",
        s(&f.stderr)
    );
    assert_eq!(std::fs::read(dir.join("msg")).unwrap(), MSG);
    std::fs::remove_file(dir.join("msg")).unwrap();
    // 99: accepted and dropped.
    let f = queue_filter(
        &[("QUEUE_FILTER", "exit 99"), ("QUEUE_FILTER_NEXT", &recs)],
        MSG,
        ENV,
    );
    assert_eq!((f.code, f.fd6.len()), (Some(0), 0));
    assert!(!dir.join("msg").exists());
    // The next program's refusal comes back as 82 with its text.
    let f = queue_filter(
        &[("QUEUE_FILTER", "cat"), ("QUEUE_FILTER_NEXT", "/bin/false")],
        MSG,
        ENV,
    );
    assert_eq!(f.code, Some(82));
    assert!(f.fd6.starts_with(b"Z"));
    // Bad envelope, no filter configured.
    let f = queue_filter(
        &[("QUEUE_FILTER", "cat"), ("QUEUE_FILTER_NEXT", &recs)],
        MSG,
        b"Fs\0\0",
    );
    assert_eq!(f.code, Some(91));
    let f = queue_filter(&[("QUEUE_FILTER_NEXT", &recs)], MSG, ENV);
    assert_eq!(
        (f.code, s(&f.fd6)),
        (Some(82), s(b"ZQUEUE_FILTER is not set (#4.3.0)"))
    );
    // A condition that ends the run is fatal, not a warning.
    assert_eq!(
        s(&f.stderr),
        "queue-filter: fatal: QUEUE_FILTER is not set\n"
    );
}

// ---- no setuid: the submission proof ----

#[test]
fn a_submitter_cannot_forge_another_uid() {
    let Some(uid) = submitter() else {
        eprintln!("skipped: needs root to act as another uid");
        return;
    };
    let h = home("forge");
    let drop = h.join("queue/drop");
    // Writing a drop file by hand with a Received line that names uid 0:
    // the file still belongs to the writer, and queue-run compares the two.
    let name = "1.1.forged";
    let script = format!(
        "printf 'Received: (pipemail 1 invoked by uid 0); Thu, 1 Jan 1970 00:00:00 +0000\\nFrom: root\\n\\nhi\\n' > '{0}/{1}'",
        drop.display(),
        name
    );
    let out = sh_as(Some(uid), &script, &[]);
    assert!(out.status.success(), "{}", s(&out.stderr));
    let m = std::fs::read(drop.join(name)).unwrap();
    let first = m.split(|&c| c == b'\n').next().unwrap();
    let st_uid = std::fs::metadata(drop.join(name)).unwrap().uid();
    assert_eq!(st_uid, uid);
    assert_eq!(pipemail::queue::received_uid(first), Some(0));
    assert_ne!(
        pipemail::queue::received_uid(first),
        Some(st_uid),
        "the lie is visible to queue-run"
    );
    // Nor can the file be given away.
    let out = sh_as(
        Some(uid),
        &format!("chown 0 '{}/{}'", drop.display(), name),
        &[],
    );
    assert!(!out.status.success());
    assert_eq!(std::fs::metadata(drop.join(name)).unwrap().uid(), uid);
}

#[test]
fn a_submitter_cannot_list_read_or_touch_other_submissions() {
    let Some(uid) = submitter() else {
        eprintln!("skipped: needs root to act as another uid");
        return;
    };
    let h = home("privacy");
    let drop = h.join("queue/drop");
    assert_eq!(
        std::fs::metadata(&drop).unwrap().permissions().mode() & 0o7777,
        0o1733
    );
    // Root's message, submitted the ordinary way.
    let out = run(
        "sendmail",
        &["secret@ex.org"],
        &[("PIPEMAIL_HOME", &hs(&h))],
        b"Subject: private\n\nsecret\n",
    );
    assert_eq!(out.status.code(), Some(0));
    let names: Vec<String> = files(&drop);
    let msg = names.iter().find(|n| !n.ends_with(".env")).unwrap().clone();
    let d = drop.display();
    // Listing fails with EACCES.
    let out = sh_as(Some(uid), &format!("ls '{}'", d), &[]);
    assert!(!out.status.success());
    assert!(
        s(&out.stderr).contains("Permission denied"),
        "{}",
        s(&out.stderr)
    );
    // A guessed name does not exist; names carry 64 random bits.
    let guess = format!("{}.0000000000000000", msg.rsplit_once('.').unwrap().0);
    let out = sh_as(Some(uid), &format!("cat '{}/{}'", d, guess), &[]);
    assert!(!out.status.success());
    // Even knowing the name, others' files cannot be removed, renamed or overwritten.
    for cmd in [
        format!("rm -f '{}/{}'", d, msg),
        format!("mv '{0}/{1}' '{0}/x'", d, msg),
        format!("echo evil > '{}/{}'", d, msg),
    ] {
        let out = sh_as(Some(uid), &cmd, &[]);
        assert!(!out.status.success(), "{} must fail", cmd);
    }
    assert_eq!(files(&drop), names, "drop/ unchanged");
    assert!(body_of(&submissions(&h)[0].message).ends_with(b"secret\n"));
}

#[test]
fn nothing_built_is_setuid_or_setgid() {
    let toml = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml")).unwrap();
    let mut names = Vec::new();
    let mut in_bin = false;
    for l in toml.lines() {
        let l = l.trim();
        if l.starts_with('[') {
            in_bin = l == "[[bin]]";
        } else if in_bin && l.starts_with("name") {
            names.push(l.split('"').nth(1).unwrap().to_string());
        }
    }
    assert!(names.len() > 20, "bins found in Cargo.toml: {:?}", names);
    let own = bin("x").parent().unwrap().to_path_buf();
    let target = own.parent().unwrap().to_path_buf();
    let mut checked_own = 0;
    for profile in ["debug", "release"] {
        for n in &names {
            let p = target.join(profile).join(n);
            let Ok(md) = std::fs::metadata(&p) else {
                continue;
            };
            assert_eq!(
                md.permissions().mode() & 0o6000,
                0,
                "{} has a setuid or setgid bit",
                p.display()
            );
            if target.join(profile) == own {
                checked_own += 1;
            }
        }
    }
    assert_eq!(
        checked_own,
        names.len(),
        "every program of this build was checked"
    );
}

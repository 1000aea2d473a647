//! End-to-end tests across program boundaries: a scratch home, the real
//! `tcp-serve -1 127.0.0.1 0 smtp-recv` and `local-spawn queue-run` (as
//! root: mail users, the queue and the servers run as nobody, 65534, so
//! every uid switch is real), driven by real clients (Python's smtplib and
//! poplib, swaks) and real peers (an aiosmtpd sink, a dnslib DNS server).
//! Every process a test starts is stopped by pid when its guard drops.

use crate::common::*;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const DNS_PY: &str = include_str!("remote/dns_server.py");

/// Splits the first `n` header fields (with their continuation lines) off a
/// stored message; returns their names and the rest.
pub(crate) fn split_fields(m: &[u8], n: usize) -> (Vec<String>, &[u8]) {
    let mut names = Vec::new();
    let mut at = 0;
    for _ in 0..n {
        let colon = m[at..]
            .iter()
            .position(|&c| c == b':')
            .expect("a header field")
            + at;
        names.push(String::from_utf8_lossy(&m[at..colon]).into_owned());
        let mut end = at;
        loop {
            end += m[end..]
                .iter()
                .position(|&c| c == b'\n')
                .expect("a line end")
                + 1;
            if end >= m.len() || (m[end] != b' ' && m[end] != b'\t') {
                break;
            }
        }
        at = end;
    }
    (names, &m[at..])
}

pub(crate) fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    memchr::memmem::find(hay, needle)
}

// ---------------------------------------------------------------------------
// Issue 2: the receive path under concurrent real clients.

const CONCURRENT_PY: &str = r#"
import smtplib, sys, threading
port, n = int(sys.argv[1]), int(sys.argv[2])
go = threading.Barrier(n)
codes = [None] * n
def one(i):
    try:
        go.wait(20)
        s = smtplib.SMTP('127.0.0.1', port, timeout=30)
        s.ehlo('client%d.example' % i)
        assert s.mail('sender%d@example.org' % i)[0] == 250
        assert s.rcpt('ann@mail.example.org')[0] == 250
        msg = ('From: sender%d@example.org\r\nTo: ann@mail.example.org\r\nSubject: concurrent %d\r\n\r\nbody %d\r\n' % (i, i, i)).encode()
        codes[i] = s.data(msg)[0]
        s.quit()
    except Exception as e:
        codes[i] = repr(e)
ts = [threading.Thread(target=one, args=(i,)) for i in range(n)]
for t in ts: t.start()
for t in ts: t.join()
print(' '.join(str(c) for c in codes))
"#;

#[test]
fn concurrent_smtplib_clients_all_get_250_and_all_arrive() {
    if !python_has(&["smtplib", "poplib", "email"]) {
        return;
    }
    let mut s = Sys::new("e2e-conc", &["ann"]);
    let port = s.smtp("smtp", &[], &[], &[]);
    s.queue(&[]);
    let n = 36;
    let out = py(CONCURRENT_PY, &[&port.to_string(), &n.to_string()]);
    assert_eq!(out.trim(), vec!["250"; n].join(" "), "DATA replies");
    wait_until(30, "36 deliveries", || s.mail_of("ann").len() == n);
    let mut subjects: Vec<usize> = s
        .mail_of("ann")
        .iter()
        .map(|m| {
            let i = find(m, b"Subject: concurrent ").unwrap() + 20;
            let e = m[i..].iter().position(|&c| c == b'\n').unwrap() + i;
            std::str::from_utf8(&m[i..e]).unwrap().parse().unwrap()
        })
        .collect();
    subjects.sort();
    assert_eq!(subjects, (0..n).collect::<Vec<_>>());
    wait_until(10, "an idle queue", || s.queue_idle());
    if s.root {
        use std::os::unix::fs::MetadataExt;
        let d = s.user_home("ann").join("Maildir/new");
        for f in files(&d) {
            assert_eq!(
                std::fs::metadata(d.join(f)).unwrap().uid(),
                NOBODY,
                "delivered as nobody"
            );
        }
    }

    // swaks, when installed: its exit status and the message's arrival.
    if Command::new("swaks")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_err()
    {
        eprintln!("skipped: swaks is not installed");
        return;
    }
    let o = Command::new("swaks")
        .args([
            "--server",
            &format!("127.0.0.1:{}", port),
            "--from",
            "swaks@example.org",
        ])
        .args([
            "--to",
            "ann@mail.example.org",
            "--header",
            "Subject: from swaks",
            "--body",
            "swaks body",
        ])
        .args(["--timeout", "20"])
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "swaks: {}",
        String::from_utf8_lossy(&o.stdout)
    );
    assert!(String::from_utf8_lossy(&o.stdout).contains("<-  250 2.0.0 ok"));
    wait_until(10, "the swaks message", || s.mail_of("ann").len() == n + 1);
    assert!(s
        .mail_of("ann")
        .iter()
        .any(|m| find(m, b"Subject: from swaks\n").is_some()
            && find(m, b"Return-Path: <swaks@example.org>\n").is_some()
            && find(m, b"\n\nswaks body\n").is_some()));
}

// ---------------------------------------------------------------------------
// Issue 3: 200 messages byte-identical in the right Maildirs; RCPT validation.

const BULK_PY: &str = r#"
import smtplib, sys, os, threading
port, d, nthreads = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
ids = sorted(int(f[:-4]) for f in os.listdir(d) if f.endswith('.msg'))
out = {}
def worker(k):
    s = smtplib.SMTP('127.0.0.1', port, timeout=60)
    s.ehlo('bulk%d.example' % k)
    for i in ids[k::nthreads]:
        msg = open(os.path.join(d, '%d.msg' % i), 'rb').read()
        rcpts = open(os.path.join(d, '%d.rcpt' % i)).read().split()
        c1 = s.mail('sender%d@example.org' % i, ['BODY=8BITMIME', 'SIZE=%d' % len(msg)])[0]
        c2 = [s.rcpt(r)[0] for r in rcpts]
        c3 = s.data(msg)[0]
        out[i] = (c1, c2, c3)
    s.quit()
ts = [threading.Thread(target=worker, args=(k,)) for k in range(nthreads)]
for t in ts: t.start()
for t in ts: t.join()
bad = [(i, out.get(i)) for i in ids if out.get(i) != (250, [250] * len(open(os.path.join(d, '%d.rcpt' % i)).read().split()), 250)]
print('sent %d bad %r' % (len(out), bad))
"#;

/// Message `i` of the bulk test (CRLF line ends, as sent).
fn bulk_message(i: usize, to: &str) -> Vec<u8> {
    let mut m = format!("From: Sender {i} <sender{i}@example.org>\r\nTo: {to}\r\nSubject: bulk {i}\r\nX-Test-Id: {i}\r\n\r\n")
        .into_bytes();
    match i % 5 {
        0 => m.extend_from_slice(b".\r\n..\r\n.leading dot\r\n...three\r\nnot a dot\r\n.\r\n"),
        1 => m.extend_from_slice(b"8-bit: caf\xc3\xa9 \xff\xfe\x80\x81 end\r\n\xe2\x82\xac\r\n"),
        2 => {
            m.extend_from_slice(&vec![b'x'; 998]);
            m.extend_from_slice(b"\r\n");
            m.extend_from_slice(&[b'.'; 998]);
            m.extend_from_slice(b"\r\n");
        }
        3 => m.extend_from_slice(b"\tindented\r\n \r\n\r\n\r\ntrailing blank lines\r\n\r\n"),
        _ => m.extend_from_slice(format!("plain body {i}\r\n").as_bytes()),
    }
    if i == 7 {
        // The 5 MB body: 72-column lines, a dot line now and then.
        let line = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789\r\n";
        let mut k = 0;
        while m.len() < 5 * 1024 * 1024 {
            if k % 1000 == 0 {
                m.extend_from_slice(b".dot line\r\n");
            }
            m.extend_from_slice(line);
            k += 1;
        }
    }
    m
}

#[test]
fn two_hundred_messages_arrive_byte_identical_in_the_right_maildirs() {
    if !python_has(&["smtplib", "poplib", "email"]) {
        return;
    }
    let users = ["ann", "ben", "cat", "dan"];
    let mut s = Sys::new("e2e-bulk", &users);
    let port = s.smtp("smtp", &[], &[], &[]);
    s.queue(&[]);
    let t0 = Instant::now();
    let n = 200;
    let dir = s.base.join("msgs");
    std::fs::create_dir(&dir).unwrap();
    // want[user] = (id, original) for each copy that must arrive.
    let mut want: Vec<Vec<(usize, Vec<u8>)>> = vec![Vec::new(); users.len()];
    for i in 0..n {
        let mut to = vec![i % users.len()];
        if i % 10 == 3 {
            to.push((i + 1) % users.len()); // two recipients: two copies
        }
        let addrs: Vec<String> = to
            .iter()
            .map(|&u| format!("{}@mail.example.org", users[u]))
            .collect();
        let m = bulk_message(i, &addrs.join(", "));
        std::fs::write(dir.join(format!("{}.msg", i)), &m).unwrap();
        std::fs::write(dir.join(format!("{}.rcpt", i)), addrs.join(" ")).unwrap();
        for &u in &to {
            want[u].push((i, m.clone()));
        }
    }
    let out = py(BULK_PY, &[&port.to_string(), dir.to_str().unwrap(), "8"]);
    assert_eq!(out.trim(), format!("sent {} bad []", n));
    let total: usize = want.iter().map(|w| w.len()).sum();
    wait_until(45, "every delivery", || {
        users.iter().map(|u| s.mail_of(u).len()).sum::<usize>() == total
    });
    for (k, u) in users.iter().enumerate() {
        let mut got: Vec<(usize, Vec<u8>)> = s
            .mail_of(u)
            .into_iter()
            .map(|m| {
                let (names, rest) = split_fields(&m, 4);
                assert_eq!(
                    names,
                    ["Return-Path", "Delivered-To", "Received", "Received"],
                    "added lines"
                );
                let i = find(rest, b"\nX-Test-Id: ").expect("X-Test-Id") + 12;
                let e = rest[i..].iter().position(|&c| c == b'\n').unwrap() + i;
                let id: usize = std::str::from_utf8(&rest[i..e]).unwrap().parse().unwrap();
                assert!(
                    m.starts_with(
                        format!("Return-Path: <sender{}@example.org>\nDelivered-To: ", id)
                            .as_bytes()
                    ),
                    "{:?}",
                    String::from_utf8_lossy(&m[..200])
                );
                let dt = format!("Delivered-To: {}@mail.example.org\n", u);
                assert!(find(&m, dt.as_bytes()).is_some(), "{}", dt);
                (id, rest.to_vec())
            })
            .collect();
        got.sort_by_key(|g| g.0);
        let ids: Vec<usize> = got.iter().map(|g| g.0).collect();
        let want_ids: Vec<usize> = want[k].iter().map(|w| w.0).collect();
        assert_eq!(ids, want_ids, "messages in {}'s Maildir", u);
        for (g, w) in got.iter().zip(&want[k]) {
            assert!(g.1 == lf(&w.1), "message {} for {} differs", g.0, u);
        }
    }
    wait_until(10, "an idle queue", || s.queue_idle());
    let el = t0.elapsed();
    eprintln!("e2e bulk: {} messages, {} deliveries in {:?}", n, total, el);
    assert!(s.maildir(&s.home.join("alias")).is_empty(), "no bounce");
}

const RCPT_PY: &str = r#"
import smtplib, sys
s = smtplib.SMTP('127.0.0.1', int(sys.argv[1]), timeout=30)
s.ehlo('client.example')
print(s.mail('ann@mail.example.org'))
print(s.rcpt('nosuchuser@mail.example.org'))
print(s.rcpt('ben@mail.example.org'))
print(s.data(b'Subject: half known\r\n\r\nhello\r\n')[0])
print(s.mail('ann@mail.example.org'))
print(s.rcpt('nosuchuser2@mail.example.org'))
print(s.docmd('DATA'))
s.quit()
"#;

#[test]
fn unknown_local_user_gets_550_at_rcpt_and_no_bounce_follows() {
    if !python_has(&["smtplib", "poplib", "email"]) {
        return;
    }
    let mut s = Sys::new("e2e-rcpt", &["ann", "ben"]);
    let port = s.smtp("smtp", &[], &[], &[]);
    s.queue(&[]);
    let out = py(RCPT_PY, &[&port.to_string()]);
    assert_eq!(
        out,
        "(250, b'2.1.0 ok')\n(550, b'5.1.1 no such user here')\n(250, b'2.1.5 ok')\n250\n\
(250, b'2.1.0 ok')\n(550, b'5.1.1 no such user here')\n(554, b'5.5.1 no valid recipients')\n"
    );
    wait_until(10, "ben's message", || s.mail_of("ben").len() == 1);
    wait_until(10, "an idle queue", || s.queue_idle());
    std::thread::sleep(Duration::from_millis(300));
    assert!(s.mail_of("ann").is_empty(), "no bounce to the sender");
    assert!(
        s.maildir(&s.home.join("alias")).is_empty(),
        "nothing for postmaster"
    );
    assert!(s.log_text("smtp").contains("reason=unknown-user"));
    assert!(
        !s.log_text("queue").contains("bounce"),
        "{}",
        s.log_text("queue")
    );
}

// ---------------------------------------------------------------------------
// Issue 4: relaying through the queue to remote peers.

const SEND_PY: &str = r#"
import smtplib, sys
port, frm, to, path = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
s = smtplib.SMTP('127.0.0.1', port, timeout=30)
s.ehlo('client.example')
r = [s.mail(frm, ['BODY=8BITMIME'])]
r += [s.rcpt(t) for t in to.split()]
if all(c == 250 for c, _ in r):
    r.append(s.data(open(path, 'rb').read()))
print(' '.join(str(c) for c, _ in r))
s.quit()
"#;

/// Sends the message in file `path`; returns the reply codes (MAIL, RCPT..., DATA).
fn send(port: u16, from: &str, to: &str, path: &Path) -> String {
    py(
        SEND_PY,
        &[&port.to_string(), from, to, path.to_str().unwrap()],
    )
    .trim()
    .to_string()
}

const REMOTE_MSG: &[u8] =
    b"From: Ann <ann@mail.example.org>\r\nTo: x@remote.example\r\nSubject: out\r\n\r\n\
.leading dot\r\n..two\r\n.\r\n8-bit caf\xc3\xa9\r\nlast line\r\n";

/// Checks a sink record: the envelope, then two Received fields (smtp-recv's
/// and the queue's) and the message exactly as sent (CRLF, dots unstuffed).
fn check_record(rec: &[u8], envelope: &str, msg: &[u8]) {
    assert!(
        rec.starts_with(envelope.as_bytes()),
        "{:?}",
        String::from_utf8_lossy(&rec[..rec.len().min(300)])
    );
    let content = &rec[envelope.len()..];
    let body = lf(content);
    let (names, rest) = split_fields(&body, 2);
    assert_eq!(names, ["Received", "Received"]);
    assert!(
        content.ends_with(msg),
        "{:?}",
        String::from_utf8_lossy(content)
    );
    assert_eq!(rest, lf(msg));
    assert_eq!(
        content.len(),
        lf(content).len() + content.iter().filter(|&&c| c == b'\n').count(),
        "CRLF everywhere"
    );
}

/// The sink record's MAIL line: sender, SIZE= value, the other options.
fn mail_line(rec: &[u8]) -> (String, usize, Vec<String>) {
    let l = String::from_utf8_lossy(&rec[..find(rec, b"\n").unwrap()]).into_owned();
    let mut w = l.split_whitespace();
    assert_eq!(w.next(), Some("MAIL"), "{}", l);
    let from = w.next().unwrap().to_string();
    let mut size = None;
    let mut opts = Vec::new();
    for o in w {
        match o.strip_prefix("SIZE=") {
            Some(n) => size = Some(n.parse().unwrap()),
            None => opts.push(o.to_string()),
        }
    }
    (from, size.expect("SIZE= (the sink offers SIZE)"), opts)
}

fn relay_rules(s: &Sys) -> String {
    let p = s.base.join("smtp.rules");
    std::fs::write(&p, "127.0.0.1:allow,RELAYCLIENT=\"\"\n").unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
    p.to_string_lossy().into_owned()
}

#[test]
fn relayed_mail_reaches_a_sink_via_smtproutes() {
    if !python_has(&["smtplib", "poplib", "email", "aiosmtpd"]) {
        return;
    }
    let mut s = Sys::new("e2e-routes", &["ann"]);
    let (sport, out) = s.sink("sink", "127.0.0.1", 0);
    s.control(
        "smtproutes",
        &format!("remote.example:127.0.0.1:{}\n", sport),
    );
    let rules = relay_rules(&s);
    let port = s.smtp("smtp", &[], &["-x", &rules], &[]);
    s.queue(&[]);
    let m = s.base.join("m");
    std::fs::write(&m, REMOTE_MSG).unwrap();
    assert_eq!(
        send(
            port,
            "ann@mail.example.org",
            "x@remote.example y@remote.example",
            &m
        ),
        "250 250 250 250"
    );
    wait_until(20, "the sink's record", || {
        std::fs::read(&out).is_ok_and(|r| r.ends_with(b"last line\r\n"))
    });
    wait_until(10, "an idle queue", || s.queue_idle());
    let rec = std::fs::read(&out).unwrap();
    let env_end = find(&rec, b"\n\n").unwrap() + 2;
    let (from, size, opts) = mail_line(&rec);
    assert_eq!(
        (from.as_str(), opts.as_slice()),
        ("ann@mail.example.org", &["BODY=8BITMIME".to_string()][..])
    );
    let content = rec.len() - env_end;
    assert!(
        size >= content && size <= content + 8,
        "SIZE={} for {} bytes",
        size,
        content
    );
    assert_eq!(
        &rec[find(&rec, b"\n").unwrap() + 1..env_end],
        b"RCPT x@remote.example\nRCPT y@remote.example\n\n",
        "one transaction for both recipients"
    );
    check_record(&rec, &String::from_utf8_lossy(&rec[..env_end]), REMOTE_MSG);
    assert!(s.mail_of("ann").is_empty(), "no bounce");
}

const MX_ZONE: &str = r#"{
 "mx.example": {"MX": [[10, "mail.mx.example"]]},
 "mail.mx.example": {"A": ["127.0.0.2"]}
}"#;

#[test]
fn relayed_mail_reaches_a_sink_by_mx_from_a_test_dns_server() {
    if !python_has(&["smtplib", "poplib", "email", "aiosmtpd", "dnslib"]) {
        return;
    }
    let mut s = Sys::new("e2e-mx", &["ann"]);
    std::fs::write(s.base.join("zone.json"), MX_ZONE).unwrap();
    let zone = s.base.join("zone.json").to_string_lossy().into_owned();
    let dport = s.start_py("dns", DNS_PY, &[&zone, "127.0.0.1"]);
    let (sport, out) = s.sink("sink", "127.0.0.2", 0);
    s.control("notipme", "127.0.0.2\n");
    let rules = relay_rules(&s);
    let port = s.smtp("smtp", &[], &["-x", &rules], &[]);
    let dns = format!("127.0.0.1:{}", dport);
    let sp = sport.to_string();
    s.queue(&[
        ("DNSCACHEIP", &dns),
        ("SMTPPORT", &sp),
        ("RES_OPTIONS", "timeout:1 attempts:2"),
    ]);
    let m = s.base.join("m");
    let msg = b"From: ann@mail.example.org\r\nTo: r@MX.example\r\nSubject: by mx\r\n\r\n.dot\r\nvia MX\r\n";
    std::fs::write(&m, msg).unwrap();
    assert_eq!(
        send(port, "ann@mail.example.org", "r@MX.example", &m),
        "250 250 250"
    );
    wait_until(20, "the sink's record", || {
        std::fs::read(&out).is_ok_and(|r| r.ends_with(b"via MX\r\n"))
    });
    let rec = std::fs::read(&out).unwrap();
    let env_end = find(&rec, b"\n\n").unwrap() + 2;
    assert!(rec.starts_with(b"MAIL ann@mail.example.org SIZE="));
    assert!(
        rec[..env_end].ends_with(b"\nRCPT r@MX.example\n\n"),
        "{:?}",
        String::from_utf8_lossy(&rec[..env_end])
    );
    check_record(&rec, &String::from_utf8_lossy(&rec[..env_end]), msg);
    wait_until(10, "an idle queue", || s.queue_idle());
    assert!(
        s.log_text("queue").contains("success: r@MX.example"),
        "{}",
        s.log_text("queue")
    );
}

const DSN_PY: &str = r#"
import email, sys
m = email.message_from_binary_file(open(sys.argv[1], 'rb'))
print(m.get_content_type(), m.get_param('report-type'))
parts = m.get_payload()
print(parts[0].get_content_type(), parts[1].get_content_type(), parts[2].get_content_type())
for b in parts[1].get_payload()[1:]:
    print(b['Final-Recipient'], b['Action'], b['Status'])
    print(repr(b['Diagnostic-Code']))
"#;

#[test]
fn permanent_remote_failure_becomes_a_dsn_in_the_senders_maildir() {
    if !python_has(&["smtplib", "poplib", "email", "aiosmtpd"]) {
        return;
    }
    let mut s = Sys::new("e2e-dsn", &["ann"]);
    let (sport, out) = s.sink("sink", "127.0.0.1", 0);
    s.control(
        "smtproutes",
        &format!("remote.example:127.0.0.1:{}\n", sport),
    );
    let rules = relay_rules(&s);
    let port = s.smtp("smtp", &[], &["-x", &rules], &[]);
    s.queue(&[]);
    let m = s.base.join("m");
    std::fs::write(&m, b"From: ann@mail.example.org\r\nTo: perm@remote.example\r\nSubject: doomed\r\n\r\nbounce me\r\n").unwrap();
    assert_eq!(
        send(
            port,
            "ann@mail.example.org",
            "perm@remote.example ok@remote.example",
            &m
        ),
        "250 250 250 250"
    );
    wait_until(20, "the DSN", || s.mail_of("ann").len() == 1);
    wait_until(10, "an idle queue", || s.queue_idle());
    let dsn = &s.mail_of("ann")[0];
    assert!(
        dsn.starts_with(b"Return-Path: <>\nDelivered-To: ann@mail.example.org\n"),
        "{}",
        String::from_utf8_lossy(dsn)
    );
    let f = s.base.join("dsn");
    std::fs::write(&f, dsn).unwrap();
    let p = py(DSN_PY, &[f.to_str().unwrap()]);
    let lines: Vec<&str> = p.lines().collect();
    assert_eq!(lines[0], "multipart/report delivery-status", "{}", p);
    assert_eq!(
        lines[1], "text/plain message/delivery-status message/rfc822",
        "{}",
        p
    );
    assert_eq!(
        lines[2], "rfc822; perm@remote.example failed 5.1.1",
        "{}",
        p
    );
    assert!(lines[3].contains("550 5.1.1 no such user"), "{}", p);
    assert_eq!(lines.len(), 4, "one failed recipient: {}", p);
    // The other recipient was delivered; the bounce holds the original.
    let rec = std::fs::read(&out).unwrap();
    assert!(find(&rec, b"RCPT ok@remote.example\n\n").is_some());
    assert!(find(&rec, b"perm@").is_none_or(|i| i > find(&rec, b"\n\n").unwrap()));
    assert!(find(dsn, b"\nbounce me\n").is_some());
}

// ---------------------------------------------------------------------------
// Issue 5: SMTP AUTH and SMTP-after-POP through the real servers.

pub(crate) fn openssl_hash(pw: &str) -> Option<String> {
    let o = Command::new("openssl")
        .args(["passwd", "-6", pw])
        .output()
        .ok()?;
    if !o.status.success() {
        return None;
    }
    Some(String::from_utf8(o.stdout).ok()?.trim().to_string())
}

/// users/passwd with `ann` (password "sesame"), readable by the servers' uid.
pub(crate) fn passwd(s: &Sys) -> bool {
    let Some(h) = openssl_hash("sesame") else {
        eprintln!("skipped: openssl passwd -6 failed");
        return false;
    };
    let p = s.home.join("users/passwd");
    std::fs::write(
        &p,
        format!(
            "ann:{}:{}:{}:{}:\n",
            h,
            s.uid,
            s.gid,
            s.user_home("ann").display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
    if s.root {
        chown(&p, s.uid, s.gid);
    }
    true
}

const AUTH_PY: &str = r#"
import smtplib, sys
port, path = int(sys.argv[1]), sys.argv[2]
def session():
    s = smtplib.SMTP('127.0.0.1', port, timeout=30)
    s.ehlo('client.example')
    return s
s = session()
print('auth offered', s.has_extn('auth'), s.esmtp_features.get('auth'))
print('before', s.mail('ann@mail.example.org')[0], s.rcpt('x@remote.example'))
s.rset()
try:
    s.login('ann', 'wrong')
    print('bad password accepted')
except smtplib.SMTPAuthenticationError as e:
    print('bad password', e.smtp_code, e.smtp_error)
print('login', s.login('ann', 'sesame'))
print('after', s.mail('ann@mail.example.org')[0], s.rcpt('x@remote.example'), s.data(open(path, 'rb').read())[0])
s.quit()
s = session()
s.user, s.password = 'ann', 'sesame'
print('login LOGIN', s.auth('LOGIN', s.auth_login))
print('after LOGIN', s.mail('ann@mail.example.org')[0], s.rcpt('y@remote.example')[0])
s.quit()
"#;

#[test]
fn smtp_auth_through_tcp_serve_allows_relaying_only_after_login() {
    if !python_has(&["smtplib", "poplib", "email", "aiosmtpd"]) {
        return;
    }
    let mut s = Sys::new("e2e-auth", &["ann"]);
    if !passwd(&s) {
        return;
    }
    let (sport, out) = s.sink("sink", "127.0.0.1", 0);
    s.control(
        "smtproutes",
        &format!("remote.example:127.0.0.1:{}\n", sport),
    );
    let cp = bin("check-password").to_string_lossy().into_owned();
    let port = s.smtp(
        "smtp",
        &[
            ("SMTPAUTH", &cp),
            ("AUTH_CLEARTEXT", "1"),
            ("CHECKPASSWORD_DELAY", "50"),
        ],
        &[],
        &[],
    );
    s.queue(&[]);
    let m = s.base.join("m");
    std::fs::write(&m, b"Subject: authenticated\r\n\r\nrelayed after AUTH\r\n").unwrap();
    let out_py = py(AUTH_PY, &[&port.to_string(), m.to_str().unwrap()]);
    assert_eq!(
        out_py,
        "auth offered True  PLAIN LOGIN\n\
before 250 (554, b'5.7.1 relaying denied')\n\
bad password 535 b'5.7.8 authentication credentials invalid'\n\
login (235, b'2.7.0 authentication successful')\n\
after 250 (250, b'2.1.5 ok') 250\n\
login LOGIN (235, b'2.7.0 authentication successful')\n\
after LOGIN 250 250\n"
    );
    wait_until(20, "the relayed message at the sink", || {
        std::fs::read(&out).is_ok_and(|r| r.ends_with(b"relayed after AUTH\r\n"))
    });
    let rec = std::fs::read(&out).unwrap();
    assert!(rec.starts_with(b"MAIL ann@mail.example.org "));
    assert!(
        find(&rec, b"(AUTH ann)").is_some(),
        "{}",
        String::from_utf8_lossy(&rec)
    );
    assert!(
        find(&rec, b"with ESMTPA").is_some(),
        "{}",
        String::from_utf8_lossy(&rec)
    );
    assert!(s.log_text("smtp").contains("auth failed user=ann"));
}

const POP_PY: &str = r#"
import poplib, sys
port, pw = int(sys.argv[1]), sys.argv[2]
p = poplib.POP3('127.0.0.1', port, timeout=30)
p.user('ann')
try:
    p.pass_(pw)
except poplib.error_proto as e:
    print('refused', e)
    sys.exit(0)
print('stat', p.stat())
p.quit()
"#;

const RCPT_ONLY_PY: &str = r#"
import smtplib, sys
s = smtplib.SMTP('127.0.0.1', int(sys.argv[1]), timeout=30)
s.ehlo('client.example')
s.mail('ann@mail.example.org')
print(s.rcpt('x@remote.example'))
s.quit()
"#;

#[test]
fn smtp_after_pop_opens_the_relay_until_the_stamp_expires() {
    if !python_has(&["smtplib", "poplib", "email"]) {
        return;
    }
    let mut s = Sys::new("e2e-sap", &["ann"]);
    if !passwd(&s) {
        return;
    }
    s.control("relaytime", "30\n");
    // POP3 as root when root: check-password switches to ann's uid (nobody),
    // so relay-stamp writes the stamp as the owner of relay/.
    let pop: Vec<String> = vec![
        bin("pop3-login").to_string_lossy().into_owned(),
        "localhost".into(),
        bin("check-password").to_string_lossy().into_owned(),
        bin("relay-stamp").to_string_lossy().into_owned(),
        bin("pop3d").to_string_lossy().into_owned(),
        "Maildir".into(),
    ];
    let pport = s.serve("pop3", &[("CHECKPASSWORD_DELAY", "50")], &[], &pop, false);
    let port = s.smtp("smtp", &[], &[], &["relay-gate"]);
    s.queue(&[]);
    let relay = || py(RCPT_ONLY_PY, &[&port.to_string()]).trim().to_string();
    let denied = "(554, b'5.7.1 relaying denied')";
    assert_eq!(relay(), denied, "before any POP3 login");
    // A failed login stamps nothing.
    assert!(py(POP_PY, &[&pport.to_string(), "wrong"]).starts_with("refused"));
    assert!(files(&s.home.join("relay")).is_empty());
    assert_eq!(relay(), denied, "after a failed POP3 login");
    assert_eq!(
        py(POP_PY, &[&pport.to_string(), "sesame"]).trim(),
        "stat (0, 0)"
    );
    let stamp = s.home.join("relay/127.0.0.1");
    assert!(stamp.exists(), "relay/: {:?}", files(&s.home.join("relay")));
    if s.root {
        use std::os::unix::fs::MetadataExt;
        assert_eq!(
            std::fs::metadata(&stamp).unwrap().uid(),
            NOBODY,
            "stamped as the user"
        );
    }
    assert_eq!(relay(), "(250, b'2.1.5 ok')", "after the POP3 login");
    assert!(s.log_text("smtp").contains("relay allowed for 127.0.0.1"));
    // The stamp expires: make it a minute old.
    let old = std::time::SystemTime::now() - Duration::from_secs(60);
    std::fs::File::options()
        .write(true)
        .open(&stamp)
        .unwrap()
        .set_modified(old)
        .unwrap();
    assert_eq!(relay(), denied, "after the stamp expired");
    assert!(!stamp.exists(), "relay-gate removed the stale stamp");
}

// ---------------------------------------------------------------------------
// ETRN: a deferred remote message goes out at once when asked.

const ETRN_PY: &str = r#"
import smtplib, sys
s = smtplib.SMTP('127.0.0.1', int(sys.argv[1]), timeout=30)
print(s.docmd('ETRN', 'etrn.example'))
s.ehlo('client.example')
print(s.docmd('ETRN', 'ETRN.example'))
print(s.docmd('ETRN', '#queue'))
s.quit()
"#;

#[test]
fn etrn_over_smtp_delivers_a_deferred_message_now() {
    if !python_has(&["smtplib", "poplib", "email", "aiosmtpd"]) {
        return;
    }
    let mut s = Sys::new("e2e-etrn", &["ann"]);
    // A port with nothing listening yet: the sink is down.
    let sport = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    s.control("smtproutes", &format!("etrn.example:127.0.0.1:{}\n", sport));
    let rules = relay_rules(&s);
    let port = s.smtp("smtp", &[], &["-x", &rules], &[]);
    s.queue(&[]);
    let m = s.base.join("m");
    std::fs::write(&m, b"Subject: held\r\n\r\nwaiting for ETRN\r\n").unwrap();
    assert_eq!(
        send(port, "ann@mail.example.org", "x@etrn.example", &m),
        "250 250 250"
    );
    wait_until(20, "the deferral", || {
        s.log_text("queue").contains("deferral: x@etrn.example")
    });
    let (p2, out) = s.sink("sink", "127.0.0.1", sport);
    assert_eq!(p2, sport);
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        !out.exists(),
        "no retry before ETRN (the next is minutes away)"
    );
    let t = Instant::now();
    let r = py(ETRN_PY, &[&port.to_string()]);
    assert_eq!(
        r,
        "(503, b'5.5.1 send HELO or EHLO first')\n\
(250, b'2.0.0 queueing for etrn.example started')\n\
(501, b'5.5.4 syntax: ETRN domain')\n"
    );
    wait_until(10, "delivery after ETRN", || {
        std::fs::read(&out).is_ok_and(|r| r.ends_with(b"waiting for ETRN\r\n"))
    });
    eprintln!("e2e etrn: delivered {:?} after ETRN", t.elapsed());
    wait_until(10, "an idle queue", || s.queue_idle());
    assert!(
        s.log_text("queue")
            .contains("retrying domain etrn.example now"),
        "{}",
        s.log_text("queue")
    );
    assert!(s.log_text("smtp").contains("etrn domain=etrn.example"));
}

// ---------------------------------------------------------------------------
// Issue 13: a forwarding loop that the Delivered-To check cannot see.

/// joe's .qmail-default forwards every joe-EXT to joe-xEXT: a new address
/// on every pass, so no Delivered-To line ever repeats. Each pass adds a
/// Delivered-To and a Received line; past 100 of them forward refuses to
/// queue it again and the sender gets the bounce, within seconds (before:
/// a thousand passes, until the address outgrew the queue's limit).
#[test]
fn a_local_forwarding_loop_ends_in_a_bounce_at_the_hop_limit() {
    let mut s = Sys::new("e2e-hops", &["ann", "joe"]);
    let joe = s.user_home("joe");
    let assign = std::fs::read_to_string(s.home.join("users/assign")).unwrap();
    let wild = format!("+joe-:joe:{}:{}:{}:-::\n.\n", s.uid, s.gid, joe.display());
    std::fs::write(s.home.join("users/assign"), assign.replace(".\n", &wild)).unwrap();
    let dot = joe.join(".qmail-default");
    std::fs::write(
        &dot,
        format!(
            "|{} \"joe-x$EXT@mail.example.org\"\n",
            bin("forward").display()
        ),
    )
    .unwrap();
    if s.root {
        chown(&dot, s.uid, s.gid);
    }
    s.queue(&[]);
    let t = Instant::now();
    let mut c = s.command(&bin("sendmail"), &[]);
    let mut child = c
        .args(["-f", "ann@mail.example.org", "joe-x@mail.example.org"])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"From: ann@mail.example.org\nSubject: round and round\n\nloop\n")
        .unwrap();
    assert!(child.wait().unwrap().success());
    wait_until(60, "the bounce", || s.mail_of("ann").len() == 1);
    let took = t.elapsed();
    wait_until(10, "an idle queue", || s.queue_idle());
    let dsn = String::from_utf8_lossy(&s.mail_of("ann")[0]).into_owned();
    assert!(
        dsn.contains("This message is looping: it has more than 100 Received and Delivered-To lines. (#5.4.6)"),
        "{}",
        dsn
    );
    // The last address tried: one x per pass.
    let passes = dsn
        .lines()
        .find_map(|l| l.strip_prefix("Final-Recipient: rfc822; joe-"))
        .map(|a| a.trim_end_matches("@mail.example.org").len())
        .unwrap_or_else(|| panic!("no Final-Recipient in {}", dsn));
    assert!((40..=100).contains(&passes), "{} passes", passes);
    assert!(s.mail_of("joe").is_empty());
    assert!(took < Duration::from_secs(60), "{:?}", took);
}

//! Tests for the remote area: dns-query against a test DNS server (Python
//! dnslib), remote-send against aiosmtpd and against a scripted raw peer
//! written here (exact bytes, stalls, closes).

use crate::common::{control, home, run, scratch};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const DNS_PY: &str = include_str!("remote/dns_server.py");
const SMTP_PY: &str = include_str!("remote/smtp_peer.py");

/// Whether python3 has `module`; a missing one skips a test locally and
/// fails it under CI=true.
pub(crate) fn python_has(module: &str) -> bool {
    let ok = Command::new("python3")
        .args(["-c", &format!("import {}", module)])
        .stderr(Stdio::null())
        .status();
    if !matches!(ok, Ok(s) if s.success()) {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "python3 module {} is missing",
            module
        );
        eprintln!("skipped: python3 module {} is missing", module);
        return false;
    }
    true
}

/// A Python helper that prints its port first; killed (by pid) on drop.
pub(crate) struct Py {
    child: Child,
    pub(crate) port: u16,
}

impl Drop for Py {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_py(script: &str, dir: &Path, name: &str, args: &[&str]) -> Py {
    let path = dir.join(name);
    std::fs::write(&path, script).unwrap();
    let mut child = Command::new("python3")
        .arg(&path)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port = line
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("{} printed no port: {:?}", name, line));
    Py { child, port }
}

pub(crate) fn dns_server(dir: &Path, zone: &str) -> Py {
    std::fs::write(dir.join("zone.json"), zone).unwrap();
    let z = dir.join("zone.json");
    start_py(
        DNS_PY,
        dir,
        "dns_server.py",
        &[z.to_str().unwrap(), "127.0.0.1"],
    )
}

const ZONE: &str = r#"{
 "order.test": {"MX": [[20, "b.order.test"], [10, "a.order.test"], [30, "c.order.test"], [20, "bb.order.test"]]},
 "alias.test": {"CNAME": "mid.test"},
 "mid.test": {"CNAME": "real.test"},
 "real.test": {"A": ["192.0.2.1"], "AAAA": ["2001:db8::1"]},
 "nomx.test": {"A": ["127.0.0.2"]},
 "null.test": {"MX": [[0, "."]]},
 "fail.test": {"special": "servfail"},
 "slow.test": {"special": "drop"},
 "big.test": {"special": "tc", "TXT": ["one", "two", "three"]},
 "evil.test": {"special": "loop"},
 "spoof.test": {"special": "badid", "A": ["192.0.2.9"]},
 "loop1.test": {"CNAME": "loop2.test"},
 "loop2.test": {"CNAME": "loop1.test"},
 "txt.test": {"TXT": ["v=spf1 -all"]},
 "1.2.0.192.in-addr.arpa": {"PTR": ["host.test"]},
 "mx.test": {"MX": [[10, "mail.mx.test"]]},
 "mail.mx.test": {"A": ["127.0.0.2"]},
 "two.test": {"MX": [[10, "dead.two.test"], [20, "mail.mx.test"]]},
 "dead.two.test": {"A": ["127.0.0.3"]},
 "self.test": {"MX": [[10, "me.self.test"], [20, "mail.mx.test"]]},
 "me.self.test": {"A": ["127.0.0.1"]}
}"#;

fn dnsq(port: u16, args: &[&str]) -> (Option<i32>, Vec<u8>, Vec<u8>) {
    let ip = format!("127.0.0.1:{}", port);
    let o = run(
        "dns-query",
        args,
        &[("DNSCACHEIP", &ip), ("RES_OPTIONS", "timeout:1 attempts:1")],
        b"",
    );
    (o.status.code(), o.stdout, o.stderr)
}

#[test]
fn dns_query_against_a_test_server() {
    if !python_has("dnslib") {
        return;
    }
    let d = scratch("dns");
    let srv = dns_server(&d, ZONE);
    let p = srv.port;
    assert_eq!(
        dnsq(p, &["mx", "order.test"]).1,
        b"10 a.order.test\n20 b.order.test\n20 bb.order.test\n30 c.order.test\n"
    );
    // CNAME chain followed
    assert_eq!(
        dnsq(p, &["a", "alias.test"]),
        (Some(0), b"192.0.2.1\n".to_vec(), Vec::new())
    );
    assert_eq!(dnsq(p, &["aaaa", "ALIAS.test."]).1, b"2001:db8::1\n");
    // no MX: no data, permanent
    let (c, out, err) = dnsq(p, &["mx", "nomx.test"]);
    assert_eq!((c, out), (Some(100), Vec::new()));
    assert_eq!(
        err,
        b"dns-query: fatal: unable to find MX records for nomx.test: no record of that type\n"
    );
    // NXDOMAIN: permanent
    let (c, _, err) = dnsq(p, &["a", "nothere.test"]);
    assert_eq!(c, Some(100));
    assert_eq!(
        err,
        b"dns-query: fatal: unable to find A records for nothere.test: no such domain\n"
    );
    // null MX
    assert_eq!(dnsq(p, &["mx", "null.test"]).1, b"0 .\n");
    // SERVFAIL: temporary
    let (c, _, err) = dnsq(p, &["a", "fail.test"]);
    assert_eq!(c, Some(111));
    assert!(
        String::from_utf8_lossy(&err).contains("said SERVFAIL"),
        "{:?}",
        String::from_utf8_lossy(&err)
    );
    // timeout: temporary, within the configured second
    let t = Instant::now();
    let (c, _, err) = dnsq(p, &["a", "slow.test"]);
    assert_eq!(c, Some(111));
    assert!(String::from_utf8_lossy(&err).ends_with("timed out\n"));
    assert!(t.elapsed() < Duration::from_secs(3));
    // truncated over UDP: asked again over TCP
    assert_eq!(dnsq(p, &["txt", "big.test"]).1, b"one\ntwo\nthree\n");
    assert_eq!(dnsq(p, &["txt", "txt.test"]).1, b"v=spf1 -all\n");
    assert_eq!(dnsq(p, &["ptr", "192.0.2.1"]).1, b"host.test\n");
    // hostile and foreign answers
    let (c, _, err) = dnsq(p, &["a", "evil.test"]);
    assert_eq!(c, Some(111));
    assert!(String::from_utf8_lossy(&err).contains("malformed answer"));
    assert_eq!(dnsq(p, &["a", "spoof.test"]).1, b"192.0.2.9\n");
    let (c, _, err) = dnsq(p, &["a", "loop1.test"]);
    assert_eq!(c, Some(111));
    assert!(String::from_utf8_lossy(&err).contains("CNAMEs"));
    // usage
    assert_eq!(dnsq(p, &["srv", "x"]).0, Some(100));
    assert_eq!(dnsq(p, &["mx"]).0, Some(100));
}

// ---------------------------------------------------------------------------
// A scripted raw SMTP peer: records every byte it receives.

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    /// Replies only once MAIL, RCPT and DATA have all arrived (fails a client that does not pipeline).
    Strict,
    StallGreeting,
    Greet421,
    StallRcpt,
    StallDot,
    CloseDot,
    CloseMidData,
    NoEsmtp,
}

struct Peer {
    port: u16,
    got: Arc<Mutex<Vec<u8>>>,
    from: Arc<Mutex<Vec<std::net::IpAddr>>>,
}

fn peer(addr: &str, port: u16, mode: Mode) -> Option<Peer> {
    let l = TcpListener::bind((addr, port)).ok()?;
    let port = l.local_addr().unwrap().port();
    let got = Arc::new(Mutex::new(Vec::new()));
    let g = got.clone();
    let from = Arc::new(Mutex::new(Vec::new()));
    let f = from.clone();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(s) = s else { return };
            if let Ok(a) = s.peer_addr() {
                f.lock().unwrap().push(a.ip());
            }
            let g = g.clone();
            std::thread::spawn(move || serve(s, mode, g));
        }
    });
    Some(Peer { port, got, from })
}

fn serve(mut s: TcpStream, mode: Mode, got: Arc<Mutex<Vec<u8>>>) {
    let stall = |mut s: TcpStream| {
        let mut b = [0u8; 4096];
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        while matches!(s.read(&mut b), Ok(n) if n > 0) {}
    };
    match mode {
        Mode::StallGreeting => return stall(s),
        Mode::Greet421 => {
            let _ = s.write_all(b"421 4.3.2 busy\r\n");
            return;
        }
        _ => {}
    }
    let _ = s.write_all(b"220 peer.test ESMTP\r\n");
    let mut buf: Vec<u8> = Vec::new();
    let mut out: Vec<u8> = Vec::new();
    let mut in_data = false;
    let mut seen_data_cmd = false;
    let mut b = [0u8; 65536];
    loop {
        let n = match s.read(&mut b) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        got.lock().unwrap().extend_from_slice(&b[..n]);
        buf.extend_from_slice(&b[..n]);
        if in_data {
            if mode == Mode::CloseMidData {
                return;
            }
            if let Some(i) = find(&buf, b"\r\n.\r\n") {
                buf.drain(..i + 5);
                in_data = false;
                match mode {
                    Mode::StallDot => return stall(s),
                    Mode::CloseDot => return,
                    _ => out.extend_from_slice(b"250 2.0.0 ok queued\r\n"),
                }
            } else {
                continue;
            }
        }
        while let Some(i) = find(&buf, b"\r\n") {
            let line: Vec<u8> = buf.drain(..i + 2).collect();
            let verb = line[..line.len().min(4)].to_ascii_uppercase();
            let reply: &[u8] = match &verb[..] {
                b"EHLO" if mode == Mode::NoEsmtp => b"502 5.5.1 what\r\n",
                b"EHLO" => b"250-peer.test\r\n250 PIPELINING\r\n",
                b"HELO" => b"250 peer.test\r\n",
                b"MAIL" => b"250 2.1.0 ok\r\n",
                b"RCPT" if mode == Mode::StallRcpt => return stall(s),
                b"RCPT" => b"250 2.1.5 ok\r\n",
                b"DATA" => {
                    seen_data_cmd = true;
                    in_data = true;
                    b"354 go ahead\r\n"
                }
                b"QUIT" => b"221 bye\r\n",
                _ => b"500 what\r\n",
            };
            out.extend_from_slice(reply);
            if in_data {
                break;
            }
        }
        let hold = mode == Mode::Strict
            && !seen_data_cmd
            && got.lock().unwrap().windows(4).any(|w| w == b"MAIL");
        if !hold && !out.is_empty() {
            let _ = s.write_all(&out);
            out.clear();
        }
    }
}

/// What the peer got, once it ends with `end` (or after 3 s).
fn wait_for(got: &Arc<Mutex<Vec<u8>>>, end: &[u8]) -> Vec<u8> {
    let t = Instant::now();
    loop {
        let g = got.lock().unwrap().clone();
        if g.ends_with(end) || t.elapsed() > Duration::from_secs(3) {
            return g;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn find(h: &[u8], n: &[u8]) -> Option<usize> {
    h.windows(n.len()).position(|w| w == n)
}

fn split_report(r: &[u8]) -> Vec<String> {
    let mut v: Vec<String> = r
        .split(|&c| c == 0)
        .map(|s| String::from_utf8_lossy(s).into_owned())
        .collect();
    assert_eq!(
        v.pop().as_deref(),
        Some(""),
        "report does not end in NUL: {:?}",
        String::from_utf8_lossy(r)
    );
    v
}

fn send(home: &Path, host: &str, recips: &[&str], msg: &[u8], env: &[(&str, &str)]) -> Vec<String> {
    let h = home.to_str().unwrap().to_string();
    let mut e: Vec<(&str, &str)> = vec![("PIPEMAIL_HOME", &h)];
    e.extend_from_slice(env);
    let mut args = vec![host, "s@example.org"];
    args.extend_from_slice(recips);
    let o = run("remote-send", &args, &e, msg);
    assert_eq!(
        o.status.code(),
        Some(0),
        "stderr: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    split_report(&o.stdout)
}

fn route_to(home: &Path, addr: &str, port: u16) {
    control(home, "smtproutes", &format!(":{}:{}\n", addr, port));
}

#[test]
fn exact_bytes_crlf_and_dot_stuffing() {
    let h = home("rs-bytes");
    let p = peer("127.0.0.1", 0, Mode::Strict).unwrap();
    route_to(&h, "127.0.0.1", p.port);
    control(&h, "timeoutremote", "5\n");
    let msg = b"Subject: x\n\n.line\n..two\nbare\rcr\r\ncrlf\r\n\xe9t\xe9\nend";
    let r = send(
        &h,
        "example.net",
        &["a@example.net", "b@example.net"],
        msg,
        &[],
    );
    assert_eq!(
        r,
        [
            "r",
            "r",
            "K127.0.0.1 accepted message.\nRemote host said: 250 2.0.0 ok queued\n"
        ]
    );
    let got = wait_for(&p.got, b"QUIT\r\n");
    let want: &[u8] = b"EHLO mail.example.org\r\nMAIL FROM:<s@example.org>\r\nRCPT TO:<a@example.net>\r\nRCPT TO:<b@example.net>\r\nDATA\r\n\
Subject: x\r\n\r\n..line\r\n...two\r\nbare\r\ncr\r\ncrlf\r\n\xe9t\xe9\r\nend\r\n.\r\nQUIT\r\n";
    assert_eq!(String::from_utf8_lossy(&got), String::from_utf8_lossy(want));
    assert_eq!(got, want);
}

#[test]
fn helo_fallback_and_usage() {
    let h = home("rs-helo");
    let p = peer("127.0.0.1", 0, Mode::NoEsmtp).unwrap();
    route_to(&h, "127.0.0.1", p.port);
    control(&h, "helohost", "out.example.org\n");
    let r = send(&h, "example.net", &["a@example.net"], b"hi\n", &[]);
    assert_eq!(
        r[1],
        "K127.0.0.1 accepted message.\nRemote host said: 250 2.0.0 ok queued\n"
    );
    let got = p.got.lock().unwrap().clone();
    assert!(got.starts_with(b"EHLO out.example.org\r\nHELO out.example.org\r\nMAIL FROM:<s@example.org>\r\nRCPT TO:<a@example.net>\r\nDATA\r\nhi\r\n.\r\n"));
    let o = run("remote-send", &["x"], &[], b"");
    assert_eq!(o.status.code(), Some(100));
    // an address literal that is this host: never deliver to ourselves
    control(&h, "smtproutes", "");
    let r = send(&h, "[127.0.0.1]", &["a@x"], b"hi\n", &[]);
    assert!(
        r[0].starts_with("DSorry. Although I'm listed as a best-preference MX"),
        "{:?}",
        r
    );
    assert!(r[0].ends_with("(#5.4.6)\n"));
    route_to(&h, "127.0.0.1", p.port);
    // a recipient that could smuggle a command is refused, the others go
    let r = send(
        &h,
        "example.net",
        &["a@example.net", "x@y>\r\nRSET"],
        b"hi\n",
        &[],
    );
    assert_eq!(
        r[1],
        "hSorry, the recipient address has bytes SMTP cannot carry. (#5.1.3)\n"
    );
    assert!(r[2].starts_with('K'));
    // control/outgoingip: the source address
    control(&h, "outgoingip", "127.0.0.5\n");
    let r = send(&h, "example.net", &["a@example.net"], b"hi\n", &[]);
    assert!(r[1].starts_with('K'));
    assert_eq!(
        p.from.lock().unwrap().last().unwrap().to_string(),
        "127.0.0.5"
    );
}

#[test]
fn stalls_and_dead_connections() {
    let h = home("rs-stall");
    control(&h, "timeoutremote", "1\n");
    let stall_rcpt = peer("127.0.0.1", 0, Mode::StallRcpt).unwrap();
    route_to(&h, "127.0.0.1", stall_rcpt.port);
    let r = send(&h, "example.net", &["a@example.net"], b"hi\n", &[]);
    assert_eq!(r, ["ZConnected to 127.0.0.1 but connection died. (#4.4.2)\nreading the reply to MAIL: timed out\n"]);

    let stall_dot = peer("127.0.0.1", 0, Mode::StallDot).unwrap();
    route_to(&h, "127.0.0.1", stall_dot.port);
    let r = send(&h, "example.net", &["a@example.net"], b"hi\n", &[]);
    assert_eq!(r[1], "ZConnected to 127.0.0.1 but connection died. Possible duplicate! (#4.4.2)\nreading the reply to the message: timed out\n");

    let close_dot = peer("127.0.0.1", 0, Mode::CloseDot).unwrap();
    route_to(&h, "127.0.0.1", close_dot.port);
    let r = send(&h, "example.net", &["a@example.net"], b"hi\n", &[]);
    assert_eq!(r[0], "r");
    assert!(
        r[1].starts_with(
            "ZConnected to 127.0.0.1 but connection died. Possible duplicate! (#4.4.2)\n"
        ),
        "{:?}",
        r
    );

    // The peer closes after the first bytes of a large message: the
    // message was not all sent, so no duplicate is possible.
    control(&h, "timeoutremote", "5\n");
    let mid = peer("127.0.0.1", 0, Mode::CloseMidData).unwrap();
    route_to(&h, "127.0.0.1", mid.port);
    let big = vec![b'x'; 999]
        .into_iter()
        .chain([b'\n'])
        .cycle()
        .take(16 << 20)
        .collect::<Vec<u8>>();
    let r = send(&h, "example.net", &["a@example.net"], &big, &[]);
    assert!(
        r[1].starts_with(
            "ZConnected to 127.0.0.1 but connection died. (#4.4.2)\nsending the message: "
        ),
        "{:?}",
        r
    );
}

#[test]
fn greeting_failures_and_tcpto() {
    let h = home("rs-greet");
    control(&h, "timeoutremote", "1\n");
    let p = peer("127.0.0.1", 0, Mode::Greet421).unwrap();
    route_to(&h, "127.0.0.1", p.port);
    let r = send(&h, "example.net", &["a@example.net"], b"hi\n", &[]);
    assert_eq!(r, ["ZConnected to 127.0.0.1 but greeting failed. (#4.3.2)\nRemote host said: 421 4.3.2 busy\n"]);

    let p = peer("127.0.0.1", 0, Mode::StallGreeting).unwrap();
    route_to(&h, "127.0.0.1", p.port);
    let want = "ZSorry, I wasn't able to establish an SMTP connection. (#4.4.1)\n127.0.0.1: no greeting: timed out\n";
    assert_eq!(
        send(&h, "example.net", &["a@example.net"], b"hi\n", &[]),
        [want]
    );
    assert_eq!(
        send(&h, "example.net", &["a@example.net"], b"hi\n", &[]),
        [want]
    );
    let tcpto = std::fs::read_to_string(h.join("queue/tcpto")).unwrap();
    assert!(
        tcpto.starts_with("127.0.0.1 ") && tcpto.ends_with(" 2\n"),
        "{}",
        tcpto
    );
    // twice timed out: skipped now, without waiting
    let t = Instant::now();
    let r = send(&h, "example.net", &["a@example.net"], b"hi\n", &[]);
    assert_eq!(r, ["ZSorry, I wasn't able to establish an SMTP connection. (#4.4.1)\n1 address(es) skipped: they timed out recently (queue/tcpto).\n"]);
    assert!(t.elapsed() < Duration::from_millis(900));
    // a broken tcpto file is ignored; a working peer clears the entry
    let ok = peer("127.0.0.1", 0, Mode::Strict).unwrap();
    route_to(&h, "127.0.0.1", ok.port);
    std::fs::write(
        h.join("queue/tcpto"),
        b"\xff\xfe garbage\n127.0.0.1 1 1\nx y z\n",
    )
    .unwrap();
    let r = send(&h, "example.net", &["a@example.net"], b"hi\n", &[]);
    assert!(r[1].starts_with('K'));
    assert_eq!(std::fs::read_to_string(h.join("queue/tcpto")).unwrap(), "");
}

// ---------------------------------------------------------------------------
// Against aiosmtpd.

fn aiosmtpd(dir: &Path, addr: &str, size: u32, utf8: bool) -> (Py, PathBuf) {
    let out = dir.join("received");
    let mut args = vec![
        addr.to_string(),
        out.to_str().unwrap().to_string(),
        size.to_string(),
    ];
    if utf8 {
        args.push("utf8".into());
    }
    let a: Vec<&str> = args.iter().map(|s| s.as_str()).collect();
    (start_py(SMTP_PY, dir, "smtp_peer.py", &a), out)
}

#[test]
fn aiosmtpd_transactions() {
    if !python_has("aiosmtpd") {
        return;
    }
    let h = home("rs-aio");
    let d = scratch("rs-aio");
    let (srv, out) = aiosmtpd(&d, "127.0.0.1", 1_000_000, false);
    route_to(&h, "127.0.0.1", srv.port);
    control(&h, "timeoutremote", "10\n");
    let msg = b"Subject: caf\xe9\n\n.dot\nbody\n";
    let r = send(
        &h,
        "example.net",
        &[
            "a@example.net",
            "temp1@example.net",
            "perm1@example.net",
            "b@example.net",
        ],
        msg,
        &[],
    );
    assert_eq!(
        r,
        [
            "r",
            "s127.0.0.1 does not like recipient. (#4.2.1)\nRemote host said: 450 4.2.1 mailbox busy\n",
            "h127.0.0.1 does not like recipient. (#5.1.1)\nRemote host said: 550 5.1.1 no such user\n",
            "r",
            "K127.0.0.1 accepted message.\nRemote host said: 250 2.0.0 queued as 42\n",
        ]
    );
    let got = std::fs::read(&out).unwrap();
    let size = msg.len() + 4 + 1; // the CRs and the stuffed dot
    let want = format!(
        "MAIL s@example.org SIZE={} BODY=8BITMIME\nRCPT a@example.net\nRCPT b@example.net\n\n",
        size
    );
    let mut want = want.into_bytes();
    want.extend_from_slice(b"Subject: caf\xe9\r\n\r\n.dot\r\nbody\r\n");
    assert_eq!(
        String::from_utf8_lossy(&got),
        String::from_utf8_lossy(&want)
    );

    // 4xx and 5xx at the end of DATA
    let r = send(&h, "example.net", &["datatemp@example.net"], b"x\n", &[]);
    assert_eq!(r, ["r", "Z127.0.0.1 failed after I sent the message. (#4.3.0)\nRemote host said: 451 4.3.0 try later\n"]);
    let r = send(&h, "example.net", &["dataperm@example.net"], b"x\n", &[]);
    assert_eq!(r, ["r", "D127.0.0.1 failed after I sent the message. (#5.6.0)\nRemote host said: 554 5.6.0 content rejected\n"]);
    // no recipient accepted
    let r = send(&h, "example.net", &["perm@example.net"], b"x\n", &[]);
    assert_eq!(r[1], "DGiving up on 127.0.0.1.\n");
    // SMTPUTF8 needed but not offered
    let r = send(&h, "example.net", &["j\u{fc}rgen@example.net"], b"x\n", &[]);
    assert_eq!(r, ["DConnected to 127.0.0.1 but it does not offer SMTPUTF8, which the addresses need. (#5.6.7)\n"]);

    // the peer's SIZE is too small: refused before MAIL
    let d2 = scratch("rs-aio-small");
    let (small, out2) = aiosmtpd(&d2, "127.0.0.1", 100, true);
    route_to(&h, "127.0.0.1", small.port);
    let r = send(&h, "example.net", &["a@example.net"], &[b'x'; 200], &[]);
    assert_eq!(r, ["DConnected to 127.0.0.1 but the message is too big for it: it takes 100 bytes, the message has 202. (#5.3.4)\n"]);
    assert!(!out2.exists());
    let r = send(&h, "example.net", &["j\u{fc}rgen@example.net"], b"x\n", &[]);
    assert!(r[1].starts_with('K'), "{:?}", r);
    assert!(std::fs::read(&out2)
        .unwrap()
        .starts_with(b"MAIL s@example.org SIZE=3 SMTPUTF8\n"));
}

#[test]
fn via_mx_from_the_test_dns_server() {
    if !python_has("dnslib") || !python_has("aiosmtpd") {
        return;
    }
    let h = home("rs-mx");
    let d = scratch("rs-mx");
    let dns = dns_server(&d, ZONE);
    let (srv, out) = aiosmtpd(&d, "127.0.0.2", 1_000_000, false);
    let dnsip = format!("127.0.0.1:{}", dns.port);
    let port = srv.port.to_string();
    let env = [
        ("DNSCACHEIP", dnsip.as_str()),
        ("SMTPPORT", port.as_str()),
        ("RES_OPTIONS", "timeout:1 attempts:1"),
    ];
    control(&h, "timeoutconnect", "2\n");
    // 127.0.0.2 is a loopback address: this host, unless notipme says otherwise
    let r = send(&h, "mx.test", &["a@mx.test"], b"hi\n", &env);
    assert!(
        r[0].starts_with("DSorry. Although I'm listed as a best-preference MX"),
        "{:?}",
        r
    );
    control(&h, "notipme", "127.0.0.2\n127.0.0.3\n");
    let r = send(&h, "mx.test", &["a@mx.test"], b"hi\n", &env);
    assert_eq!(
        r,
        [
            "r",
            "K127.0.0.2 accepted message.\nRemote host said: 250 2.0.0 queued as 42\n"
        ]
    );
    // no MX: the domain's A record
    let r = send(&h, "nomx.test", &["b@nomx.test"], b"hi\n", &env);
    assert_eq!(
        r[1],
        "K127.0.0.2 accepted message.\nRemote host said: 250 2.0.0 queued as 42\n"
    );
    // the best MX refuses connections: the next one takes it
    let r = send(&h, "two.test", &["c@two.test"], b"hi\n", &env);
    assert_eq!(
        r[1],
        "K127.0.0.2 accepted message.\nRemote host said: 250 2.0.0 queued as 42\n"
    );
    let got = String::from_utf8_lossy(&std::fs::read(&out).unwrap()).into_owned();
    assert_eq!(got.matches("MAIL s@example.org").count(), 3);
    assert!(got.contains("RCPT c@two.test\n"));
    // this host is the best MX: the worse ones are not tried
    let r = send(&h, "self.test", &["d@self.test"], b"hi\n", &env);
    assert!(r[0].ends_with("(#5.4.6)\n"), "{:?}", r);
    // null MX, NXDOMAIN, SERVFAIL
    let r = send(&h, "null.test", &["e@null.test"], b"hi\n", &env);
    assert_eq!(r, ["DSorry, null.test does not accept mail: it publishes a null MX (RFC 7505). (#5.1.10)\n"]);
    let r = send(&h, "nothere.test", &["e@nothere.test"], b"hi\n", &env);
    assert_eq!(
        r,
        ["DSorry, I couldn't find any host named nothere.test. (#5.1.2)\n"]
    );
    let r = send(&h, "fail.test", &["e@fail.test"], b"hi\n", &env);
    assert!(
        r[0].starts_with("ZSorry, I couldn't find any host by that name. (#4.1.2)\nDNS: "),
        "{:?}",
        r
    );
    // smtproutes: an exception with an empty relay keeps the MX lookup
    control(
        &h,
        "smtproutes",
        &format!("mx.test:\n:192.0.2.1:{}\n", port),
    );
    let r = send(&h, "mx.test", &["f@mx.test"], b"hi\n", &env);
    assert_eq!(
        r[1],
        "K127.0.0.2 accepted message.\nRemote host said: 250 2.0.0 queued as 42\n"
    );
}

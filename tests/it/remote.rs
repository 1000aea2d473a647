//! Tests for the remote area: dns-query against a test DNS server (Python
//! dnslib), remote-send against aiosmtpd and against a scripted raw peer
//! written here (exact bytes, stalls, closes).

use crate::common::*;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const DNS_PY: &str = include_str!("remote/dns_server.py");

/// A Python peer and its port.
pub(crate) struct Py {
    _proc: Proc,
    pub(crate) port: u16,
}

pub(crate) fn dns_server(dir: &Path, zone: &str) -> Py {
    std::fs::write(dir.join("zone.json"), zone).unwrap();
    let z = dir.join("zone.json");
    let (p, port) = start_py(
        dir,
        "dns_server",
        DNS_PY,
        &[z.to_str().unwrap(), "127.0.0.1"],
        Stdio::inherit(),
    );
    Py { _proc: p, port }
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
    if !python_has(&["dnslib"]) {
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
    /// Every byte it writes comes alone, this many ms after the last.
    Drip(u64),
    /// Every reply comes whole, this many ms late.
    Slow(u64),
}

/// Writes as `mode` says: at once, a byte at a time, or late.
fn put(s: &mut TcpStream, b: &[u8], mode: Mode) -> std::io::Result<()> {
    match mode {
        Mode::Drip(ms) => {
            for c in b {
                std::thread::sleep(Duration::from_millis(ms));
                s.write_all(&[*c])?;
            }
            Ok(())
        }
        Mode::Slow(ms) => {
            std::thread::sleep(Duration::from_millis(ms));
            s.write_all(b)
        }
        _ => s.write_all(b),
    }
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
    if put(&mut s, b"220 peer.test ESMTP\r\n", mode).is_err() {
        return;
    }
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
                b"EHLO" => b"250-peer.test\r\n250-8BITMIME\r\n250 PIPELINING\r\n",
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
            if put(&mut s, &out, mode).is_err() {
                return;
            }
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
    let want: &[u8] = b"EHLO mail.example.org\r\nMAIL FROM:<s@example.org> BODY=8BITMIME\r\nRCPT TO:<a@example.net>\r\nRCPT TO:<b@example.net>\r\nDATA\r\n\
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
    let (p, port, out) = smtp_peer(
        dir,
        "smtp_peer",
        addr,
        0,
        Some(size),
        utf8,
        Stdio::inherit(),
    );
    (Py { _proc: p, port }, out)
}

#[test]
fn aiosmtpd_transactions() {
    if !python_has(&["aiosmtpd"]) {
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
    if !python_has(&["dnslib"]) || !python_has(&["aiosmtpd"]) {
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

/// Issue 13 item 7: a peer that trickles its replies a byte at a time
/// (each byte well within timeoutremote) or answers every command late
/// cannot hold remote-send past timeoutremotereply for one reply or
/// timeoutremotesession for the whole delivery.
#[test]
fn dripping_peer_meets_the_reply_and_session_deadlines() {
    let h = home("rs-drip");
    control(&h, "timeoutremote", "3\n");
    control(&h, "timeoutremotereply", "2\n");
    control(&h, "timeoutremotesession", "4\n");
    // One byte every 0.5 s: the 21-byte greeting would take 10 s.
    let drip = peer("127.0.0.1", 0, Mode::Drip(500)).unwrap();
    route_to(&h, "127.0.0.1", drip.port);
    let t = Instant::now();
    let r = send(&h, "example.net", &["a@example.net"], b"hi\n", &[]);
    let took = t.elapsed();
    assert_eq!(r, ["ZSorry, I wasn't able to establish an SMTP connection. (#4.4.1)\n127.0.0.1: no greeting: no whole reply within 2 seconds (control/timeoutremotereply)\n"]);
    assert!(
        took >= Duration::from_millis(1900) && took < Duration::from_secs(4),
        "{:?}",
        took
    );
    // Every reply whole but 1.5 s late: each within its deadline, the
    // session (greeting, EHLO, MAIL, RCPT...) is not.
    std::fs::remove_file(h.join("queue/tcpto")).ok();
    let slow = peer("127.0.0.1", 0, Mode::Slow(1500)).unwrap();
    route_to(&h, "127.0.0.1", slow.port);
    let t = Instant::now();
    let r = send(&h, "example.net", &["a@example.net"], b"hi\n", &[]);
    let took = t.elapsed();
    assert_eq!(r, ["ZConnected to 127.0.0.1 but connection died. (#4.4.2)\nreading the reply to MAIL: the session took 4 seconds (control/timeoutremotesession)\n"]);
    assert!(
        took >= Duration::from_millis(3900) && took < Duration::from_secs(6),
        "{:?}",
        took
    );
    // The session deadline also stops the next address from being tried.
    control(&h, "timeoutremotesession", "1\n");
    let stall = peer("127.0.0.1", 0, Mode::StallGreeting).unwrap();
    control(&h, "smtproutes", &format!(":127.0.0.1:{}\n", stall.port));
    let t = Instant::now();
    let r = send(&h, "example.net", &["a@example.net"], b"hi\n", &[]);
    assert_eq!(r, ["ZSorry, I wasn't able to establish an SMTP connection. (#4.4.1)\n127.0.0.1: no greeting: the session took 1 seconds (control/timeoutremotesession)\n"]);
    assert!(t.elapsed() < Duration::from_secs(3));
    // ... and it is no timeout of that address's: queue/tcpto stays empty.
    assert_eq!(
        std::fs::read_to_string(h.join("queue/tcpto")).unwrap_or_default(),
        ""
    );
}

/// Issue 13: a hostile responder at the server's own address sends a
/// short datagram, then one with the right id and a garbled question,
/// then the real answer. Neither may end the try: only a datagram whose
/// id and question match counts.
#[test]
fn dns_short_and_garbled_datagrams_do_not_end_the_try() {
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = sock.local_addr().unwrap().port();
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let t = std::thread::spawn(move || {
        let mut b = [0u8; 512];
        let (n, from) = sock.recv_from(&mut b).unwrap();
        let q = &b[..n];
        // the question: the name from offset 12 to its zero byte, type, class
        let qend = 12 + q[12..].iter().position(|&c| c == 0).unwrap() + 1 + 4;
        sock.send_to(&q[..3], from).unwrap();
        let mut garbled = q[..2].to_vec();
        garbled.extend_from_slice(&[0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0, 63, b'a']);
        sock.send_to(&garbled, from).unwrap();
        let mut a = q[..2].to_vec();
        a.extend_from_slice(&[0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0]);
        a.extend_from_slice(&q[12..qend]);
        a.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 192, 0, 2, 77]);
        sock.send_to(&a, from).unwrap();
    });
    let t0 = Instant::now();
    let (code, out, err) = dnsq(port, &["a", "short.test"]);
    t.join().unwrap();
    assert_eq!(
        (
            code,
            String::from_utf8_lossy(&out).into_owned(),
            String::from_utf8_lossy(&err).into_owned()
        ),
        (Some(0), "192.0.2.77\n".to_string(), String::new())
    );
    assert!(t0.elapsed() < Duration::from_secs(1));
}

// ---------------------------------------------------------------------------
// A scripted peer that keeps a transcript in arrival order: the client's
// bytes as they arrived (looked for again just before each reply), each
// reply as "S: ...", and "<EOF>" when the client had closed before a reply.

/// The reply to a command line (without CR LF; "." for the end of the
/// message) and how many ms to wait before it.
type Script = fn(&[u8]) -> (&'static str, u64);

struct Scripted {
    port: u16,
    log: Arc<Mutex<Vec<u8>>>,
}

fn scripted(script: Script) -> Scripted {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let log = Arc::new(Mutex::new(Vec::new()));
    let lg = log.clone();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(s) = s else { return };
            let lg = lg.clone();
            std::thread::spawn(move || serve_script(s, script, lg));
        }
    });
    Scripted { port, log }
}

/// Takes what the client has sent so far without waiting; false at EOF.
fn take_sent(s: &mut TcpStream, buf: &mut Vec<u8>, log: &Mutex<Vec<u8>>, wait: bool) -> bool {
    s.set_nonblocking(!wait).unwrap();
    let mut b = [0u8; 65536];
    let r = s.read(&mut b);
    s.set_nonblocking(false).unwrap();
    match r {
        Ok(0) => {
            log.lock().unwrap().extend_from_slice(b"<EOF>");
            false
        }
        Ok(n) => {
            log.lock().unwrap().extend_from_slice(&b[..n]);
            buf.extend_from_slice(&b[..n]);
            true
        }
        Err(e) => e.kind() == std::io::ErrorKind::WouldBlock,
    }
}

fn serve_script(mut s: TcpStream, script: Script, log: Arc<Mutex<Vec<u8>>>) {
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let say = |s: &mut TcpStream, r: &str| {
        log.lock()
            .unwrap()
            .extend_from_slice(format!("S: {}", r).as_bytes());
        let _ = s.write_all(r.as_bytes());
    };
    say(&mut s, "220 peer.test ESMTP\r\n");
    let mut buf = Vec::new();
    let mut in_data = false;
    loop {
        loop {
            let line: Vec<u8> = if in_data {
                let end = if buf.starts_with(b".\r\n") {
                    Some(0)
                } else {
                    find(&buf, b"\r\n.\r\n").map(|i| i + 2)
                };
                let Some(i) = end else { break };
                buf.drain(..i + 3);
                b".".to_vec()
            } else {
                let Some(i) = find(&buf, b"\r\n") else { break };
                let l: Vec<u8> = buf.drain(..i + 2).collect();
                l[..i].to_vec()
            };
            let (reply, ms) = script(&line);
            std::thread::sleep(Duration::from_millis(ms));
            let open = take_sent(&mut s, &mut buf, &log, false);
            if !open {
                return;
            }
            say(&mut s, reply);
            in_data = reply.starts_with("354");
            if reply.starts_with("221") {
                return;
            }
            if reply.starts_with("421") {
                // Closing: whatever still comes is logged, not answered.
                while take_sent(&mut s, &mut Vec::new(), &log, true) {}
                return;
            }
        }
        if !take_sent(&mut s, &mut buf, &log, true) {
            return;
        }
    }
}

fn script_log(p: &Scripted, end: &[u8]) -> String {
    String::from_utf8_lossy(&wait_for(&p.log, end)).into_owned()
}

/// Issue 16: a 421 to EHLO means the server is closing: no HELO, no
/// QUIT, a temporary failure.
#[test]
fn ehlo_421_defers_without_helo() {
    let h = home("rs-421");
    control(&h, "timeoutremote", "3\n");
    let p = scripted(|l| match &l[..4.min(l.len())] {
        b"EHLO" => ("421 4.3.2 shutting down\r\n", 0),
        _ => ("250 ok\r\n", 0),
    });
    route_to(&h, "127.0.0.1", p.port);
    let r = send(&h, "example.net", &["a@example.net"], b"hi\n", &[]);
    assert_eq!(r, ["ZConnected to 127.0.0.1 but it is closing the connection. (#4.3.2)\nRemote host said: 421 4.3.2 shutting down\n"]);
    assert_eq!(
        script_log(&p, b"<EOF>"),
        "S: 220 peer.test ESMTP\r\nEHLO mail.example.org\r\nS: 421 4.3.2 shutting down\r\n<EOF>"
    );
}

/// Issue 16: after a pipelined MAIL is refused, the replies to the RCPTs
/// and DATA are read before QUIT (RFC 2920), and the reply to QUIT too.
#[test]
fn refused_pipelined_mail_reads_every_reply_before_quit() {
    let h = home("rs-pipe");
    control(&h, "timeoutremote", "3\n");
    let p = scripted(|l| match &l[..4.min(l.len())] {
        b"EHLO" => ("250-peer.test\r\n250 PIPELINING\r\n", 0),
        b"MAIL" => ("550 5.7.1 not from you\r\n", 0),
        b"RCPT" => ("503 5.5.1 MAIL first\r\n", 300),
        b"DATA" => ("503 5.5.1 no valid recipients\r\n", 300),
        b"QUIT" => ("221 2.0.0 bye\r\n", 300),
        _ => ("500 what\r\n", 0),
    });
    route_to(&h, "127.0.0.1", p.port);
    let r = send(
        &h,
        "example.net",
        &["a@example.net", "b@example.net"],
        b"hi\n",
        &[],
    );
    assert_eq!(r, ["DConnected to 127.0.0.1 but sender was rejected. (#5.7.1)\nRemote host said: 550 5.7.1 not from you\n"]);
    assert_eq!(
        script_log(&p, b"221 2.0.0 bye\r\n"),
        "S: 220 peer.test ESMTP\r\nEHLO mail.example.org\r\nS: 250-peer.test\r\n250 PIPELINING\r\n\
MAIL FROM:<s@example.org>\r\nRCPT TO:<a@example.net>\r\nRCPT TO:<b@example.net>\r\nDATA\r\n\
S: 550 5.7.1 not from you\r\nS: 503 5.5.1 MAIL first\r\nS: 503 5.5.1 MAIL first\r\n\
S: 503 5.5.1 no valid recipients\r\nQUIT\r\nS: 221 2.0.0 bye\r\n"
    );
}

/// Issue 16: local parts that are not Dot-strings are quoted on the wire
/// (RFC 5321 4.1.2), as they were before smtp-recv unquoted them.
#[test]
fn quoted_local_parts_on_the_wire() {
    let h = home("rs-quote");
    control(&h, "timeoutremote", "5\n");
    let p = peer("127.0.0.1", 0, Mode::Strict).unwrap();
    route_to(&h, "127.0.0.1", p.port);
    let hs = h.to_str().unwrap();
    let o = run(
        "remote-send",
        &[
            "example.net",
            "x y@b.example",
            "john doe@example.net",
            "a\"b@example.net",
            "c\\d@example.net",
            ".e.@example.net",
            "y@z@example.net",
            "plain.one@example.net",
        ],
        &[("PIPEMAIL_HOME", hs)],
        b"hi\n",
    );
    let r = split_report(&o.stdout);
    assert_eq!(r.len(), 7, "{:?}", r);
    assert!(r[6].starts_with('K'), "{:?}", r);
    let got = wait_for(&p.got, b"QUIT\r\n");
    assert_eq!(
        String::from_utf8_lossy(&got),
        "EHLO mail.example.org\r\nMAIL FROM:<\"x y\"@b.example>\r\nRCPT TO:<\"john doe\"@example.net>\r\n\
RCPT TO:<\"a\\\"b\"@example.net>\r\nRCPT TO:<\"c\\\\d\"@example.net>\r\nRCPT TO:<\".e.\"@example.net>\r\n\
RCPT TO:<\"y@z\"@example.net>\r\nRCPT TO:<plain.one@example.net>\r\nDATA\r\nhi\r\n.\r\nQUIT\r\n"
    );
}

fn plain_peer(l: &[u8]) -> (&'static str, u64) {
    match &l[..4.min(l.len())] {
        b"EHLO" => ("250 peer.test\r\n", 0),
        b"MAIL" => ("250 2.1.0 ok\r\n", 0),
        b"RCPT" => ("250 2.1.5 ok\r\n", 0),
        b"DATA" => ("354 go ahead\r\n", 0),
        b"." => ("250 2.0.0 queued\r\n", 0),
        b"QUIT" => ("221 2.0.0 bye\r\n", 0),
        _ => ("500 what\r\n", 0),
    }
}

/// Issue 16: to a peer without 8BITMIME, 8-bit content goes as 7-bit
/// MIME (quoted-printable, the header adjusted); lines over 998 octets
/// go quoted-printable to any peer; 8-bit bytes in a header field, which
/// cannot be converted, bounce (#5.6.3) before MAIL.
#[test]
fn eight_bit_downgrade_and_long_lines_to_a_plain_peer() {
    let h = home("rs-7bit");
    control(&h, "timeoutremote", "5\n");
    let p = scripted(plain_peer);
    route_to(&h, "127.0.0.1", p.port);
    let head = "S: 220 peer.test ESMTP\r\nEHLO mail.example.org\r\nS: 250 peer.test\r\n\
MAIL FROM:<s@example.org>\r\nS: 250 2.1.0 ok\r\nRCPT TO:<a@example.net>\r\nS: 250 2.1.5 ok\r\n\
DATA\r\nS: 354 go ahead\r\n";
    let tail = ".\r\nS: 250 2.0.0 queued\r\nQUIT\r\nS: 221 2.0.0 bye\r\n";
    let r = send(
        &h,
        "example.net",
        &["a@example.net"],
        b"Subject: x\n\ncaf\xc3\xa9 au lait\n.\n",
        &[],
    );
    assert_eq!(
        r[1],
        "K127.0.0.1 accepted message.\nRemote host said: 250 2.0.0 queued\n"
    );
    assert_eq!(
        script_log(&p, b"221 2.0.0 bye\r\n"),
        format!(
            "{head}Subject: x\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\
Content-Transfer-Encoding: quoted-printable\r\n\r\ncaf=C3=A9 au lait\r\n..\r\n{tail}"
        )
    );

    // A 1500-octet line, ASCII: quoted-printable too, soft breaks at 76.
    let p = scripted(plain_peer);
    route_to(&h, "127.0.0.1", p.port);
    let msg = format!("Subject: y\n\n{}\n", "a".repeat(1500));
    let r = send(&h, "example.net", &["a@example.net"], msg.as_bytes(), &[]);
    assert!(r[1].starts_with('K'), "{:?}", r);
    let body = format!(
        "{}{}\r\n",
        format!("{}=\r\n", "a".repeat(75)).repeat(19),
        "a".repeat(75)
    );
    assert_eq!(
        script_log(&p, b"221 2.0.0 bye\r\n"),
        format!("{head}Subject: y\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\
Content-Transfer-Encoding: quoted-printable\r\n\r\n{body}{tail}")
    );

    // An 8-bit header field: nothing to convert it to; no MAIL is sent.
    let p = scripted(plain_peer);
    route_to(&h, "127.0.0.1", p.port);
    let r = send(
        &h,
        "example.net",
        &["a@example.net"],
        b"Subject: caf\xc3\xa9\n\nx\n",
        &[],
    );
    assert_eq!(r, ["DConnected to 127.0.0.1 but it does not offer 8BITMIME and cannot take the message: it has 8-bit bytes that cannot be re-encoded (in a header field or beside multipart delimiters). (#5.6.3)\n"]);
    assert_eq!(
        script_log(&p, b"221 2.0.0 bye\r\n"),
        "S: 220 peer.test ESMTP\r\nEHLO mail.example.org\r\nS: 250 peer.test\r\nQUIT\r\nS: 221 2.0.0 bye\r\n"
    );
}

/// Issue 16: a long line to a peer that takes 8-bit: only the part that
/// has it is re-encoded; the 8-bit part beside it goes as it is.
#[test]
fn long_line_in_one_part_of_a_multipart_to_an_8bitmime_peer() {
    let h = home("rs-long");
    control(&h, "timeoutremote", "5\n");
    let p = peer("127.0.0.1", 0, Mode::Strict).unwrap();
    route_to(&h, "127.0.0.1", p.port);
    let long = "b ".repeat(600);
    let msg = format!(
        "MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=zz\n\n--zz\nContent-Type: text/plain; charset=utf-8\n\
Content-Transfer-Encoding: 8bit\n\ncaf\u{e9}\n--zz\nContent-Type: text/html\n\n{long}\n--zz--\n"
    );
    let r = send(&h, "example.net", &["a@example.net"], msg.as_bytes(), &[]);
    assert!(r[1].starts_with('K'), "{:?}", r);
    let got = String::from_utf8_lossy(&wait_for(&p.got, b"QUIT\r\n")).into_owned();
    // 1199 plain columns in lines of 75 with a soft break, then the last
    // blank as =20 (it would end a line), which no longer fits the 16th.
    let chunks: Vec<&str> = long.as_bytes()[..1199]
        .chunks(75)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    assert_eq!(chunks.len(), 16);
    let qp = format!("{}=\r\n=20", chunks.join("=\r\n"));
    assert_eq!(
        got,
        format!("EHLO mail.example.org\r\nMAIL FROM:<s@example.org> BODY=8BITMIME\r\nRCPT TO:<a@example.net>\r\nDATA\r\n\
MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=zz\r\n\r\n--zz\r\nContent-Type: text/plain; charset=utf-8\r\n\
Content-Transfer-Encoding: 8bit\r\n\r\ncaf\u{e9}\r\n--zz\r\nContent-Type: text/html\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n\
{qp}\r\n--zz--\r\n.\r\nQUIT\r\n")
    );
}

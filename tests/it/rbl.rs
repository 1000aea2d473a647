//! rbl-gate against the test DNS server of the remote tests (dnslib):
//! listed, not listed, allow lists, IPv6, timeout, SERVFAIL, TXT text,
//! $RBLSMTPD, and the blocked SMTP dialogue in exact bytes.

use crate::common::python_has;
use crate::common::{control, home, run};
use crate::remote::dns_server;
use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

const ZONE: &str = r#"{
 "2.0.0.127.bl.test": {"A": ["127.0.0.2"], "TXT": ["Listed: see http://bl.test/?127.0.0.2"]},
 "3.0.0.127.bl.test": {"A": ["127.0.0.2"]},
 "4.0.0.127.bl.test": {"special": "drop"},
 "5.0.0.127.bl.test": {"A": ["192.0.2.80"]},
 "6.0.0.127.bl.test": {"TXT": ["old style list\r\nwith a CR LF"]},
 "7.0.0.127.bl.test": {"special": "servfail"},
 "2.0.0.127.ok.test": {"A": ["127.0.0.2"]},
 "3.0.0.127.two.test": {"A": ["127.0.0.4"], "TXT": ["second list"]},
 "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.bl.test": {"A": ["127.0.0.2"], "TXT": ["v6 listed"]}
}"#;

const SESSION: &[u8] = b"HELO client\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<c@d.test>\r\nDATA\r\nNOOP\r\nQUIT\r\nNOOP\r\n";

fn gate(h: &Path, port: u16, ip: &str, args: &[&str], extra: &[(&str, &str)]) -> Output {
    let dns = format!("127.0.0.1:{}", port);
    let mut env = vec![
        ("PIPEMAIL_HOME", h.to_str().unwrap()),
        ("DNSCACHEIP", dns.as_str()),
        ("RES_OPTIONS", "timeout:1 attempts:1"),
        ("TCPREMOTEIP", ip),
    ];
    env.extend_from_slice(extra);
    let mut a: Vec<&str> = args.to_vec();
    a.extend_from_slice(&["/bin/echo", "smtp-recv", "-r", "ran"]);
    run("rbl-gate", &a, &env, SESSION)
}

fn refused(code_text: &str) -> Vec<u8> {
    format!(
        "220 mail.example.org\r\n250 mail.example.org\r\n250 mail.example.org\r\n{0}\r\n{0}\r\n250 mail.example.org\r\n221 mail.example.org\r\n",
        code_text
    )
    .into_bytes()
}

const RAN: &[u8] = b"smtp-recv -r ran\n";

#[test]
fn listed_clients_get_the_list_text_and_others_run_prog() {
    if !python_has(&["dnslib"]) {
        return;
    }
    let h = home("rbl");
    let srv = dns_server(h.parent().unwrap(), ZONE);
    let p = srv.port;
    let rb = ["-r", "bl.test"];

    let o = gate(&h, p, "127.0.0.2", &rb, &[]);
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(
        o.stdout,
        refused("451 Listed: see http://bl.test/?127.0.0.2")
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.starts_with("rbl-gate: pid "), "{}", err);
    assert!(
        err.ends_with(": info: blocked remote=127.0.0.2 list=bl.test reply=451 Listed: see http://bl.test/?127.0.0.2\n"),
        "{}",
        err
    );
    // -b: permanent
    let o = gate(&h, p, "127.0.0.2", &["-b", "-r", "bl.test"], &[]);
    assert_eq!(
        o.stdout,
        refused("554 Listed: see http://bl.test/?127.0.0.2")
    );
    // listed by A without TXT: a text of our own
    let o = gate(&h, p, "127.0.0.3", &rb, &[]);
    assert_eq!(o.stdout, refused("451 127.0.0.3 is listed in bl.test"));
    // an old list with TXT only; control bytes become ?
    let o = gate(&h, p, "127.0.0.6", &rb, &[]);
    assert_eq!(o.stdout, refused("451 old style list??with a CR LF"));
    // IPv6 (RFC 5782 nibbles)
    let o = gate(&h, p, "2001:db8::1", &rb, &[]);
    assert_eq!(o.stdout, refused("451 v6 listed"));
    // not listed, or an answer outside 127/8: prog runs, argv untouched
    for ip in ["127.0.0.9", "127.0.0.5", "2001:db8::2"] {
        let o = gate(&h, p, ip, &rb, &[]);
        assert_eq!((o.status.code(), &o.stdout[..]), (Some(0), RAN), "{}", ip);
        assert_eq!(o.stderr, b"");
    }
    // the allow list first wins; the first list in order decides
    let o = gate(&h, p, "127.0.0.2", &["-a", "ok.test", "-r", "bl.test"], &[]);
    assert_eq!(o.stdout, RAN);
    let o = gate(
        &h,
        p,
        "127.0.0.3",
        &["-r", "two.test", "-r", "bl.test"],
        &[],
    );
    assert_eq!(o.stdout, refused("451 second list"));
    // SERVFAIL: fail open (a warning), or -c: 451
    let o = gate(&h, p, "127.0.0.7", &rb, &[]);
    assert_eq!(o.stdout, RAN);
    assert!(String::from_utf8_lossy(&o.stderr).contains("warning: lookup in bl.test failed: "));
    let o = gate(&h, p, "127.0.0.7", &["-c", "-r", "bl.test"], &[]);
    assert_eq!(o.stdout, refused("451 temporary RBL lookup error"));
    // a list that never answers: prog runs within the -w budget
    let t = Instant::now();
    let o = gate(&h, p, "127.0.0.4", &["-w", "2", "-r", "bl.test"], &[]);
    assert_eq!(o.stdout, RAN);
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    // lists from control/rbllists when none is named
    control(&h, "rbllists", "# lists\n+ok.test\nbl.test\n");
    assert_eq!(gate(&h, p, "127.0.0.2", &[], &[]).stdout, RAN);
    assert_eq!(
        gate(&h, p, "127.0.0.3", &[], &[]).stdout,
        refused("451 127.0.0.3 is listed in bl.test")
    );
    control(&h, "rbllists", "bad list name\n");
    let o = gate(&h, p, "127.0.0.3", &[], &[]);
    assert_eq!(
        (o.status.code(), &o.stdout[..]),
        (Some(111), &b"421 unable to read controls\r\n"[..])
    );
}

#[test]
fn rblsmtpd_variable_and_session_limits() {
    let h = home("rbl-env");
    // no DNS server at all: $RBLSMTPD decides without a lookup
    let port = 9; // discard: nothing answers DNS there
    let o = gate(
        &h,
        port,
        "127.0.0.2",
        &["-r", "bl.test"],
        &[("RBLSMTPD", "")],
    );
    assert_eq!(o.stdout, RAN);
    let o = gate(&h, port, "127.0.0.2", &[], &[("RBLSMTPD", "-Go away")]);
    assert_eq!(o.stdout, refused("554 Go away"));
    let o = gate(&h, port, "127.0.0.2", &[], &[("RBLSMTPD", "Later, please")]);
    assert_eq!(o.stdout, refused("451 Later, please"));
    // -t 0: the refusal instead of a greeting
    let o = gate(&h, port, "127.0.0.2", &["-t", "0"], &[("RBLSMTPD", "No")]);
    assert_eq!(o.stdout, b"451 No\r\n");
    // a silent client is dropped after -t seconds
    let mut c = std::process::Command::new(crate::common::bin("rbl-gate"))
        .args(["-t", "1", "/bin/true"])
        .env_clear()
        .env("PIPEMAIL_HOME", &h)
        .env("RBLSMTPD", "x")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let t = Instant::now();
    let st = c.wait().unwrap();
    assert!(t.elapsed() < Duration::from_secs(4), "{:?}", t.elapsed());
    assert_eq!(st.code(), Some(0));
    // usage, and exec failures
    let o = run("rbl-gate", &["-r", "bl.test"], &[], b"");
    assert_eq!(o.status.code(), Some(100));
    assert!(o.stderr.starts_with(b"rbl-gate: pid "));
    let hs = h.to_str().unwrap();
    let o = run(
        "rbl-gate",
        &["/nonexistent/prog"],
        &[("PIPEMAIL_HOME", hs), ("RBLSMTPD", "")],
        b"",
    );
    assert_eq!(o.status.code(), Some(127));
}

//! Tests for the tcpserve area: tcp-serve over 127.0.0.1 (and ::1), maildir-make,
//! relay-stamp and relay-gate.

use super::common::*;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[path = "tcpserve/maildir.rs"]
mod maildir;
#[path = "tcpserve/relay.rs"]
mod relay;

pub(crate) struct Server {
    child: Child,
    pub(crate) port: u16,
    log: Arc<Mutex<Vec<u8>>>,
    host: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    fn log(&self) -> String {
        String::from_utf8_lossy(&self.log.lock().unwrap()).into_owned()
    }

    /// Waits up to 5 s for `needle` in the log.
    fn wait_log(&self, needle: &str) -> String {
        let t = Instant::now();
        loop {
            let l = self.log();
            if l.contains(needle) || t.elapsed() > Duration::from_secs(5) {
                return l;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn connect(&self) -> TcpStream {
        let s = TcpStream::connect((self.host.as_str(), self.port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s
    }

    /// Connects, sends `input`, half-closes, reads to EOF.
    fn talk(&self, input: &[u8]) -> Vec<u8> {
        let mut s = self.connect();
        s.write_all(input).unwrap();
        let _ = s.shutdown(Shutdown::Write);
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        out
    }
}

/// Starts tcp-serve -1 on `host` port 0; None when it exits without a port.
fn start_on(host: &str, opts: &[&str], prog: &[&str], env: &[(&str, &str)]) -> Option<Server> {
    let mut c = Command::new(bin("tcp-serve"));
    c.env_clear().env("PATH", "/usr/bin:/bin");
    for (k, v) in env {
        c.env(k, v);
    }
    c.arg("-1").args(opts).arg(host).arg("0").args(prog);
    c.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    let log = Arc::new(Mutex::new(Vec::new()));
    let mut err = child.stderr.take().unwrap();
    let l2 = log.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = err.read(&mut buf) {
            if n == 0 {
                break;
            }
            l2.lock().unwrap().extend_from_slice(&buf[..n]);
        }
    });
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port = line.trim().parse().ok();
    let mut s = Server {
        child,
        port: 0,
        log,
        host: host.to_string(),
    };
    match port {
        Some(p) => {
            s.port = p;
            Some(s)
        }
        None => None,
    }
}

pub(crate) fn start(opts: &[&str], prog: &[&str], env: &[(&str, &str)]) -> Server {
    start_on("127.0.0.1", opts, prog, env).expect("tcp-serve did not start")
}

const SHOW_ENV: &str = "env | grep -E '^(PROTO|TCP)' | sort";

#[test]
fn ucspi_variables_exact() {
    let env = [
        ("TCPREMOTEHOST", "forged.example"),
        ("TCPREMOTEINFO", "forged"),
        ("TCPLOCALHOST", "old"),
    ];
    for opts in [&["-l", "mx.example.org"][..], &[][..]] {
        let s = start(opts, &["sh", "-c", SHOW_ENV], &env);
        let mut c = s.connect();
        let cport = c.local_addr().unwrap().port();
        let mut out = Vec::new();
        c.read_to_end(&mut out).unwrap();
        let host = if opts.is_empty() {
            String::new()
        } else {
            "TCPLOCALHOST=mx.example.org\n".to_string()
        };
        let want = format!(
            "PROTO=TCP\n{}TCPLOCALIP=127.0.0.1\nTCPLOCALPORT={}\nTCPREMOTEIP=127.0.0.1\nTCPREMOTEPORT={}\n",
            host, s.port, cport
        );
        assert_eq!(String::from_utf8_lossy(&out), want);
    }
}

#[test]
fn socket_is_fd_0_and_1_and_logs_one_line_per_event() {
    let s = start(&["-v", "-B", "hello\r\n"], &["/bin/cat"], &[]);
    assert_eq!(s.talk(b"abc\n"), b"hello\r\nabc\n");
    let log = s.wait_log("status 0");
    let pid_line = log
        .lines()
        .find(|l| l.contains(" from 127.0.0.1:"))
        .unwrap();
    assert!(pid_line.starts_with("tcp-serve: info: pid "), "{}", log);
    assert!(
        log.starts_with("tcp-serve: info: status: 0/40\n"),
        "{}",
        log
    );
    assert_has(&log, "tcp-serve: info: status: 1/40\n");
    assert_has(&log, "tcp-serve: info: ok pid ");
    assert!(
        log.contains(" end pid ") || log.contains("info: end pid "),
        "{}",
        log
    );
}

#[test]
fn rules_allow_deny_variables_reread_per_connection() {
    let dir = scratch("tcprules");
    let rules = dir.join("rules");
    let r = rules.to_str().unwrap();
    let prog = "echo \"R=${RELAYCLIENT-unset} X=${X-unset} H=${HOME-unset}\"";
    let s = start(
        &["-v", "-x", r],
        &["sh", "-c", prog],
        &[("HOME", "/h"), ("X", "outer")],
    );
    let say = |text: &str| {
        std::fs::write(&rules, text).unwrap();
        String::from_utf8_lossy(&s.talk(b"")).into_owned()
    };
    // Exact address wins over prefixes, CIDR and the default.
    let both =
        "127.:deny\n127.0.0.0/8:deny\n:deny\n127.0.0.1:allow,RELAYCLIENT=\"\",X=/a,b/,HOME\n";
    assert_eq!(say(both), "R= X=a,b H=unset\n");
    assert_eq!(
        say("127.0.:allow,X=\"2\"\n127.:deny\n"),
        "R=unset X=2 H=/h\n"
    );
    assert_eq!(
        say("127.0.0.0/8:allow,X=\"8\"\n127.0.0.0/16:allow,X=\"16\"\n:deny\n"),
        "R=unset X=16 H=/h\n"
    );
    assert_eq!(
        say(":allow,RELAYCLIENT=\"@x\"\n10.:deny\n"),
        "R=@x X=outer H=/h\n"
    );
    assert_eq!(say("10.:deny\n"), "R=unset X=outer H=/h\n");
    assert_eq!(say("127.0.0.1-9:deny\n:allow\n"), "");
    assert!(s
        .wait_log("deny pid")
        .contains("tcp-serve: info: deny pid "));
    assert_eq!(say("::1:allow\n127.0.0.0/8:deny\n"), "");
    // A malformed file refuses the connection and names the line.
    assert_eq!(say("127.0.0.1:allow\n127.0.0.1 allow\n"), "");
    assert!(
        s.wait_log("line 2").contains(": unable to parse rules "),
        "{}",
        s.log()
    );
    assert_eq!(say("127.0.0.1:allow,X=\"open\n"), "");
    // Missing rules file: refused without -X.
    std::fs::remove_file(&rules).unwrap();
    assert_eq!(String::from_utf8_lossy(&s.talk(b"")), "");
    assert!(s.wait_log("unable to read rules").contains("no such file"));
    drop(s);
    let s = start(&["-X", "-x", r], &["sh", "-c", prog], &[]);
    assert_eq!(
        String::from_utf8_lossy(&s.talk(b"")),
        "R=unset X=unset H=unset\n"
    );
}

fn echo_ok(c: &mut TcpStream, b: &[u8]) -> bool {
    c.write_all(b).unwrap();
    let mut buf = vec![0u8; b.len()];
    c.read_exact(&mut buf).is_ok() && buf == b
}

#[test]
fn concurrency_limit_holds() {
    let s = start(&["-c", "2"], &["/bin/cat"], &[]);
    let mut a = s.connect();
    let mut b = s.connect();
    assert!(echo_ok(&mut a, b"a"));
    assert!(echo_ok(&mut b, b"b"));
    let mut c = s.connect();
    c.write_all(b"c").unwrap();
    c.set_read_timeout(Some(Duration::from_millis(600)))
        .unwrap();
    let mut one = [0u8; 1];
    assert!(
        c.read(&mut one).is_err(),
        "third connection served while two run"
    );
    drop(a);
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    c.read_exact(&mut one).unwrap();
    assert_eq!(&one, b"c");
    assert!(echo_ok(&mut b, b"b2"));
}

#[test]
fn exec_failure_is_127_and_no_zombies() {
    let s = start(&["-v"], &["/nonexistent/prog"], &[]);
    assert_eq!(s.talk(b"x"), b"");
    let log = s.wait_log("status 127");
    assert_has(&log, "status 127");
    assert_has(
        &log,
        "unable to run /nonexistent/prog: no such file or directory",
    );
    let s = start(&[], &["/bin/cat"], &[]);
    for _ in 0..5 {
        assert_eq!(s.talk(b"z"), b"z");
    }
    let children = format!("/proc/{}/task/{}/children", s.pid(), s.pid());
    let t = Instant::now();
    loop {
        let c = std::fs::read_to_string(&children).unwrap_or_default();
        if c.trim().is_empty() {
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(5), "children left: {}", c);
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn usage_and_bind_errors() {
    let o = run("tcp-serve", &["127.0.0.1", "0"], &[], b"");
    assert_eq!(o.status.code(), Some(100));
    assert!(o.stderr.starts_with(b"tcp-serve: "));
    let o = run("tcp-serve", &["-c", "0", "127.0.0.1", "0", "cat"], &[], b"");
    assert_eq!(o.status.code(), Some(100));
    let s = start(&[], &["/bin/cat"], &[]);
    let port = s.port.to_string();
    let o = run("tcp-serve", &["127.0.0.1", &port, "cat"], &[], b"");
    assert_eq!(o.status.code(), Some(111));
    assert!(String::from_utf8_lossy(&o.stderr)
        .starts_with("tcp-serve: fatal: unable to bind 127.0.0.1:"));
}

#[test]
fn children_run_as_uid_and_gid() {
    if !is_root() {
        eprintln!("skipped: -u/-g needs root");
        return;
    }
    let s = start(
        &["-u", "65534", "-g", "65534"],
        &["sh", "-c", "id -u; id -g; id -G"],
        &[],
    );
    assert_eq!(
        String::from_utf8_lossy(&s.talk(b"")),
        "65534\n65534\n65534\n"
    );
    let s = start(&["-u", "nobody"], &["id", "-u"], &[]);
    assert_eq!(String::from_utf8_lossy(&s.talk(b"")), "65534\n");
}

#[test]
fn sigterm_stops_listening_and_waits_for_children() {
    let mut s = start(&[], &["/bin/cat"], &[]);
    let mut a = s.connect();
    assert!(echo_ok(&mut a, b"before"));
    unsafe { libc::kill(s.pid(), libc::SIGTERM) };
    let t = Instant::now();
    loop {
        match TcpStream::connect(("127.0.0.1", s.port)) {
            Err(_) => break,
            Ok(_) => assert!(t.elapsed() < Duration::from_secs(5), "still listening"),
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(echo_ok(&mut a, b"after"));
    assert!(
        s.child.try_wait().unwrap().is_none(),
        "exited with a child running"
    );
    drop(a);
    let t = Instant::now();
    loop {
        if let Some(st) = s.child.try_wait().unwrap() {
            assert_eq!(st.code(), Some(0));
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "did not exit after the last child"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn ipv6_loopback() {
    if TcpStream::connect("[::1]:1").is_err() && std::net::TcpListener::bind("[::1]:0").is_err() {
        eprintln!("skipped: no IPv6 loopback");
        return;
    }
    let dir = scratch("tcprules6");
    let rules = dir.join("rules");
    std::fs::write(&rules, "::1:allow,RELAYCLIENT=\"\"\n:deny\n").unwrap();
    let s = match start_on(
        "::1",
        &["-x", rules.to_str().unwrap()],
        &["sh", "-c", SHOW_ENV],
        &[],
    ) {
        Some(s) => s,
        None => {
            eprintln!("skipped: cannot bind ::1");
            return;
        }
    };
    let mut c = s.connect();
    let cport = c.local_addr().unwrap().port();
    let mut out = Vec::new();
    c.read_to_end(&mut out).unwrap();
    let want = format!(
        "PROTO=TCP\nTCPLOCALIP=::1\nTCPLOCALPORT={}\nTCPREMOTEIP=::1\nTCPREMOTEPORT={}\n",
        s.port, cport
    );
    assert_eq!(String::from_utf8_lossy(&out), want);
    std::fs::write(&rules, "2001:db8::/32:allow\n::/0:deny\n").unwrap();
    assert_eq!(s.talk(b""), b"");
}

#[test]
fn thirty_concurrent_cat_clients() {
    let s = start(&[], &["/bin/cat"], &[]);
    let port = s.port;
    let t = Instant::now();
    let handles: Vec<_> = (0..30)
        .map(|i| {
            std::thread::spawn(move || {
                let data: Vec<u8> = (0..65536u32).map(|n| ((n * 7 + i) % 251) as u8).collect();
                let c = TcpStream::connect(("127.0.0.1", port)).unwrap();
                c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
                let mut w = c.try_clone().unwrap();
                let d2 = data.clone();
                let wt = std::thread::spawn(move || {
                    w.write_all(&d2).unwrap();
                    w.shutdown(Shutdown::Write).unwrap();
                });
                let mut out = Vec::new();
                (&c).read_to_end(&mut out).unwrap();
                wt.join().unwrap();
                out == data
            })
        })
        .collect();
    let ok = handles
        .into_iter()
        .filter_map(|h| h.join().ok())
        .filter(|&same| same)
        .count();
    assert_eq!(ok, 30, "clients that got their bytes back");
    eprintln!(
        "30 clients x 64 KiB through tcp-serve cat: {:?}",
        t.elapsed()
    );
}

/// One SMTP session through `s`: the bytes it sent, the program that ran
/// it and its process name (/proc/PID/exe and comm of the child tcp-serve
/// logged), read while the session is open.
fn smtp_session(s: &Server, input: &[u8]) -> (Vec<u8>, std::path::PathBuf, String) {
    let mut c = s.connect();
    let mut greeting = [0u8; 512];
    let n = c.read(&mut greeting).unwrap();
    let log = s.wait_log(" local 127.0.0.1:");
    let pid = log
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("tcp-serve: info: ok pid "))
        .and_then(|l| l.split(' ').next())
        .unwrap()
        .to_string();
    let exe = std::fs::read_link(format!("/proc/{}/exe", pid)).unwrap();
    let comm = std::fs::read_to_string(format!("/proc/{}/comm", pid)).unwrap();
    c.write_all(input).unwrap();
    let mut out = greeting[..n].to_vec();
    let _ = c.read_to_end(&mut out);
    (out, exe, comm)
}

/// tcp-serve runs smtp-recv's linked code in the forked child, without
/// execve, when prog is the smtp-recv beside it; with -e, or for another
/// file (a copy elsewhere), it execs. The client sees the same bytes and
/// the logs the same lines either way.
#[test]
fn smtp_recv_beside_tcp_serve_runs_without_exec() {
    let h = home("tslinked");
    let hs = h.to_str().unwrap();
    let env = [("PIPEMAIL_HOME", hs)];
    let copy = scratch("tslinked-copy").join("smtp-recv");
    std::fs::copy(bin("smtp-recv"), &copy).unwrap();
    let sr = bin("smtp-recv");
    let input = b"EHLO client.example\r\nMAIL FROM:<a@b.example>\r\nRSET\r\nQUIT\r\n";
    let want = b"220 mail.example.org ESMTP\r\n250-mail.example.org\r\n250-PIPELINING\r\n\
250-SIZE 10240000\r\n250-8BITMIME\r\n250-ENHANCEDSTATUSCODES\r\n250-ETRN\r\n250-HELP\r\n250-SMTPUTF8\r\n250-DSN\r\n250 CHUNKING\r\n\
250 2.1.0 ok\r\n250 2.0.0 ok\r\n221 2.0.0 mail.example.org closing connection\r\n";
    let rg = bin("relay-gate");
    let (sr, rg) = (sr.to_str().unwrap(), rg.to_str().unwrap());
    let copy = copy.to_str().unwrap();
    for (opts, prog, exe) in [
        (&["-v"][..], &[sr][..], bin("tcp-serve")),
        (&["-v", "-e"][..], &[sr][..], bin("smtp-recv")),
        (&["-v"][..], &[copy][..], copy.into()),
        // relay-gate links smtp-recv too: no exec in the usual chain.
        (&["-v"][..], &[rg, sr][..], bin("tcp-serve")),
        (&["-v", "-e"][..], &[rg, sr][..], bin("relay-gate")),
        (&["-v"][..], &[rg, copy][..], copy.into()),
    ] {
        let s = start(opts, prog, &env);
        let (out, ran, comm) = smtp_session(&s, input);
        assert_eq!(String::from_utf8_lossy(&out), String::from_utf8_lossy(want));
        assert_eq!(ran, exe, "{:?}", opts);
        assert_eq!(comm, "smtp-recv\n", "{:?} {:?}", opts, prog);
        let log = s.wait_log("status 0");
        assert_has(&log, " end pid ");
    }
    // Usage errors and log lines name smtp-recv and the session's pid.
    for opts in [&["-v"][..], &["-v", "-e"][..]] {
        let s = start(opts, &[sr, "extra"], &env);
        let _ = s.talk(b"");
        let log = s.wait_log("status 100");
        let pid = log
            .lines()
            .find_map(|l| l.strip_prefix("tcp-serve: info: ok pid "))
            .and_then(|l| l.split(' ').next())
            .unwrap()
            .to_string();
        let want = format!("smtp-recv: pid {}: usage: smtp-recv\n", pid);
        assert!(log.contains(&want), "{:?}: {}", opts, log);
        assert_has(&log, &format!("end pid {} status 100", pid));
    }
}

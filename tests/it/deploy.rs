//! Issue 11, a real host: scripts/install into a scratch prefix and home,
//! then the installed programs, started from the installed service entries
//! (scripts/service), serve real clients through openbsd-inetd, xinetd,
//! systemd-socket-activate (inetd style and LISTEN_FDS), ucspi-tcp's
//! tcpserver and tcp-serve (the runit run scripts). As root the front ends,
//! the queue and the mail user run as nobody (65534), so every uid switch
//! is real. deploy/client.py checks that every byte a client reads is
//! protocol (no log line), and the tests check that mail arrives byte-exact.

use crate::common::*;
use std::ops::{Deref, DerefMut};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const CLIENT_PY: &str = include_str!("deploy/client.py");

/// A peer program: in PATH, /usr/sbin, or where .ci/run extracts the
/// inetd packages that conflict in Debian (/opt/pipemail-peers).
fn tool(name: &str) -> Option<PathBuf> {
    let path = std::env::var("PATH").unwrap_or_default();
    let extra = ["/usr/sbin", "/sbin", "/opt/pipemail-peers/usr/sbin"];
    let found = path
        .split(':')
        .chain(extra)
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file());
    found
}

/// The peer, or None (skip) when it is missing; under CI=true a missing
/// peer or a run without root fails the test.
fn need(name: &str) -> Option<PathBuf> {
    let ci = std::env::var("CI").as_deref() == Ok("true");
    if !is_root() {
        assert!(!ci, "CI must run the deploy tests as root");
        eprintln!("skipped: the deploy tests need root");
        return None;
    }
    let t = tool(name);
    if t.is_none() {
        assert!(!ci, "{} is missing (CI=true): .ci/run installs it", name);
        eprintln!("skipped: {} is missing", name);
    }
    t
}

fn install(args: &[&str]) -> std::process::Output {
    let bindir = bin("smtp-recv").parent().unwrap().to_path_buf();
    let o = Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/install"))
        .arg("--bindir")
        .arg(&bindir)
        .args(args)
        .env_remove("DESTDIR")
        .env_remove("PREFIX")
        .env_remove("PIPEMAIL_HOME")
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "install failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

fn wait_port(port: u16) {
    wait_until(20, &format!("a listener on port {}", port), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
}

/// An installed pipemail: prefix base/usr, home base/var, host name
/// localhost, every account nobody; the mail user ann (password sesame)
/// in users/assign and users/passwd; the queue running.
struct Host {
    s: Sys,
    prefix: PathBuf,
}

impl Deref for Host {
    type Target = Sys;
    fn deref(&self) -> &Sys {
        &self.s
    }
}

impl DerefMut for Host {
    fn deref_mut(&mut self) -> &mut Sys {
        &mut self.s
    }
}

impl Host {
    fn new(tag: &str) -> Host {
        let base = scratch(tag);
        let prefix = base.join("usr");
        let home = base.join("var");
        install(&[
            "--prefix",
            prefix.to_str().unwrap(),
            "--home",
            home.to_str().unwrap(),
            "--hostname",
            "localhost",
            "--pmaild",
            "nobody",
            "--pmailq",
            "nobody",
            "--pmailr",
            "nobody",
            "--alias",
            "nobody",
        ]);
        let mut h = Host {
            s: Sys::bare(base, home),
            prefix,
        };
        // install made the self-signed certificate every entry's tls-wrap
        // reads; the key is pmaild's (here nobody), mode 0600.
        let key = std::fs::metadata(h.home.join("control/tls/key.pem")).unwrap();
        assert_eq!((key.mode() & 0o777, key.uid()), (0o600, NOBODY));
        assert!(h.cert().is_file());
        let ann = h.ann();
        for d in ["cur", "new", "tmp"] {
            std::fs::create_dir_all(ann.join("Maildir").join(d)).unwrap();
        }
        std::fs::set_permissions(&ann, std::fs::Permissions::from_mode(0o700)).unwrap();
        chown_r(&ann, NOBODY, NOBODY);
        std::fs::write(
            h.home.join("users/assign"),
            format!("=ann:ann:{0}:{0}:{1}:::\n.\n", NOBODY, ann.display()),
        )
        .unwrap();
        // mail-passwd keeps users/passwd's group (nogroup) and mode 0640.
        let mut mp = h.cmd("mail-passwd");
        mp.args(["-u", "65534:65534", "-d", ann.to_str().unwrap(), "ann"]);
        let o = feed(&mut mp, b"sesame\n", None);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let m = std::fs::metadata(h.home.join("users/passwd")).unwrap();
        assert_eq!((m.mode() & 0o777, m.gid()), (0o640, NOBODY));
        let mut q = h.cmd("local-spawn");
        q.args(["-u", "nobody", "queue-run"]);
        h.start_queue("queue", q);
        h
    }

    /// ann's messages (new/ and cur/: POP3 and IMAP sessions move them).
    fn mail(&self) -> Vec<Vec<u8>> {
        let mut v = Vec::new();
        for sub in ["new", "cur"] {
            let d = self.ann().join("Maildir").join(sub);
            for f in files(&d) {
                v.push(std::fs::read(d.join(f)).unwrap_or_default());
            }
        }
        v
    }

    /// The self-signed certificate install made (the clients' CA file).
    fn cert(&self) -> PathBuf {
        self.home.join("control/tls/cert.pem")
    }

    fn ann(&self) -> PathBuf {
        self.base.join("ann")
    }

    fn libexec(&self, name: &str) -> PathBuf {
        self.prefix.join("libexec/pipemail").join(name)
    }

    /// An installed program with a clean environment (no PATH: as inetd).
    fn cmd(&self, name: &str) -> Command {
        let mut c = Command::new(self.libexec(name));
        c.env_clear().env("PIPEMAIL_HOME", &self.home);
        c
    }

    /// An installed service entry.
    fn service(&self, rel: &str) -> String {
        std::fs::read_to_string(self.prefix.join("share/pipemail/service").join(rel)).unwrap()
    }

    /// Runs deploy/client.py against the four ports, then checks that both
    /// of its messages arrived in ann's Maildir byte for byte.
    fn exercise(&self, ports: [u16; 4]) {
        for p in ports {
            wait_port(p);
        }
        let m1 = b"From: someone@example.org\r\nTo: ann@localhost\r\nSubject: one\r\n\r\nbody one\r\n.dot line\r\n".to_vec();
        // Submission (SUBMISSION=1) adds Date and Message-ID when missing:
        // this one has them, so it arrives as sent.
        let m2 = b"From: ann@localhost\r\nTo: ann@localhost\r\nSubject: two\r\nDate: Fri, 4 Dec 2026 17:00:00 +0000\r\nMessage-ID: <two@localhost>\r\n\r\nsubmitted\r\n"
            .to_vec();
        let (f1, f2) = (self.base.join("m1"), self.base.join("m2"));
        std::fs::write(&f1, &m1).unwrap();
        std::fs::write(&f2, &m2).unwrap();
        let script = self.base.join("client.py");
        std::fs::write(&script, CLIENT_PY).unwrap();
        let mut c = Command::new("python3");
        c.arg(&script);
        for p in ports {
            c.arg(p.to_string());
        }
        let o = c
            .arg(&f1)
            .arg(&f2)
            .arg(self.cert())
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&o.stdout),
            "ok\n",
            "client: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        wait_until(30, "two messages in ann's Maildir", || {
            self.mail().len() == 2
        });
        let got = self.mail();
        // Both came over STARTTLS: smtplib's on 25, AUTH on 587.
        for (m, with) in [(&m1, "with ESMTPS ("), (&m2, "with ESMTPSA (")] {
            let tail = String::from_utf8_lossy(m).replace("\r\n", "\n");
            let g = got.iter().find(|g| g.ends_with(tail.as_bytes())).unwrap();
            let g = String::from_utf8_lossy(g);
            assert!(g.contains(with), "{} in {}", with, g);
        }
        for m in [m1, m2] {
            // CRLF is stored as LF; nothing else changes.
            let want = String::from_utf8(m).unwrap().replace("\r\n", "\n");
            let hit = got.iter().find(|g| g.ends_with(want.as_bytes()));
            let g = hit.unwrap_or_else(|| panic!("no message ends with {:?}: {:?}", want, got));
            // Above it only the trace fields the system adds.
            let top = String::from_utf8_lossy(&g[..g.len() - want.len()]).into_owned();
            for l in top.lines() {
                assert!(
                    ["Return-Path:", "Delivered-To:", "Received:", " ", "\t"]
                        .iter()
                        .any(|p| l.starts_with(p)),
                    "unexpected line above the message: {:?}",
                    l
                );
            }
        }
    }
}

/// The four network services, in client.py's order.
const SERVICES: [&str; 4] = ["smtp", "submission", "pop3", "imap"];

#[test]
fn inetd_serves_smtp_submission_pop3_and_imap_without_a_log_byte_in_the_stream() {
    let Some(inetd) = need("inetd") else { return };
    let mut h = Host::new("inetd");
    let ports = SERVICES.map(|_| free_port());
    // The installed lines, each on its own 127.0.0.1 port.
    let mut conf = String::new();
    let mut n = 0;
    for l in h.service("inetd.conf").lines() {
        if l.starts_with('#') || l.trim().is_empty() {
            continue;
        }
        let (_, rest) = l.split_once(' ').unwrap();
        conf.push_str(&format!("127.0.0.1:{} {}\n", ports[n], rest));
        n += 1;
    }
    assert_eq!(n, 4, "inetd.conf has four services");
    let p = h.base.join("inetd.conf");
    std::fs::write(&p, conf).unwrap();
    let mut c = Command::new(inetd);
    c.arg("-d").arg(&p);
    h.start("inetd", c);
    h.exercise(ports);
    curl_starttls(&h, ports[2], ports[3], 2);
}

#[test]
fn xinetd_serves_smtp_submission_pop3_and_imap_without_a_log_byte_in_the_stream() {
    let Some(xinetd) = need("xinetd") else { return };
    let mut h = Host::new("xinetd");
    let ports = SERVICES.map(|_| free_port());
    let mut conf = String::new();
    for (s, port) in SERVICES.iter().zip(ports) {
        let f = h.service(&format!("xinetd.d/pipemail-{}", s));
        let mut port_lines = 0;
        for l in f.lines() {
            if l.trim_start().starts_with("port") {
                conf.push_str(&format!("\tport = {}\n\tbind = 127.0.0.1\n", port));
                port_lines += 1;
            } else {
                conf.push_str(l);
                conf.push('\n');
            }
        }
        assert_eq!(port_lines, 1, "{} names its port once", s);
    }
    let p = h.base.join("xinetd.conf");
    std::fs::write(&p, conf).unwrap();
    let mut c = Command::new(xinetd);
    c.args(["-dontfork", "-filelog"])
        .arg(h.base.join("xinetd.events"))
        .arg("-pidfile")
        .arg(h.base.join("xinetd.pid"))
        .arg("-f")
        .arg(&p);
    h.start("xinetd", c);
    h.exercise(ports);
}

/// systemd-socket-activate per connection (Accept=yes) with the installed
/// units' Environment=, User= and ExecStart=; `inetd`: the connection as
/// fds 0 and 1 (StandardInput=socket), else as fd 3 with $LISTEN_FDS.
fn socket_activate(tag: &str, inetd: bool) {
    let Some(sa) = need("systemd-socket-activate") else {
        return;
    };
    let Some(setpriv) = need("setpriv") else {
        return;
    };
    let mut h = Host::new(tag);
    let ports = SERVICES.map(|_| free_port());
    for (s, port) in SERVICES.iter().zip(ports) {
        let sock = h.service(&format!("systemd/pipemail-{}.socket", s));
        assert!(sock.contains("Accept=yes"), "{}.socket: Accept=yes", s);
        let unit = h.service(&format!("systemd/pipemail-{}@.service", s));
        let mut c = Command::new(&sa);
        c.env_clear()
            .arg("-l")
            .arg(format!("127.0.0.1:{}", port))
            .arg("-a");
        if inetd {
            c.arg("--inetd");
        }
        let (mut env, mut user, mut exec) = (Vec::new(), false, Vec::new());
        for l in unit.lines() {
            if let Some(v) = l.strip_prefix("Environment=") {
                env.extend(v.split_whitespace().map(String::from));
            } else if l.starts_with("User=") {
                user = true;
            } else if let Some(v) = l.strip_prefix("ExecStart=") {
                exec = v.split_whitespace().map(String::from).collect();
            }
        }
        for kv in env {
            c.arg("-E").arg(kv);
        }
        if user {
            c.arg(&setpriv)
                .args(["--reuid=65534", "--regid=65534", "--clear-groups"]);
        }
        assert!(!exec.is_empty(), "{}@.service has ExecStart=", s);
        c.args(&exec);
        h.start(&format!("activate-{}", s), c);
    }
    h.exercise(ports);
}

#[test]
fn systemd_socket_activate_inetd_style_serves_every_service() {
    socket_activate("sd-inetd", true);
}

/// systemd's own check of the installed units: syntax, and that every
/// ExecStart= names an executable.
#[test]
fn systemd_analyze_verify_accepts_the_installed_units() {
    let Some(sa) = need("systemd-analyze") else {
        return;
    };
    let h = Host::new("sd-verify");
    let dir = h.prefix.join("share/pipemail/service/systemd");
    let mut units: Vec<PathBuf> = files(&dir).iter().map(|f| dir.join(f)).collect();
    units.sort();
    assert_eq!(
        units.len(),
        15,
        "7 sockets, 7 services (smtp, submission, pop3, imap, smtps, pop3s, imaps), the queue"
    );
    let o = Command::new(sa)
        .args(["verify", "--man=no"])
        .args(&units)
        .output()
        .unwrap();
    // Our test accounts are nobody, which systemd warns about; nothing else.
    let err = String::from_utf8_lossy(&o.stderr);
    let other: Vec<&str> = err
        .lines()
        .filter(|l| !l.contains("Special user nobody"))
        .collect();
    assert!(o.status.success() && other.is_empty(), "{}", err);
}

#[test]
fn systemd_socket_activate_listen_fds_serves_every_service() {
    socket_activate("sd-accept", false);
}

#[test]
fn tcpserver_serves_every_service_with_the_installed_rules() {
    let Some(tcpserver) = need("tcpserver") else {
        return;
    };
    let Some(tcprules) = need("tcprules") else {
        return;
    };
    let mut h = Host::new("tcpserver");
    // control/tcp.smtp as install wrote it, compiled by tcprules.
    let rules = std::fs::read(h.home.join("control/tcp.smtp")).unwrap();
    let cdb = h.home.join("control/tcp.smtp.cdb");
    let mut tr = Command::new(tcprules);
    tr.arg(&cdb).arg(h.home.join("control/tcp.smtp.tmp"));
    let o = feed(&mut tr, &rules, None);
    assert!(
        o.status.success(),
        "tcprules: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let ports = SERVICES.map(|_| free_port());
    let x = |p: &str| h.libexec(p).to_string_lossy().into_owned();
    let w = |v: &[&str]| v.iter().map(|a| a.to_string()).collect::<Vec<String>>();
    // Each behind tls-wrap -d (STARTTLS), as the installed entries are.
    let chains = [
        w(&["relay-gate", "smtp-recv"]),
        w(&["smtp-recv"]),
        w(&[
            "pop3-login",
            "localhost",
            "check-password",
            "pop3d",
            "Maildir",
        ]),
        w(&["imap-login", "check-password", "imapd", "Maildir"]),
    ];
    let mut servers = Vec::new();
    for (i, chain) in chains.iter().enumerate() {
        let mut c = Command::new(&tcpserver);
        c.env_clear()
            .env("PIPEMAIL_HOME", &h.home)
            .env("CERTFILE", h.cert())
            .env("KEYFILE", h.home.join("control/tls/key.pem"))
            .args(["-H", "-R", "-l", "localhost"]);
        match i {
            0 => c.args(["-u", "65534", "-g", "65534", "-x"]).arg(&cdb),
            1 => c
                .args(["-u", "65534", "-g", "65534"])
                .env("SMTPAUTH", "check-password")
                .env("SUBMISSION", "1"),
            _ => &mut c,
        };
        c.args(["127.0.0.1", &ports[i].to_string()])
            .args([x("tls-wrap"), "-d".into()])
            .args(chain);
        servers.push((format!("tcpserver-{}", SERVICES[i]), c));
    }
    for (name, c) in servers {
        h.start(&name, c);
    }
    h.exercise(ports);
}

#[test]
fn tcp_serve_runit_scripts_serve_every_service_and_swaks_submits_with_auth() {
    let Some(_) = need("sh") else { return };
    let mut h = Host::new("runit");
    let ports = SERVICES.map(|_| free_port());
    for (s, port) in SERVICES.iter().zip(ports) {
        let run = h.service(&format!("runit/{}/run", s));
        let std = [" 0 25 ", " 0 587 ", " 0 110 ", " 0 143 "];
        let i = SERVICES.iter().position(|x| x == s).unwrap();
        assert!(
            run.contains(std[i]),
            "runit/{}/run listens on {}",
            s,
            std[i]
        );
        let run = run.replace(std[i], &format!(" 127.0.0.1 {} ", port));
        let p = h.base.join(format!("{}.run", s));
        std::fs::write(&p, run).unwrap();
        let mut c = Command::new("/bin/sh");
        c.env_clear().arg(&p);
        h.start(&format!("runit-{}", s), c);
    }
    h.exercise(ports);
    // swaks, a second real client, through submission with STARTTLS
    // (verifying the installed certificate) and AUTH.
    if let Some(swaks) = need("swaks") {
        let o = Command::new(swaks)
            .args(["--server", &format!("127.0.0.1:{}", ports[1])])
            .args(["--tls", "--tls-verify", "--tls-ca-path"])
            .arg(h.cert())
            .args([
                "--auth",
                "PLAIN",
                "--auth-user",
                "ann",
                "--auth-password",
                "sesame",
            ])
            .args(["--from", "ann@localhost", "--to", "ann@localhost"])
            .args(["--header", "Subject: swaks", "--body", "by swaks"])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "swaks: {}",
            String::from_utf8_lossy(&o.stdout)
        );
        let out = String::from_utf8_lossy(&o.stdout);
        assert!(
            out.contains("=== TLS started with cipher TLSv1.") && out.contains(" ~> AUTH PLAIN"),
            "{}",
            out
        );
        wait_until(30, "swaks's message", || h.mail().len() == 3);
        let got = h.mail();
        let m = got
            .iter()
            .map(|m| String::from_utf8_lossy(m).into_owned())
            .find(|m| m.contains("\nby swaks"))
            .unwrap();
        assert!(m.contains("with ESMTPSA (TLSv1."), "{}", m);
    }
    // curl over POP3 and IMAP with STLS/STARTTLS required (--ssl-reqd).
    curl_starttls(&h, ports[2], ports[3], 3);
}

/// curl --ssl-reqd with the installed certificate as its CA: the POP3
/// listing shows `n` messages and IMAP fetches one of them; without
/// --ssl-reqd's TLS a login is refused.
fn curl_starttls(h: &Host, pop3: u16, imap: u16, n: usize) {
    let Some(curl) = need("curl") else { return };
    let run = |url: String, tls: bool| {
        let mut c = Command::new(&curl);
        c.args(["-sS", "--max-time", "30", "--user", "ann:sesame"]);
        if tls {
            c.arg("--ssl-reqd").arg("--cacert").arg(h.cert());
        }
        c.arg(url).stdin(Stdio::null()).output().unwrap()
    };
    let o = run(format!("pop3://localhost:{}/", pop3), true);
    assert!(
        o.status.success(),
        "curl pop3: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let list = String::from_utf8_lossy(&o.stdout).into_owned();
    assert_eq!(list.lines().count(), n, "{}", list);
    assert!(
        list.lines().all(|l| l.starts_with(char::is_numeric)),
        "{}",
        list
    );
    let o = run(format!("imap://localhost:{}/INBOX;UID=1", imap), true);
    assert!(
        o.status.success(),
        "curl imap: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(String::from_utf8_lossy(&o.stdout).contains("Received: "));
    // The same logins in clear text fail (curl exit 67: login denied).
    for url in [
        format!("pop3://localhost:{}/", pop3),
        format!("imap://localhost:{}/INBOX", imap),
    ] {
        let o = run(url.clone(), false);
        assert!(!o.status.success(), "{} logged in without TLS", url);
    }
}

/// Every path under `root` with its type, mode, owner and, for files,
/// size, mtime and content: what a second install must leave as it was.
fn snapshot(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(p) = stack.pop() {
        let m = std::fs::symlink_metadata(&p).unwrap();
        let mut line = format!("{} {:o} {}:{}", p.display(), m.mode(), m.uid(), m.gid());
        if !m.file_type().is_symlink() {
            // A second run writes nothing, not even a temporary file.
            line.push_str(&format!(" t{}.{:09}", m.mtime(), m.mtime_nsec()));
        }
        if m.is_dir() {
            for e in std::fs::read_dir(&p).unwrap() {
                stack.push(e.unwrap().path());
            }
        } else if m.file_type().is_symlink() {
            line.push_str(&format!(
                " -> {}",
                std::fs::read_link(&p).unwrap().display()
            ));
        } else if m.is_file() {
            let body = std::fs::read(&p).unwrap();
            let sum = body
                .iter()
                .fold(0u64, |h, &b| h.wrapping_mul(131).wrapping_add(b as u64));
            line.push_str(&format!(" {} {} {:x}", m.len(), m.mtime(), sum));
        }
        out.push(line);
    }
    out.sort();
    out
}

#[test]
fn install_lays_out_the_tree_without_set_id_bits_and_a_second_run_changes_nothing() {
    let base = scratch("install");
    let dest = base.join("dest");
    let args = [
        "--destdir",
        dest.to_str().unwrap(),
        "--hostname",
        "mail.example.org",
        "--pmaild",
        "nobody",
        "--pmailq",
        "nobody",
        "--pmailr",
        "nobody",
        "--alias",
        "nobody",
    ];
    install(&args);
    let lib = dest.join("usr/local/libexec/pipemail");
    let home = dest.join("var/pipemail");
    // Every [[bin]] of Cargo.toml, and only those, besides make-home and
    // make-cert.
    let cargo =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml")).unwrap();
    let mut bins: Vec<String> = cargo
        .split("[[bin]]")
        .skip(1)
        .map(|s| s.split('"').nth(1).unwrap().to_string())
        .collect();
    bins.push("make-home".into());
    bins.push("make-cert".into());
    bins.sort();
    assert_eq!(files(&lib), bins);
    for (dir, page) in [
        ("man8", "smtp-recv.8"),
        ("man1", "tcp-serve.1"),
        ("man5", "pipemail-control.5"),
        ("man7", "pipemail.7"),
    ] {
        assert!(
            dest.join("usr/local/share/man")
                .join(dir)
                .join(page)
                .is_file(),
            "{}",
            page
        );
    }
    for (link, to) in [
        ("usr/local/bin/mailq", "sendmail"),
        ("usr/local/sbin/newaliases", "sendmail"),
        ("usr/local/sbin/sendmail", "sendmail"),
        ("usr/local/bin/mail-passwd", "mail-passwd"),
    ] {
        assert!(
            std::fs::read_link(dest.join(link)).unwrap().ends_with(to),
            "{}",
            link
        );
    }
    // No set-user-id or set-group-id bit anywhere.
    for l in snapshot(&dest) {
        let mode = u32::from_str_radix(l.split(' ').nth(1).unwrap(), 8).unwrap();
        assert_eq!(mode & 0o6000, 0, "set-id bit: {}", l);
    }
    let mode = |p: &str| std::fs::symlink_metadata(home.join(p)).unwrap().mode();
    assert_eq!(mode("queue/drop"), 0o41733);
    assert!(std::fs::metadata(home.join("queue/trigger"))
        .unwrap()
        .file_type()
        .is_fifo());
    assert_eq!(mode("queue/trigger") & 0o7777, 0o622);
    assert_eq!(mode("relay") & 0o7777, 0o711);
    assert_eq!(mode("control") & 0o7777, 0o755);
    assert_eq!(mode("users/passwd") & 0o7777, 0o640);
    // A package (--destdir) carries no key: each host makes its own.
    assert!(!home.join("control/tls").exists());
    assert_eq!(
        std::fs::read_to_string(home.join("control/me")).unwrap(),
        "mail.example.org\n"
    );
    // The one SMTP rules file, allowing every client to connect.
    let rules = std::fs::read_to_string(home.join("control/tcp.smtp")).unwrap();
    assert!(rules.lines().any(|l| l == ":allow"), "{}", rules);
    assert_eq!(
        std::fs::read_to_string(home.join("alias/.qmail-postmaster")).unwrap(),
        "./Maildir/\n"
    );
    if is_root() {
        let m = std::fs::metadata(home.join("users/passwd")).unwrap();
        assert_eq!(m.gid(), NOBODY, "users/passwd: pmaild's group");
        assert_eq!(std::fs::metadata(home.join("queue")).unwrap().uid(), NOBODY);
    }
    // The service entries name the installed paths.
    let inetd =
        std::fs::read_to_string(dest.join("usr/local/share/pipemail/service/inetd.conf")).unwrap();
    assert!(inetd.contains(
        "/usr/local/libexec/pipemail/tls-wrap -d pop3-login mail.example.org check-password"
    ));
    // Edited control files survive; otherwise a second run changes nothing.
    std::fs::write(home.join("control/me"), "edited.example\n").unwrap();
    std::fs::write(home.join("alias/.qmail-postmaster"), "&admin@example.org\n").unwrap();
    let before = snapshot(&dest);
    std::thread::sleep(std::time::Duration::from_millis(1100));
    install(&args);
    let after = snapshot(&dest);
    let changed: Vec<&String> = before
        .iter()
        .filter(|l| !after.contains(l))
        .chain(after.iter().filter(|l| !before.contains(l)))
        .collect();
    assert!(changed.is_empty(), "the second run changed: {:#?}", changed);
    let _ = std::fs::remove_dir_all(&base);
}

/// install makes control/tls/cert.pem and key.pem (self-signed, for the
/// host name) only when neither is there: an administrator's certificate,
/// and a lone file, are left as they are.
#[test]
fn install_makes_a_certificate_once_and_never_replaces_the_administrators() {
    let base = scratch("install-cert");
    let home = base.join("var");
    let args = [
        "--prefix".to_string(),
        base.join("usr").to_str().unwrap().to_string(),
        "--home".into(),
        home.to_str().unwrap().to_string(),
        "--hostname".into(),
        "mx.example.net".into(),
        "--pmaild".into(),
        "nobody".into(),
        "--pmailq".into(),
        "nobody".into(),
        "--pmailr".into(),
        "nobody".into(),
        "--alias".into(),
        "nobody".into(),
    ];
    let args: Vec<&str> = args.iter().map(|s| s.as_str()).collect();
    let o = install(&args);
    let tls = home.join("control/tls");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("install: made a self-signed certificate for mx.example.net in "),
        "{}",
        err
    );
    let key = std::fs::metadata(tls.join("key.pem")).unwrap();
    assert_eq!(key.mode() & 0o777, 0o600);
    if is_root() {
        assert_eq!(key.uid(), NOBODY, "key.pem: pmaild's");
    }
    let o = Command::new("openssl")
        .args([
            "x509",
            "-noout",
            "-subject",
            "-ext",
            "subjectAltName",
            "-in",
        ])
        .arg(tls.join("cert.pem"))
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("CN = mx.example.net") && out.contains("DNS:mx.example.net"),
        "{}",
        out
    );
    // The administrator's own pair (here: other bytes) survives a rerun.
    std::fs::write(tls.join("cert.pem"), "admin cert\n").unwrap();
    std::fs::write(tls.join("key.pem"), "admin key\n").unwrap();
    let o = install(&args);
    assert!(!String::from_utf8_lossy(&o.stderr).contains("made a self-signed"));
    assert_eq!(
        std::fs::read(tls.join("cert.pem")).unwrap(),
        b"admin cert\n"
    );
    assert_eq!(std::fs::read(tls.join("key.pem")).unwrap(), b"admin key\n");
    // Only a key: kept, and a warning says the TLS entries will fail.
    std::fs::remove_file(tls.join("cert.pem")).unwrap();
    let o = install(&args);
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("has only one of cert.pem and key.pem"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(!tls.join("cert.pem").exists());
    assert_eq!(std::fs::read(tls.join("key.pem")).unwrap(), b"admin key\n");
    // The installed certbot deploy hook puts a renewed pair in place.
    let live = base.join("live");
    std::fs::create_dir(&live).unwrap();
    std::fs::write(live.join("fullchain.pem"), "chain\n").unwrap();
    std::fs::write(live.join("privkey.pem"), "new key\n").unwrap();
    let o = Command::new(base.join("usr/share/pipemail/service/certbot-deploy"))
        .env("RENEWED_LINEAGE", &live)
        .env("SVDIR", base.join("no-runit"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(std::fs::read(tls.join("cert.pem")).unwrap(), b"chain\n");
    assert_eq!(std::fs::read(tls.join("key.pem")).unwrap(), b"new key\n");
    let key = std::fs::metadata(tls.join("key.pem")).unwrap();
    assert_eq!(key.mode() & 0o7777, 0o600);
    if is_root() {
        assert_eq!(key.uid(), NOBODY, "key.pem: pmaild's");
    }
    let _ = std::fs::remove_dir_all(&base);
}

/// Under inetd and xinetd descriptor 2 is the client's connection.
#[test]
fn a_program_whose_fd_2_is_a_socket_writes_nothing_to_it() {
    use std::io::Read;
    use std::os::unix::net::UnixStream;
    // check-password without descriptor 3 dies with a diagnostic.
    let run = |stderr: Stdio| {
        Command::new(bin("check-password"))
            .arg("true")
            .env_clear()
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .status()
            .unwrap()
    };
    let (mut ours, theirs) = UnixStream::pair().unwrap();
    let st = run(Stdio::from(std::os::fd::OwnedFd::from(theirs)));
    assert_eq!(st.code(), Some(2));
    let mut got = Vec::new();
    ours.read_to_end(&mut got).unwrap();
    assert_eq!(
        String::from_utf8_lossy(&got),
        "",
        "a log line reached the socket"
    );
    // journald's stream is a socket too: $JOURNAL_STREAM names it.
    let (mut ours, theirs) = UnixStream::pair().unwrap();
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    assert_eq!(
        unsafe { libc::fstat(std::os::fd::AsRawFd::as_raw_fd(&theirs), &mut st) },
        0
    );
    let st = Command::new(bin("check-password"))
        .arg("true")
        .env_clear()
        .env("JOURNAL_STREAM", format!("{}:{}", st.st_dev, st.st_ino))
        .stdin(Stdio::null())
        .stderr(Stdio::from(std::os::fd::OwnedFd::from(theirs)))
        .status()
        .unwrap();
    assert_eq!(st.code(), Some(2));
    let mut got = Vec::new();
    ours.read_to_end(&mut got).unwrap();
    assert!(
        got.starts_with(b"check-password: fatal: unable to read descriptor 3"),
        "{:?}",
        got
    );
    // A pipe (multilog, svlogd, a terminal) gets it as well.
    let o = Command::new(bin("check-password"))
        .arg("true")
        .env_clear()
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(o
        .stderr
        .starts_with(b"check-password: fatal: unable to read descriptor 3"));
}

#[test]
fn mailq_shows_a_normal_user_the_queue_while_the_queue_stays_private() {
    let Some(setpriv) = need("setpriv") else {
        return;
    };
    let mut h = Host::new("mailq");
    let closed = free_port();
    std::fs::write(
        h.home.join("control/smtproutes"),
        format!("remote.example:127.0.0.1:{}\n", closed),
    )
    .unwrap();
    // queue-run reads control files at start: restart it.
    h.queue.stop();
    let mut q = h.cmd("local-spawn");
    q.args(["-u", "nobody", "queue-run"]);
    h.start_queue("queue2", q);
    let mut sm = h.cmd("sendmail");
    sm.arg("-t");
    let o = feed(
        &mut sm,
        b"To: far@remote.example\nSubject: waiting\n\nstays queued\n",
        None,
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let summary = h.home.join("queue/mailq");
    wait_until(30, "queue/mailq naming the recipient", || {
        std::fs::read_to_string(&summary).is_ok_and(|t| t.contains("far@remote.example"))
    });
    assert_eq!(std::fs::metadata(&summary).unwrap().mode() & 0o777, 0o644);
    assert_eq!(
        std::fs::metadata(h.home.join("queue/info")).unwrap().mode() & 0o777,
        0o700
    );
    // A normal user (uid 1) runs mailq: the listing, and where it came from.
    let o = Command::new(&setpriv)
        .args(["--reuid=1", "--regid=1", "--clear-groups"])
        .arg(h.prefix.join("bin/mailq"))
        .env_clear()
        .env("PIPEMAIL_HOME", &h.home)
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("  remote far@remote.example"), "{}", out);
    assert!(o
        .stderr
        .starts_with(b"queue-list: info: from queue/mailq, written "));
    // Root reads the queue itself: the same message, no note.
    let o = Command::new(h.prefix.join("bin/mailq"))
        .env_clear()
        .env("PIPEMAIL_HOME", &h.home)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&o.stdout).contains("  remote far@remote.example"));
    assert_eq!(String::from_utf8_lossy(&o.stderr), "");
    // newaliases: nothing to rebuild, said so, exit 0.
    let o = Command::new(h.prefix.join("sbin/newaliases"))
        .env_clear()
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0));
    assert!(o
        .stderr
        .starts_with(b"sendmail: info: no aliases database to rebuild"));
}

/// inetd clears PATH; installed programs live outside it.
#[test]
fn chain_loaders_find_the_next_program_next_to_themselves_before_path() {
    let home = crate::common::home("sibling");
    let o = crate::common::run(
        "relay-gate",
        &["smtp-recv"],
        &[
            ("PIPEMAIL_HOME", home.to_str().unwrap()),
            ("TCPREMOTEIP", "192.0.2.1"),
        ],
        b"QUIT\r\n",
    );
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        o.stdout.starts_with(b"220 mail.example.org"),
        "{:?}",
        String::from_utf8_lossy(&o.stdout)
    );
    assert!(o.stdout.windows(6).any(|w| w == b"\r\n221 "));
}

/// `--users` on a copy of /etc, bind-mounted over /etc in a private mount
/// namespace, so the host's accounts stay as they are.
#[test]
fn install_users_creates_the_system_accounts_once_and_gives_them_their_files() {
    let Some(unshare) = need("unshare") else {
        return;
    };
    let base = scratch("users");
    let etc = base.join("etc");
    let dest = base.join("dest");
    let cp = Command::new("cp")
        .arg("-a")
        .arg("/etc/.")
        .arg(&etc)
        .status()
        .unwrap();
    assert!(cp.success());
    let bindir = bin("smtp-recv").parent().unwrap().to_path_buf();
    let script = format!(
        "set -e; mount --make-rprivate /; mount --bind '{etc}' /etc; \
         for i in 1 2; do '{inst}' --bindir '{bin}' --destdir '{dest}' --users --hostname mail.example.org >/dev/null; done; \
         stat -c '%U:%G %a %n' '{dest}/var/pipemail/queue' '{dest}/var/pipemail/queue/tcpto' '{dest}/var/pipemail/users/passwd' '{dest}/var/pipemail/alias'",
        etc = etc.display(),
        inst = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/install"),
        bin = bindir.display(),
        dest = dest.display()
    );
    let o = Command::new(unshare)
        .args(["-m", "sh", "-c", &script])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        format!(
            "pmailq:pmailq 755 {0}/queue\npmailr:pmailr 600 {0}/queue/tcpto\nroot:pmaild 640 {0}/users/passwd\nalias:alias 755 {0}/alias\n",
            dest.join("var/pipemail").display()
        )
    );
    let passwd = std::fs::read_to_string(etc.join("passwd")).unwrap();
    for (u, home) in [
        ("pmaild", "/var/pipemail"),
        ("pmailq", "/var/pipemail"),
        ("pmailr", "/var/pipemail"),
        ("alias", "/var/pipemail/alias"),
    ] {
        let lines: Vec<&str> = passwd
            .lines()
            .filter(|l| l.starts_with(&format!("{}:", u)))
            .collect();
        assert_eq!(lines.len(), 1, "{} once: {:?}", u, lines);
        assert!(
            lines[0].ends_with(&format!(":{}:/usr/sbin/nologin", home)),
            "{}",
            lines[0]
        );
    }
    // The host's accounts are untouched.
    assert!(!std::fs::read_to_string("/etc/passwd")
        .unwrap()
        .contains("\npmaild:"));
    let _ = std::fs::remove_dir_all(&base);
}

/// Where the line goes instead: syslog, facility mail (<19> is mail.err),
/// received on /dev/log of a fresh /dev in a private mount namespace.
#[test]
fn with_fd_2_a_socket_the_log_line_goes_to_syslog_facility_mail() {
    let Some(unshare) = need("unshare") else {
        return;
    };
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/it/deploy/syslog.py");
    let sh = format!(
        "mount --make-rprivate / && mount -t tmpfs tmpfs /dev && mknod -m 666 /dev/null c 1 3 && exec python3 '{}' '{}' true",
        script,
        bin("check-password").display()
    );
    let o = Command::new(unshare)
        .args(["-m", "sh", "-c", &sh])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[..2], ["2", "b''"], "{}", out);
    assert!(lines[2].starts_with("<19>"), "{}", out);
    assert!(
        lines[2].contains(" check-password[")
            && lines[2].ends_with(
                "]: fatal: unable to read descriptor 3: missing or longer than 512 bytes"
            ),
        "{}",
        out
    );
}

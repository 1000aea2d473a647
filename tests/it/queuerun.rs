//! queue-run, local-spawn, queue-list, queue-ctl: real binaries over a
//! scratch home; deliveries through fake $QMAILLOCAL / $QMAILREMOTE scripts
//! that record what they got.

use crate::common::*;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const FAKE_LOCAL: &str = r#"#!/bin/sh
n=$$.$(date +%s%N)
cat > "$FAKE_DIR/msg.$n"
printf '%s\n%s\n%s\n' "$1" "$2" "$(id -u)" > "$FAKE_DIR/tmp.$n" && mv "$FAKE_DIR/tmp.$n" "$FAKE_DIR/local.$n"
case "$2" in
perm*) echo "Sorry, no mailbox here by that name. (#5.1.1)"; exit 100;;
temp*) echo "temporary trouble (#4.2.1)"; exit 111;;
esac
echo "delivered to $2"
exit 0
"#;

const FAKE_REMOTE: &str = r#"#!/bin/sh
n=$$.$(date +%s%N)
cat > "$FAKE_DIR/rmsg.$n"
echo "$@" > "$FAKE_DIR/rtmp.$n" && mv "$FAKE_DIR/rtmp.$n" "$FAKE_DIR/remote.$n"
shift 2
for r in "$@"; do
  case "$r" in
  bad*) printf 'h127.0.0.1 does not like recipient.\nRemote host said: 550 5.1.1 no such user\000';;
  soft*) printf 's127.0.0.1 does not like recipient.\nRemote host said: 450 4.2.1 try later\000';;
  *) printf 'r\000';;
  esac
done
printf 'K127.0.0.1 accepted message.\000'
exit 0
"#;

pub(crate) struct Q {
    pub(crate) home: PathBuf,
    fake: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

fn script(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

impl Q {
    pub(crate) fn new(tag: &str) -> Q {
        let home = home(tag);
        let base = home.parent().unwrap().to_path_buf();
        let fake = base.join("fake");
        std::fs::create_dir_all(&fake).unwrap();
        std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o777)).unwrap();
        script(&base.join("local"), FAKE_LOCAL);
        // Every local part belongs to uid 65534 (deliveries never run as root).
        let catch = base.join("catch");
        std::fs::create_dir_all(&catch).unwrap();
        std::fs::write(
            home.join("users/assign"),
            format!("+:catch:65534:65534:{}:::\n.\n", catch.display()),
        )
        .unwrap();
        script(&base.join("remote"), FAKE_REMOTE);
        Q {
            log: base.join("log"),
            home,
            fake,
            child: None,
        }
    }

    pub(crate) fn command(&self, prog: &str, args: &[&str], extra: &[(&str, &str)]) -> Command {
        let base = self.home.parent().unwrap();
        let mut c = Command::new(bin(prog));
        c.args(args)
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("PIPEMAIL_HOME", &self.home)
            .env("QMAILLOCAL", base.join("local"))
            .env("QMAILREMOTE", base.join("remote"))
            .env("FAKE_DIR", &self.fake);
        for (k, v) in extra {
            c.env(k, v);
        }
        c
    }

    pub(crate) fn start(&mut self, extra: &[(&str, &str)]) {
        self.start_prog("queue-run", &[], extra);
    }

    fn start_prog(&mut self, prog: &str, args: &[&str], extra: &[(&str, &str)]) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let c = self
            .command(prog, args, extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(c);
    }

    fn signal(&self, sig: i32) {
        if let Some(c) = &self.child {
            unsafe { libc::kill(c.id() as i32, sig) };
        }
    }

    /// SIGTERM and wait (at most 10 s); returns the exit code.
    pub(crate) fn stop(&mut self) -> Option<i32> {
        self.signal(libc::SIGTERM);
        self.reap()
    }

    fn reap(&mut self) -> Option<i32> {
        let mut c = self.child.take()?;
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(10) {
            if let Some(st) = c.try_wait().unwrap() {
                return st.code();
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = c.kill();
        let _ = c.wait();
        panic!("process did not exit");
    }

    fn kill9(&mut self) {
        self.signal(libc::SIGKILL);
        if let Some(mut c) = self.child.take() {
            let _ = c.wait();
        }
    }

    fn log_text(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(&self.log).unwrap_or_default()).into_owned()
    }

    pub(crate) fn inject(&self, msg: &[u8], envelope: &[u8]) -> Option<i32> {
        inject_in(&self.home, msg, envelope)
    }

    /// (argv1, argv2, uid, message) per local delivery, in no order.
    pub(crate) fn locals(&self) -> Vec<(String, String, String, Vec<u8>)> {
        let mut v = Vec::new();
        for f in files(&self.fake) {
            if let Some(n) = f.strip_prefix("local.") {
                let meta = std::fs::read_to_string(self.fake.join(&f)).unwrap();
                let l: Vec<&str> = meta.split('\n').collect();
                let msg = std::fs::read(self.fake.join(format!("msg.{}", n))).unwrap();
                v.push((l[0].to_string(), l[1].to_string(), l[2].to_string(), msg));
            }
        }
        v
    }

    /// (argv, message) per remote-send run.
    pub(crate) fn remotes(&self) -> Vec<(String, Vec<u8>)> {
        let mut v = Vec::new();
        for f in files(&self.fake) {
            if let Some(n) = f.strip_prefix("remote.") {
                let argv = std::fs::read_to_string(self.fake.join(&f))
                    .unwrap()
                    .trim_end()
                    .to_string();
                v.push((
                    argv,
                    std::fs::read(self.fake.join(format!("rmsg.{}", n))).unwrap(),
                ));
            }
        }
        v
    }

    fn queue_empty(&self) -> bool {
        files(&self.home.join("queue/info")).is_empty()
            && files(&self.home.join("queue/drop"))
                .iter()
                .all(|f| !f.ends_with(".env"))
    }

    fn list(&self, args: &[&str]) -> String {
        self.output("queue-list", args)
    }

    /// Runs `prog args` in this home; its stdout (it must exit 0).
    pub(crate) fn output(&self, prog: &str, args: &[&str]) -> String {
        let o = self.command(prog, args, &[]).output().unwrap();
        assert_eq!(
            o.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8(o.stdout).unwrap()
    }

    fn ctl(&self, args: &[&str]) -> Option<i32> {
        self.command("queue-ctl", args, &[])
            .output()
            .unwrap()
            .status
            .code()
    }
}

impl Drop for Q {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn inject_in(home: &Path, msg: &[u8], envelope: &[u8]) -> Option<i32> {
    let (er, mut ew) = std::io::pipe().unwrap();
    let mut c = Command::new(bin("queue-inject"));
    c.env_clear()
        .env("PIPEMAIL_HOME", home)
        .stdin(Stdio::piped())
        .stdout(er)
        .stderr(Stdio::null());
    let mut child = c.spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(msg).unwrap();
    drop(stdin);
    let _ = ew.write_all(envelope);
    drop(ew);
    child.wait().unwrap().code()
}

pub(crate) fn env(sender: &str, rcpts: &[&str]) -> Vec<u8> {
    let mut v = format!("F{}\0", sender).into_bytes();
    for r in rcpts {
        v.extend_from_slice(format!("T{}\0", r).as_bytes());
    }
    v.push(0);
    v
}

pub(crate) fn wait_until(secs: u64, what: &str, mut f: impl FnMut() -> bool) {
    let t = Instant::now();
    while !f() {
        assert!(
            t.elapsed() < Duration::from_secs(secs),
            "timed out waiting for {}",
            what
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The body after queue-inject's Received line.
fn after_received(m: &[u8]) -> &[u8] {
    assert!(
        m.starts_with(b"Received: (pipemail "),
        "{:?}",
        String::from_utf8_lossy(m)
    );
    &m[m.iter().position(|&c| c == b'\n').unwrap() + 1..]
}

/// Parses a DSN with Python's email package: prints content type,
/// report-type, then per recipient `Final-Recipient|Action|Status|Diagnostic`,
/// then the third part's content type.
fn parse_dsn(m: &[u8]) -> Option<String> {
    let py = r#"
import email, sys
m = email.message_from_binary_file(sys.stdin.buffer)
print(m.get_content_type(), m.get_param('report-type'), m['From'], m['To'])
parts = m.get_payload()
print(parts[0].get_content_type())
ds = parts[1]
print(ds.get_content_type())
blocks = ds.get_payload()
print('mta', blocks[0]['Reporting-MTA'])
for b in blocks[1:]:
    print('|'.join([b['Final-Recipient'], b['Action'], b['Status'], b['Diagnostic-Code']]))
print(parts[2].get_content_type())
"#;
    let mut c = Command::new("python3");
    c.args(["-c", py])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let Ok(mut ch) = c.spawn() else {
        eprintln!("python3 missing: DSN not parsed");
        return None;
    };
    ch.stdin.take().unwrap().write_all(m).unwrap();
    let o = ch.wait_with_output().unwrap();
    assert!(
        o.status.success(),
        "python: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    Some(String::from_utf8(o.stdout).unwrap())
}

#[test]
fn delivers_local_and_remote_and_cleans_up() {
    let mut q = Q::new("qr-basic");
    let msg = b"Subject: hello\n\n.leading dot\n\xff 8-bit\n";
    assert_eq!(
        q.inject(
            msg,
            &env(
                "s@sender.example",
                &[
                    "u@mail.example.org",
                    "x@remote.example",
                    "y@Remote.example",
                    "z@other.example"
                ]
            )
        ),
        Some(0)
    );
    q.start(&[]);
    wait_until(10, "delivery", || {
        q.queue_empty() && q.locals().len() == 1 && q.remotes().len() == 2
    });
    let l = q.locals();
    assert_eq!(
        (l[0].0.as_str(), l[0].1.as_str()),
        ("s@sender.example", "u@mail.example.org")
    );
    assert_eq!(after_received(&l[0].3), msg);
    let mut r: Vec<String> = q
        .remotes()
        .into_iter()
        .map(|(a, m)| {
            assert_eq!(after_received(&m), msg);
            a
        })
        .collect();
    r.sort();
    assert_eq!(
        r,
        vec![
            "other.example s@sender.example z@other.example",
            "remote.example s@sender.example x@remote.example y@Remote.example"
        ]
    );
    // Messages injected while it runs are picked up at once.
    assert_eq!(
        q.inject(b"Subject: 2\n\n", &env("", &["v@mail.example.org"])),
        Some(0)
    );
    wait_until(5, "second delivery", || q.locals().len() == 2);
    wait_until(5, "queue empty", || q.queue_empty());
    assert_eq!(q.stop(), Some(0));
    let log = q.log_text();
    for want in [
        "info: new msg ",
        " bytes ",
        "from <s@sender.example> uid ",
        "starting delivery 1: msg ",
        "success: u@mail.example.org: delivered to u@mail.example.org",
        "end msg ",
        "status: local 0/10 remote 0/20",
        "status: exiting",
    ] {
        assert!(log.contains(want), "log lacks {:?}:\n{}", want, log);
    }
    for d in ["mess", "info", "state", "tmp"] {
        assert!(
            files(&q.home.join("queue").join(d)).is_empty(),
            "queue/{} not empty",
            d
        );
    }
}

#[test]
fn permanent_failures_make_one_dsn() {
    let mut q = Q::new("qr-dsn");
    let msg = b"Subject: doomed\nMessage-ID: <m1@x>\n\nbody\n";
    q.inject(
        msg,
        &env(
            "s@mail.example.org",
            &[
                "perm@mail.example.org",
                "bad@remote.example",
                "ok@remote.example",
            ],
        ),
    );
    q.start(&[]);
    wait_until(10, "bounce", || {
        q.queue_empty() && q.locals().iter().any(|l| l.1 == "s@mail.example.org")
    });
    q.stop();
    let b: Vec<_> = q
        .locals()
        .into_iter()
        .filter(|l| l.1 == "s@mail.example.org")
        .collect();
    assert_eq!(b.len(), 1, "one bounce");
    assert_eq!(b[0].0, "", "null sender");
    let dsn = after_received(&b[0].3);
    let s = String::from_utf8_lossy(dsn);
    assert!(s.contains("Subject: doomed"));
    if let Some(p) = parse_dsn(dsn) {
        let lines: Vec<&str> = p.lines().collect();
        assert_eq!(
            lines[0],
            "multipart/report delivery-status MAILER-DAEMON@mail.example.org s@mail.example.org"
        );
        assert_eq!(lines[1], "text/plain");
        assert_eq!(lines[2], "message/delivery-status");
        assert_eq!(lines[3], "mta dns; mail.example.org");
        assert!(lines.contains(&"rfc822; perm@mail.example.org|failed|5.1.1|x-pipemail; Sorry, no mailbox here by that name. (#5.1.1)"), "{}", p);
        assert!(
            lines.contains(&"rfc822; bad@remote.example|failed|5.1.1|smtp; 550 5.1.1 no such user"),
            "{}",
            p
        );
        assert_eq!(lines.len(), 7, "{}", p);
        assert_eq!(lines[6], "message/rfc822");
    }
    let log = q.log_text();
    assert!(
        log.contains("failure: perm@mail.example.org: Sorry, no mailbox"),
        "{}",
        log
    );
    assert!(log.contains("info: bounce msg "), "{}", log);
}

#[test]
fn failing_bounce_double_bounces_and_failing_double_bounce_is_dropped() {
    let mut q = Q::new("qr-double");
    q.inject(
        b"Subject: x\n\n",
        &env("bad@remote.example", &["perm@mail.example.org"]),
    );
    q.start(&[]);
    wait_until(10, "double bounce", || {
        q.queue_empty()
            && q.locals()
                .iter()
                .any(|l| l.1 == "postmaster@mail.example.org")
    });
    q.stop();
    let d: Vec<_> = q
        .locals()
        .into_iter()
        .filter(|l| l.1 == "postmaster@mail.example.org")
        .collect();
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].0, "#@[]");
    if let Some(p) = parse_dsn(after_received(&d[0].3)) {
        assert!(
            p.contains("rfc822; bad@remote.example|failed|5.1.1|smtp; 550 5.1.1 no such user"),
            "{}",
            p
        );
    }
    assert!(q.log_text().contains("double bounce msg "));

    // Now the double bounce fails too: it is dropped and logged.
    let mut q = Q::new("qr-triple");
    control(&q.home, "doublebounceto", "permpm\n");
    q.inject(
        b"Subject: x\n\n",
        &env("bad@remote.example", &["perm@mail.example.org"]),
    );
    q.start(&[]);
    wait_until(10, "triple bounce", || {
        q.queue_empty() && q.log_text().contains("triple bounce: discarding msg ")
    });
    q.stop();
    assert!(q
        .locals()
        .iter()
        .any(|l| l.1 == "permpm@mail.example.org" && l.0 == "#@[]"));
}

#[test]
fn retries_on_schedule_and_expires() {
    let mut q = Q::new("qr-retry");
    q.inject(
        b"Subject: later\n\n",
        &env("s@mail.example.org", &["temp@mail.example.org"]),
    );
    q.start(&[]);
    wait_until(10, "first attempt", || {
        q.log_text()
            .contains("deferral: temp@mail.example.org: temporary trouble (#4.2.1)")
    });
    assert!(
        q.list(&[]).contains("deferred, next try in 1m"),
        "{}",
        q.list(&[])
    );
    assert!(q
        .list(&["-s"])
        .starts_with("messages 1 local 1 remote 0 held 0 oldest "));
    assert_eq!(q.stop(), Some(0));
    let tries = |q: &Q| {
        q.locals()
            .iter()
            .filter(|l| l.1 == "temp@mail.example.org")
            .count()
    };
    assert_eq!(tries(&q), 1);
    // 50 s later nothing is due (the next try is 100 s after birth).
    q.start(&[("PIPEMAIL_NOW_OFFSET", "50")]);
    std::thread::sleep(Duration::from_millis(700));
    assert_eq!(tries(&q), 1);
    // SIGALRM retries now.
    q.signal(libc::SIGALRM);
    wait_until(5, "retry on ALRM", || tries(&q) == 2);
    q.stop();
    // 8 days later the next attempt is the last: a bounce.
    q.start(&[("PIPEMAIL_NOW_OFFSET", "700000")]);
    wait_until(10, "expiry bounce", || {
        q.queue_empty() && q.locals().iter().any(|l| l.1 == "s@mail.example.org")
    });
    q.stop();
    assert_eq!(tries(&q), 3);
    let b = q
        .locals()
        .into_iter()
        .find(|l| l.1 == "s@mail.example.org")
        .unwrap();
    let s = String::from_utf8_lossy(&b.3).into_owned();
    assert!(
        s.contains("I'm not going to try again; this message has been in the queue too long."),
        "{}",
        s
    );
    if let Some(p) = parse_dsn(after_received(&b.3)) {
        assert!(
            p.contains("rfc822; temp@mail.example.org|failed|5.2.1|"),
            "{}",
            p
        );
    }
}

fn forge(home: &Path, id: &str, msg: Option<&[u8]>, envelope: &[u8]) {
    let d = home.join("queue/drop");
    if let Some(m) = msg {
        std::fs::write(d.join(id), m).unwrap();
    }
    std::fs::write(d.join(format!("{}.env", id)), envelope).unwrap();
}

#[test]
fn quarantines_forged_drop_files() {
    let mut q = Q::new("qr-quarantine");
    let h = q.home.clone();
    let uid = unsafe { libc::geteuid() };
    let good = format!(
        "Received: (pipemail 1 invoked by uid {}); now\nSubject: ok\n\n",
        uid
    );
    let e = env("s@x", &["u@mail.example.org"]);
    forge(
        &h,
        "1.1.aa",
        Some(format!("Received: (pipemail 1 invoked by uid {}); now\n\n", uid + 1).as_bytes()),
        &e,
    );
    forge(&h, "1.1.bb", None, &e);
    std::os::unix::fs::symlink("/etc/passwd", h.join("queue/drop/1.1.bb")).unwrap();
    forge(&h, "1.1.cc", None, &e);
    let fifo = std::ffi::CString::new(h.join("queue/drop/1.1.cc").to_str().unwrap()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o644) }, 0);
    forge(&h, "1.1.dd", Some(good.as_bytes()), b"garbage");
    // A young envelope that does not parse may still be being written.
    let st = Command::new("touch")
        .args(["-d", "20 minutes ago"])
        .arg(h.join("queue/drop/1.1.dd.env"))
        .status()
        .unwrap();
    assert!(st.success());
    forge(&h, "1.1.ee", Some(b"Subject: no received line\n\n"), &e);
    forge(&h, "1.1.ff", Some(good.as_bytes()), &e); // a good one
    std::fs::hard_link(
        h.join("queue/drop/1.1.ff"),
        h.parent().unwrap().join("extra-link"),
    )
    .unwrap();
    forge(&h, "1.1.gg", Some(good.as_bytes()), &e); // good, not linked
                                                    // Half-made: an old one goes, a fresh one stays.
    std::fs::write(h.join("queue/drop/2.2.old"), "x").unwrap();
    std::fs::write(h.join("queue/drop/2.2.new"), "x").unwrap();
    assert!(Command::new("touch")
        .args(["-d", "3 days ago"])
        .arg(h.join("queue/drop/2.2.old"))
        .status()
        .unwrap()
        .success());
    q.start(&[]);
    wait_until(10, "takeover", || q.locals().len() == 1 && q.queue_empty());
    q.stop();
    let qd = files(&h.join("queue/quarantine"));
    for id in ["1.1.aa", "1.1.bb", "1.1.cc", "1.1.dd", "1.1.ee", "1.1.ff"] {
        assert!(
            qd.contains(&format!("{}.env", id)),
            "{} not quarantined: {:?}",
            id,
            qd
        );
    }
    assert_eq!(files(&h.join("queue/drop")), vec!["2.2.new"]);
    assert_eq!(q.locals().len(), 1, "only the good one is delivered");
    let log = q.log_text();
    assert!(
        log.contains(
            "warning: quarantine msg 1.1.aa: message does not start with the Received line of uid"
        ),
        "{}",
        log
    );
    assert!(
        log.contains("quarantine msg 1.1.bb: message not a regular file"),
        "{}",
        log
    );
    assert!(
        log.contains("quarantine msg 1.1.dd: envelope does not parse"),
        "{}",
        log
    );
    assert!(
        log.contains("quarantine msg 1.1.ff: message more than one link"),
        "{}",
        log
    );
    assert!(
        log.contains("removed half-made submission drop/2.2.old"),
        "{}",
        log
    );
}

#[test]
fn queue_list_and_queue_ctl() {
    let mut q = Q::new("qr-ctl");
    assert_eq!(q.ctl(&["retry", "all"]), Some(111), "queue-run not running");
    assert_eq!(q.ctl(&["hold", "../x"]), Some(100));
    assert_eq!(q.ctl(&["frobnicate", "x"]), Some(100));
    q.inject(
        b"Subject: a\n\n",
        &env(
            "s@mail.example.org",
            &["temp@mail.example.org", "soft@remote.example"],
        ),
    );
    q.start(&[]);
    wait_until(10, "deferrals", || {
        let l = q.log_text();
        l.contains("deferral: temp@") && l.contains("deferral: soft@")
    });
    let id = files(&q.home.join("queue/info"))[0].clone();
    let list = q.list(&[]);
    assert!(list.starts_with(&format!("{}  age ", id)), "{}", list);
    assert!(
        list.contains("  local  temp@mail.example.org  deferred, next try in "),
        "{}",
        list
    );
    assert!(
        list.contains("  remote soft@remote.example  deferred, next try in "),
        "{}",
        list
    );
    assert!(
        list.contains("Remote host said: 450 4.2.1 try later"),
        "{}",
        list
    );
    assert!(q
        .list(&["-s"])
        .starts_with("messages 1 local 1 remote 1 held 0 oldest "));
    // ETRN retries the domain now.
    assert_eq!(q.ctl(&["etrn", "remote.example"]), Some(0));
    wait_until(5, "etrn", || {
        q.remotes().len() == 2 && q.log_text().contains("delivery 3: deferral")
    });
    // The trigger fifo takes ETRN from anyone.
    let mut t = std::fs::OpenOptions::new()
        .write(true)
        .open(q.home.join("queue/trigger"))
        .unwrap();
    t.write_all(b"ERemote.Example\n").unwrap();
    wait_until(5, "etrn by trigger", || {
        q.remotes().len() == 3 && q.log_text().contains("delivery 4: deferral")
    });
    assert_eq!(q.locals().len(), 1, "etrn leaves local recipients alone");
    // hold / release / retry
    assert_eq!(q.ctl(&["hold", &id]), Some(0));
    wait_until(5, "held", || q.list(&[]).contains(">  held\n"));
    assert!(q.list(&["-s"]).contains(" held 1 "));
    assert_eq!(q.ctl(&["retry", "all"]), Some(0));
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(q.locals().len(), 1, "held: no delivery");
    assert_eq!(q.ctl(&["release", &id]), Some(0));
    wait_until(5, "release retries", || q.locals().len() == 2);
    // bounce: the sender gets a DSN, the message is gone.
    assert_eq!(q.ctl(&["bounce", &id]), Some(0));
    wait_until(5, "bounce", || {
        q.queue_empty() && q.locals().iter().any(|l| l.1 == "s@mail.example.org")
    });
    // delete: gone silently.
    q.inject(
        b"Subject: b\n\n",
        &env("s@mail.example.org", &["temp2@mail.example.org"]),
    );
    wait_until(5, "second", || {
        !files(&q.home.join("queue/info")).is_empty()
    });
    let before = q.locals().len();
    let id2 = files(&q.home.join("queue/info"))[0].clone();
    assert_eq!(q.ctl(&["delete", &id2]), Some(0));
    wait_until(5, "deleted", || q.queue_empty());
    std::thread::sleep(Duration::from_millis(200));
    assert!(q.locals().len() <= before + 1);
    assert!(
        q.locals()
            .iter()
            .filter(|l| l.1 == "s@mail.example.org")
            .count()
            == 1,
        "no bounce for delete"
    );
    assert_eq!(q.list(&[]), "");
    assert!(q
        .list(&["-s"])
        .starts_with("messages 0 local 0 remote 0 held 0 oldest 0"));
    q.stop();
}

#[test]
fn crash_safety_under_kill_9() {
    let mut q = Q::new("qr-crash");
    control(&q.home, "concurrencylocal", "10\n");
    let n = 300;
    let home = q.home.clone();
    let injector = std::thread::spawn(move || {
        let mut ok = Vec::new();
        for i in 0..n {
            let m = format!("Subject: m{}\n\nbody {}\n", i, i);
            if inject_in(
                &home,
                m.as_bytes(),
                &env("s@x.example", &["u@mail.example.org"]),
            ) == Some(0)
            {
                ok.push(i);
            }
        }
        ok
    });
    let mut kills = 0;
    let mut seed = std::process::id() as u64;
    while !injector.is_finished() {
        q.start(&[]);
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        std::thread::sleep(Duration::from_millis(30 + (seed >> 33) % 200));
        q.kill9();
        kills += 1;
    }
    let ok = injector.join().unwrap();
    assert_eq!(ok.len(), n);
    q.start(&[]);
    wait_until(40, "queue drained", || q.queue_empty());
    q.stop();
    let mut count = vec![0usize; n];
    // Deliveries in flight at a kill may still be finishing.
    std::thread::sleep(Duration::from_millis(200));
    for (_, _, _, m) in q.locals() {
        let s = String::from_utf8_lossy(&m).into_owned();
        let i: usize = s
            .split("Subject: m")
            .nth(1)
            .unwrap()
            .split('\n')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        count[i] += 1;
    }
    let missing: Vec<usize> = (0..n).filter(|&i| count[i] == 0).collect();
    assert!(missing.is_empty(), "lost: {:?}", missing);
    let dups: usize = count.iter().map(|&c| c.saturating_sub(1)).sum();
    assert!(
        dups <= kills * 10,
        "{} duplicates for {} kills",
        dups,
        kills
    );
    eprintln!(
        "crash test: {} messages, {} kills, {} duplicates",
        n, kills, dups
    );
    for d in ["mess", "info", "state"] {
        assert!(
            files(&q.home.join("queue").join(d)).is_empty(),
            "queue/{} not empty",
            d
        );
    }
}

#[test]
fn local_spawn_serves_queue_run_and_ends_with_it() {
    let mut q = Q::new("qr-lspawn");
    let root = is_root();
    if root {
        // The queue belongs to nobody; deliveries for users/assign accounts run as them.
        let st = Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/make-home"))
            .arg(&q.home)
            .arg("65534")
            .status()
            .unwrap();
        assert!(st.success());
        std::fs::write(
            q.home.join("users/assign"),
            format!("=u:nobody:65534:65534:{}:::\n.\n", q.fake.display()),
        )
        .unwrap();
    }
    q.inject(
        b"Subject: via lspawn\n\n",
        &env("s@x.example", &["u@mail.example.org"]),
    );
    q.start_prog("local-spawn", &["-u", "65534", "queue-run"], &[]);
    wait_until(10, "delivery", || q.queue_empty() && q.locals().len() == 1);
    let l = &q.locals()[0];
    assert_eq!(l.1, "u@mail.example.org");
    if root {
        use std::os::unix::fs::MetadataExt;
        assert_eq!(
            std::fs::metadata(q.home.join("queue/mess")).unwrap().uid(),
            65534,
            "queue-run ran as the queue user"
        );
        assert_eq!(l.2, "65534", "the delivery ran as the recipient's uid");
        // An edited users/assign takes effect without restarting local-spawn.
        std::fs::write(
            q.home.join("users/assign"),
            format!("=u:daemon:1:1:{}:::\n.\n", q.fake.display()),
        )
        .unwrap();
        q.inject(
            b"Subject: after the edit\n\n",
            &env("s@x.example", &["u@mail.example.org"]),
        );
        wait_until(10, "second delivery", || {
            q.queue_empty() && q.locals().len() == 2
        });
        let uids: Vec<String> = q.locals().into_iter().map(|l| l.2).collect();
        assert!(uids.contains(&"1".to_string()), "uids {:?}", uids);
    } else {
        assert_eq!(l.2, unsafe { libc::geteuid() }.to_string());
    }
    // TERM to local-spawn reaches queue-run; both end with 0.
    assert_eq!(q.stop(), Some(0));
    assert!(q.log_text().contains("queue-run: info: status: exiting"));

    // kill -9 local-spawn: queue-run gets TERM and exits.
    q.start_prog("local-spawn", &["-u", "65534", "queue-run"], &[]);
    wait_until(5, "start", || {
        q.log_text().matches("status: exiting").count() == 1 && q.home.join("queue/ctl").exists()
    });
    std::thread::sleep(Duration::from_millis(200));
    q.kill9();
    wait_until(5, "queue-run gone", || {
        q.log_text().matches("status: exiting").count() == 2
    });
    assert_eq!(run("local-spawn", &[], &[], b"").status.code(), Some(100));
}

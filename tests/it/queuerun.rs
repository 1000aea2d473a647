//! queue-run, local-spawn, queue-list, queue-ctl: real binaries over a
//! scratch home; deliveries through fake $QMAILLOCAL / $QMAILREMOTE scripts
//! that record what they got.

use crate::common::*;
use std::io::Write;
use std::ops::{Deref, DerefMut};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const FAKE_LOCAL: &str = r#"#!/bin/sh
: > "$FAKE_DIR/run.$$"; trap 'rm -f "$FAKE_DIR/run.$$"' EXIT
n=$$.$(date +%s%N)
[ "${PIPEMAIL_DSN+set}" ] && touch "$FAKE_DIR/ldsn.$n"
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
: > "$FAKE_DIR/run.$$"; trap 'rm -f "$FAKE_DIR/run.$$"' EXIT
n=$$.$(date +%s%N)
id -u > "$FAKE_DIR/ruid.$n"
cat > "$FAKE_DIR/rmsg.$n"
[ "${PIPEMAIL_DSN+set}" ] && printf %s "$PIPEMAIL_DSN" > "$FAKE_DIR/rdsn.$n"
echo "$@" > "$FAKE_DIR/rtmp.$n" && mv "$FAKE_DIR/rtmp.$n" "$FAKE_DIR/remote.$n"
shift 2
for r in "$@"; do
  case "$r" in
  dsn*) printf 'rDSN parameters passed on\000';;
  bad*) printf 'h127.0.0.1 does not like recipient.\nRemote host said: 550 5.1.1 no such user\000';;
  soft*) printf 's127.0.0.1 does not like recipient.\nRemote host said: 450 4.2.1 try later\000';;
  *) printf 'r\000';;
  esac
done
printf 'K127.0.0.1 accepted message.\000'
exit 0
"#;

/// The whole-system fixture with fake deliveries: $QMAILLOCAL and
/// $QMAILREMOTE record what they get in `fake`; every local part belongs
/// to uid 65534 (deliveries never run as root). The queue runs as root
/// unless made with [`Q::nobody`].
pub(crate) struct Q {
    s: Sys,
    pub(crate) fake: PathBuf,
    /// RLIMIT_FSIZE for the next start (SIGXFSZ ignored: writes get EFBIG).
    fsize: Option<u64>,
}

impl Deref for Q {
    type Target = Sys;
    fn deref(&self) -> &Sys {
        &self.s
    }
}

impl DerefMut for Q {
    fn deref_mut(&mut self) -> &mut Sys {
        &mut self.s
    }
}

impl Q {
    pub(crate) fn new(tag: &str) -> Q {
        Q::with(tag, true)
    }

    /// queue/ belongs to nobody when root (local-spawn -u 65534 runs
    /// queue-run), and so does the local part u (delivered to `fake`).
    pub(crate) fn nobody(tag: &str) -> Q {
        let q = Q::with(tag, false);
        q.assign_u(&q.fake);
        q
    }

    fn with(tag: &str, own_queue: bool) -> Q {
        let mut s = Sys::with(
            tag,
            Setup {
                own_queue,
                ..Setup::default()
            },
        );
        let fake = s.base.join("fake");
        std::fs::create_dir_all(&fake).unwrap();
        std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o777)).unwrap();
        script(&s.base.join("local"), FAKE_LOCAL);
        script(&s.base.join("remote"), FAKE_REMOTE);
        let catch = s.base.join("catch");
        std::fs::create_dir_all(&catch).unwrap();
        std::fs::write(
            s.home.join("users/assign"),
            format!("+:catch:65534:65534:{}:::\n.\n", catch.display()),
        )
        .unwrap();
        for (k, v) in [
            ("QMAILLOCAL", s.base.join("local")),
            ("QMAILREMOTE", s.base.join("remote")),
            ("FAKE_DIR", fake.clone()),
        ] {
            s.env
                .push((k.to_string(), v.to_string_lossy().into_owned()));
        }
        Q {
            s,
            fake,
            fsize: None,
        }
    }

    /// users/assign: the local part u is nobody's, with its home at `home`.
    fn assign_u(&self, home: &Path) {
        std::fs::write(
            self.home.join("users/assign"),
            format!("=u:nobody:65534:65534:{}:::\n.\n", home.display()),
        )
        .unwrap();
    }

    /// A home base/NAME for u (users/assign), nobody's, with `dot_qmail`
    /// as its .qmail.
    fn user_dir(&self, name: &str, dot_qmail: &str) -> PathBuf {
        let user = self.base.join(name);
        std::fs::create_dir(&user).unwrap();
        std::fs::write(user.join(".qmail"), dot_qmail).unwrap();
        chown_r(&user, NOBODY, NOBODY);
        self.assign_u(&user);
        user
    }

    pub(crate) fn command(&self, prog: &str, args: &[&str], extra: &[(&str, &str)]) -> Command {
        let mut c = self.s.command(&bin(prog), extra);
        c.args(args);
        c
    }

    pub(crate) fn start(&mut self, extra: &[(&str, &str)]) {
        self.start_prog("queue-run", &[], extra);
    }

    fn start_prog(&mut self, prog: &str, args: &[&str], extra: &[(&str, &str)]) {
        let mut c = self.command(prog, args, extra);
        if let Some(n) = self.fsize {
            use std::os::unix::process::CommandExt;
            unsafe {
                c.pre_exec(move || {
                    let l = libc::rlimit {
                        rlim_cur: n,
                        rlim_max: n,
                    };
                    libc::setrlimit(libc::RLIMIT_FSIZE, &l);
                    libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
                    Ok(())
                });
            }
        }
        self.start_queue("queue", c);
    }

    fn signal(&self, sig: i32) {
        self.queue.signal(sig);
    }

    /// SIGTERM and wait (at most 10 s); returns the exit code.
    pub(crate) fn stop(&mut self) -> Option<i32> {
        self.queue.stop()
    }

    fn reap(&mut self) -> Option<i32> {
        self.queue.wait(10)
    }

    fn kill9(&mut self) {
        self.queue.kill9();
    }

    fn log_text(&self) -> String {
        self.s.log_text("queue")
    }

    /// The deliveries started so far (queue.log keeps every run's lines).
    fn started(&self) -> usize {
        self.log_text().matches("starting delivery ").count()
    }

    /// No fake delivery runs any more (each leaves run.PID while it runs;
    /// one killed leaves it behind, its process gone).
    fn fakes_done(&self) -> bool {
        files(&self.fake)
            .iter()
            .all(|f| match f.strip_prefix("run.") {
                Some(pid) => !Path::new("/proc").join(pid).exists(),
                None => true,
            })
    }

    /// Every delivery started has reported its result.
    fn settled(&self) -> bool {
        let t = self.log_text();
        t.matches("starting delivery ").count() == t.matches(": delivery ").count()
    }

    /// A full pass of queue-run's loop (see [`Sys::queue_pass`]).
    fn pass(&self) {
        self.queue_pass("queue");
    }

    /// SIGALRM to queue-run once its handler is in place (before, the
    /// signal would kill it).
    fn alarm(&self) {
        let pid = self.queue.pid();
        wait_until(10, "queue-run's SIGALRM handler", || {
            catches(pid, libc::SIGALRM)
        });
        self.signal(libc::SIGALRM);
    }

    pub(crate) fn inject(&self, msg: &[u8], envelope: &[u8]) -> Option<i32> {
        inject(&self.home, msg, envelope, None)
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
    /// The queue is killed, not asked to finish its deliveries.
    fn drop(&mut self) {
        self.queue.kill9();
    }
}

/// queue-inject in `home`, with `$PIPEMAIL_DSN` set to `dsn` when given.
fn inject_dsn(home: &Path, msg: &[u8], envelope: &[u8], dsn: Option<&str>) -> Option<i32> {
    let extra: Vec<(&str, &str)> = dsn
        .map(|d| (pipemail::smtp::dsn::ENV, d))
        .into_iter()
        .collect();
    inject_env(home, msg, envelope, None, &extra)
}

pub(crate) fn env(sender: &str, rcpts: &[&str]) -> Vec<u8> {
    let mut v = format!("F{}\0", sender).into_bytes();
    for r in rcpts {
        v.extend_from_slice(format!("T{}\0", r).as_bytes());
    }
    v.push(0);
    v
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
    py_stdin(py, &[], m)
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
    assert_has(&log, "failure: perm@mail.example.org: Sorry, no mailbox");
    assert_has(&log, "info: bounce msg ");
}

#[test]
fn a_refused_recipient_bounces_while_another_is_deferred() {
    let mut q = Q::new("qr-prompt");
    q.inject(
        b"Subject: half\n\nbody\n",
        &env(
            "s@mail.example.org",
            &["bad@remote.example", "soft@remote.example"],
        ),
    );
    q.start(&[]);
    let bounces = |q: &Q| {
        q.locals()
            .into_iter()
            .filter(|l| l.1 == "s@mail.example.org")
            .collect::<Vec<_>>()
    };
    // One remote-send run, then the bounce: no second scan or retry needed.
    wait_until(10, "prompt bounce", || bounces(&q).len() == 1);
    assert!(!q.queue_empty(), "the deferred recipient stays queued");
    assert_eq!(q.remotes().len(), 1);
    let b = bounces(&q);
    assert_eq!(b[0].0, "", "null sender");
    let p = parse_dsn(after_received(&b[0].3));
    if p.is_none() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "python3 missing"
        );
    }
    if let Some(p) = p {
        let lines: Vec<&str> = p.lines().collect();
        assert!(
            lines[0].starts_with("multipart/report delivery-status "),
            "{}",
            p
        );
        assert_eq!(
            lines[4], "rfc822; bad@remote.example|failed|5.1.1|smtp; 550 5.1.1 no such user",
            "{}",
            p
        );
        assert_eq!(lines.len(), 6, "only the refused recipient: {}", p);
    }
    // The retry of the deferred one, a day later, fails for good: a second
    // DSN for it alone, and the first recipient is not bounced again.
    q.stop();
    q.start(&[("PIPEMAIL_NOW_OFFSET", "700000")]);
    wait_until(10, "second bounce", || {
        q.queue_empty() && bounces(&q).len() == 2
    });
    q.stop();
    let b = bounces(&q);
    let later: Vec<_> = b
        .iter()
        .filter(|l| String::from_utf8_lossy(&l.3).contains("soft@remote.example"))
        .collect();
    assert_eq!(later.len(), 1);
    let s = String::from_utf8_lossy(&later[0].3);
    assert!(!s.contains("bad@remote.example"), "{}", s);
    if let Some(p) = parse_dsn(after_received(&later[0].3)) {
        assert!(
            p.contains("rfc822; soft@remote.example|failed|5.2.1|"),
            "{}",
            p
        );
        assert_eq!(p.lines().count(), 6, "{}", p);
    }
}

#[test]
fn one_delay_notice_after_bouncedelay() {
    let mut q = Q::new("qr-delay");
    q.inject(
        b"Subject: slow\n\nbody\n",
        &env("s@mail.example.org", &["soft@remote.example"]),
    );
    // A bounce (null sender) gets no delay notice, not even to postmaster.
    q.inject(b"Subject: bounce\n\n", &env("", &["soft2@remote.example"]));
    let notices = |q: &Q| {
        q.locals()
            .into_iter()
            .filter(|l| l.1 == "s@mail.example.org")
            .collect::<Vec<_>>()
    };
    q.start(&[]);
    wait_until(10, "first attempt", || {
        q.log_text().contains("deferral: soft@")
    });
    q.stop();
    assert!(notices(&q).is_empty(), "no notice before 4 hours");
    // 5 hours later: one notice (Action: delayed), the message still queued.
    q.start(&[("PIPEMAIL_NOW_OFFSET", "18000")]);
    wait_until(10, "delay notice", || notices(&q).len() == 1);
    q.alarm();
    wait_until(10, "second attempts", || q.remotes().len() >= 4);
    q.stop();
    // 6 hours later another deferral: no second notice.
    q.start(&[("PIPEMAIL_NOW_OFFSET", "21600")]);
    // (nothing is due before 6.6 hours: SIGALRM)
    q.alarm();
    wait_until(10, "third attempts", || q.remotes().len() >= 6);
    // Their results in, then a scheduling pass: a second notice is decided.
    wait_until(10, "the third results", || q.settled());
    q.pass();
    q.stop();
    assert_eq!(
        q.log_text().matches("delay notice msg ").count(),
        1,
        "{}",
        q.log_text()
    );
    assert!(!q.queue_empty());
    let n = notices(&q);
    assert_eq!(n.len(), 1, "at most one notice per message");
    assert_eq!(n[0].0, "", "null sender");
    let s = String::from_utf8_lossy(&n[0].3).into_owned();
    assert_has(&s, "Subject: delivery delayed notice\n");
    assert!(
        s.contains("Final-Recipient: rfc822; soft@remote.example\nAction: delayed\nStatus: 4.2.1\nRemote-MTA: dns; [127.0.0.1]\nDiagnostic-Code: smtp; 450 4.2.1 try later\nLast-Attempt-Date: "),
        "{}",
        s
    );
    assert_has(&s, "\nWill-Retry-Until: ");
    assert!(!s.contains(" \n"), "no trailing space: {}", s);
    let p = parse_dsn(after_received(&n[0].3));
    if p.is_none() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "python3 missing"
        );
    }
    if let Some(p) = p {
        assert!(
            p.contains("rfc822; soft@remote.example|delayed|4.2.1|smtp; 450 4.2.1 try later\n"),
            "{}",
            p
        );
    }
    assert!(q.log_text().contains("info: delay notice msg "));
    assert!(q.locals().iter().all(|l| !l.1.starts_with("postmaster@")));
    assert_eq!(q.log_text().matches("delay notice msg ").count(), 1);
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
    // qmail's schedule: birth + (isqrt(age) + 10)^2, so 1m40s when the
    // first try came within a second of the submission, 2m01s when a loaded
    // machine made it wait one second or more.
    let l = q.list(&[]);
    assert!(
        l.contains("deferred, next try in 1m") || l.contains("deferred, next try in 2m"),
        "{}",
        l
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
    // 50 s later nothing is due (the next try is 100 s after birth): a
    // whole scheduling pass starts nothing.
    let n = q.started();
    q.start(&[("PIPEMAIL_NOW_OFFSET", "50")]);
    q.pass();
    assert_eq!(q.started(), n, "{}", q.log_text());
    assert_eq!(tries(&q), 1);
    // SIGALRM retries now.
    q.alarm();
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

/// Writes drop/ID by hand in queue-inject's format.
fn forge(home: &Path, id: &str, msg: &[u8], envelope: &[u8]) {
    std::fs::write(
        home.join("queue/drop").join(id),
        drop_file(id, msg, envelope),
    )
    .unwrap();
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
    let other = format!("Received: (pipemail 1 invoked by uid {}); now\n\n", uid + 1);
    forge(&h, "1.1.aa", other.as_bytes(), &e);
    std::os::unix::fs::symlink("/etc/passwd", h.join("queue/drop/1.1.bb")).unwrap();
    let fifo = std::ffi::CString::new(h.join("queue/drop/1.1.cc").to_str().unwrap()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o644) }, 0);
    std::fs::write(h.join("queue/drop/1.1.dd"), format!("{}garbage", good)).unwrap();
    forge(&h, "1.1.ee", b"Subject: no received line\n\n", &e);
    forge(&h, "1.1.ff", good.as_bytes(), &e); // good, but linked twice
    std::fs::hard_link(
        h.join("queue/drop/1.1.ff"),
        h.parent().unwrap().join("extra-link"),
    )
    .unwrap();
    // The I record must name the file itself.
    std::fs::write(
        h.join("queue/drop/1.1.hh"),
        drop_file("1.1.zz", good.as_bytes(), &e),
    )
    .unwrap();
    std::fs::write(h.join("queue/drop/bad name"), "x").unwrap();
    forge(&h, "1.1.gg", good.as_bytes(), &e); // a good one
                                              // Half-made (the fallback without O_TMPFILE): an old one goes, a fresh one stays.
    std::fs::write(h.join("queue/drop/2.2.old.tmp"), "x").unwrap();
    std::fs::write(h.join("queue/drop/2.2.new.tmp"), "x").unwrap();
    assert!(Command::new("touch")
        .args(["-d", "3 days ago"])
        .arg(h.join("queue/drop/2.2.old.tmp"))
        .status()
        .unwrap()
        .success());
    q.start(&[]);
    wait_until(10, "takeover", || q.locals().len() == 1 && q.queue_empty());
    q.stop();
    let qd = files(&h.join("queue/quarantine"));
    for id in [
        "1.1.aa", "1.1.bb", "1.1.cc", "1.1.dd", "1.1.ee", "1.1.ff", "1.1.hh", "bad name",
    ] {
        assert!(
            qd.contains(&id.to_string()),
            "{} not quarantined: {:?}",
            id,
            qd
        );
    }
    assert_eq!(files(&h.join("queue/drop")), vec!["2.2.new.tmp"]);
    assert_eq!(q.locals().len(), 1, "only the good one is delivered");
    assert!(
        files(&h.join("queue/mess")).is_empty(),
        "no copy left behind"
    );
    let log = q.log_text();
    for want in [
        "warning: quarantine msg 1.1.aa: message does not start with the Received line of uid",
        "quarantine msg 1.1.bb: message not a regular file",
        "quarantine msg 1.1.cc: message not a regular file",
        "quarantine msg 1.1.dd: no pipemail-queue-v1 tail",
        "quarantine msg 1.1.ee: message does not start with the Received line of uid",
        "quarantine msg 1.1.ff: message more than one link",
        "quarantine msg 1.1.hh: envelope does not parse",
        "quarantine: bad name in drop/: bad name",
        "removed half-made submission drop/2.2.old.tmp",
    ] {
        assert!(log.contains(want), "{}\n{}", want, log);
    }
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
    let id = files(&q.home.join("queue/mess"))[0].clone();
    let list = q.list(&[]);
    assert!(list.starts_with(&format!("{}  age ", id)), "{}", list);
    assert_has(
        &list,
        "  local  temp@mail.example.org  deferred, next try in ",
    );
    assert_has(
        &list,
        "  remote soft@remote.example  deferred, next try in ",
    );
    assert_has(&list, "Remote host said: 450 4.2.1 try later");
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
    let n = q.started();
    assert_eq!(q.ctl(&["retry", "all"]), Some(0));
    q.pass();
    assert_eq!(q.started(), n, "held: no delivery started");
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
        !files(&q.home.join("queue/mess")).is_empty()
    });
    let before = q.locals().len();
    let id2 = files(&q.home.join("queue/mess"))[0].clone();
    assert_eq!(q.ctl(&["delete", &id2]), Some(0));
    wait_until(5, "deleted", || q.queue_empty());
    // A delivery in flight at the delete may still end; none starts after.
    wait_until(5, "the deliveries in flight", || q.settled());
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
            if inject(
                &home,
                m.as_bytes(),
                &env("s@x.example", &["u@mail.example.org"]),
                None,
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
    wait_until(10, "the killed runs' deliveries", || q.fakes_done());
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
    // As root the queue belongs to nobody; deliveries for users/assign
    // accounts run as them.
    let root = is_root();
    let mut q = if root {
        Q::nobody("qr-lspawn")
    } else {
        Q::new("qr-lspawn")
    };
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
    let lspawn = q.queue.pid();
    wait_until(5, "queue-run under local-spawn, its handlers set", || {
        children(lspawn)
            .iter()
            .any(|(p, c, _)| c == "queue-run" && catches(*p, libc::SIGTERM))
    });
    q.kill9();
    wait_until(5, "queue-run gone", || {
        q.log_text().matches("status: exiting").count() == 2
    });
    assert_eq!(run("local-spawn", &[], &[], b"").status.code(), Some(100));
}

// ---------------------------------------------------------------------------
// Attacks on the queue (issue 13), performed for real: the tests run as
// root, the attacker as uid 65534 (nobody).

const NOBODY: u32 = 65534;

/// True when the test may run: as root. CI (CI=true) runs as root; a test
/// that cannot act as another uid fails there instead of skipping.
fn need_root(what: &str) -> bool {
    if is_root() {
        return true;
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "{}: needs root in CI",
        what
    );
    eprintln!("skipped {}: needs root to act as another uid", what);
    false
}

/// python3 -c `script` args... as `uid`, started (not waited for).
fn python_as(uid: u32, script: &str, args: &[&str]) -> Child {
    use std::os::unix::process::CommandExt;
    Command::new("python3")
        .arg("-c")
        .arg(script)
        .args(args)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .uid(uid)
        .gid(uid)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 is needed for the attack tests")
}

fn python_ok(uid: u32, script: &str, args: &[&str]) {
    let o = python_as(uid, script, args).wait_with_output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

fn dir_bytes(d: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    files(d)
        .iter()
        .map(|f| {
            std::fs::symlink_metadata(d.join(f))
                .map(|m| m.blocks() * 512)
                .unwrap_or(0)
        })
        .sum()
}

/// A 10 GB drop file with two blocks on disk, in the drop format, plus an
/// envelope file beside it as queues before this format took them.
const SPARSE_PY: &str = r#"
import os, sys
d, id = sys.argv[1], sys.argv[2]
size = 10 * 1024**3
env = b"Fa@b.example\0Tu@mail.example.org\0\0"
with open(os.path.join(d, id), "wb") as f:
    f.write(b"Received: (pipemail 1 invoked by uid %d); now\nSubject: sparse\n\n" % os.getuid())
    f.seek(size)
    f.write(b"I" + id.encode() + b"\0" + env + b"\n#pipemail-queue-v1 " + b"%020d\n" % size)
with open(os.path.join(d, id + ".env"), "wb") as f:
    f.write(env)
"#;

#[test]
fn sparse_drop_file_is_refused_and_a_partial_copy_removed() {
    if !need_root("sparse drop file") {
        return;
    }
    let mut q = Q::new("qr-sparse");
    control(&q.home, "databytes", "2000000\n");
    let id = "1700000000.1.sparse";
    python_ok(
        NOBODY,
        SPARSE_PY,
        &[q.home.join("queue/drop").to_str().unwrap(), id],
    );
    // A good submission by the same user still goes through.
    assert_eq!(
        inject(
            &q.home,
            b"Subject: good\n\n",
            &env("a@b", &["u@mail.example.org"]),
            Some(NOBODY)
        ),
        Some(0)
    );
    // As a pair (ID with ID.env, the format before version 1) the size is
    // the whole file's (read before queue-run may quarantine it).
    let size = std::fs::metadata(q.home.join("queue/drop").join(id))
        .unwrap()
        .len();
    // Should the copy start anyway, it may not fill this machine's disk.
    q.fsize = Some(64 << 20);
    q.start(&[]);
    let want = format!(
        "quarantine msg {}.env: message of {} bytes is over the limit of 2000000 (control/submitbytes)",
        id, size
    );
    wait_until(20, "the refusal and the good delivery", || {
        q.log_text().contains(&want)
            && q.locals().len() == 1
            && q.queue_empty()
            && files(&q.home.join("queue/mess")).is_empty()
    });
    q.stop();
    let log = q.log_text();
    assert_eq!(
        log.lines().filter(|l| l.contains(id)).count(),
        1,
        "one log line: {}",
        log
    );
    assert_eq!(
        files(&q.home.join("queue/quarantine")),
        vec![id.to_string(), format!("{}.env", id)]
    );
    assert!(files(&q.home.join("queue/mess")).is_empty(), "no copy kept");
    assert!(dir_bytes(&q.home.join("queue/mess")) == 0);
    assert!(String::from_utf8_lossy(&q.locals()[0].3).contains("Subject: good"));

    // The same in the one-file format.
    let id2 = "1700000000.2.sparse";
    python_ok(
        NOBODY,
        SPARSE_PY,
        &[q.home.join("queue/drop").to_str().unwrap(), id2],
    );
    std::fs::remove_file(q.home.join("queue/drop").join(format!("{}.env", id2))).unwrap();
    q.start(&[]);
    let want2 = format!(
        "quarantine msg {}: message of {} bytes is over the limit of 2000000 (control/submitbytes)",
        id2,
        10u64 << 30
    );
    wait_until(10, "the second refusal", || q.log_text().contains(&want2));
    q.stop();
    assert!(files(&q.home.join("queue/mess")).is_empty());
    assert!(files(&q.home.join("queue/quarantine")).contains(&id2.to_string()));

    // A copy that fails (here: the file size limit) is removed at once and
    // the submission waits in drop/ for the next scan.
    control(&q.home, "submitbytes", "10000000\n");
    let big = format!("Subject: big\n\n{}\n", "x".repeat(3 << 20));
    assert_eq!(
        inject(
            &q.home,
            big.as_bytes(),
            &env("a@b", &["u@mail.example.org"]),
            Some(NOBODY)
        ),
        Some(0)
    );
    q.fsize = Some(1 << 20);
    q.start(&[]);
    wait_until(10, "the failed copy", || {
        q.log_text().contains(": unable to copy message to mess/: ")
    });
    q.stop();
    assert!(
        files(&q.home.join("queue/mess")).is_empty(),
        "partial copy removed"
    );
    assert_eq!(submissions(&q.home).len(), 1, "the submission waits");
    q.fsize = None;
    q.start(&[]);
    wait_until(15, "the big one", || {
        q.locals().len() == 2 && q.queue_empty()
    });
    q.stop();
}

/// Opens everything under argv[1] it can and holds a shared flock on it.
const FLOCK_PY: &str = r#"
import os, sys, fcntl, time
held = []
paths = [sys.argv[1]]
for root, dirs, files in os.walk(sys.argv[1]):
    paths += [os.path.join(root, n) for n in dirs + files]
for p in paths:
    try:
        fd = os.open(p, os.O_RDONLY | os.O_NONBLOCK)
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        held.append(p)
    except OSError:
        pass
open(sys.argv[2], "w").write("\n".join(held) + "\nREADY\n")
time.sleep(60)
"#;

#[test]
fn no_other_uid_can_stall_a_restarted_queue_run() {
    if !need_root("queue lock") {
        return;
    }
    let mut q = Q::new("qr-lock");
    q.start(&[]);
    wait_until(5, "start", || q.home.join("queue/ctl").exists());
    assert_eq!(q.stop(), Some(0));
    let report = q.fake.join("held");
    let mut att = python_as(
        NOBODY,
        FLOCK_PY,
        &[
            q.home.join("queue").to_str().unwrap(),
            report.to_str().unwrap(),
        ],
    );
    wait_until(10, "the attacker's locks", || {
        std::fs::read_to_string(&report).is_ok_and(|t| t.ends_with("READY\n"))
    });
    q.inject(
        b"Subject: after restart\n\n",
        &env("s@x", &["u@mail.example.org"]),
    );
    q.start(&[]);
    let ok = wait_for(10, || q.locals().len() == 1);
    let _ = att.kill();
    let _ = att.wait();
    q.stop();
    assert!(
        ok,
        "queue-run stalled behind the locks of uid 65534 on {:?}\n{}",
        std::fs::read_to_string(&report).unwrap(),
        q.log_text()
    );
    assert!(!q.log_text().contains("waiting for"), "{}", q.log_text());
}

/// A compromised queue uid (the program local-spawn starts as 65534): it
/// points queue/mess at a directory only root may read and asks for a
/// message there, then for a FIFO, then sends descriptors local-spawn must
/// refuse, then one good request. Replies go to argv[5].
const QUEUE_UID_PY: &str = r#"
import os, sys, socket, stat, select, array
q, secret, att, out = sys.argv[1:5]
if os.path.lexists(q + "/mess"):
    os.rename(q + "/mess", q + "/mess.real")
os.symlink(secret, q + "/mess")
is_sock = stat.S_ISSOCK(os.fstat(6).st_mode)
def old(did, msgid):
    rec = b"%d\0%s\0s@x\0u@mail.example.org\0" % (did, msgid)
    if is_sock:
        socket.socket(fileno=os.dup(6)).send(rec)
    else:
        os.write(6, rec)
def new(did, fd):
    rec = b"%d\0L\0s@x\0u@mail.example.org\0" % did
    socket.socket(fileno=os.dup(6)).sendmsg([rec], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [fd]))])
old(1, b"1.1.secret")
os.unlink(q + "/mess")
os.symlink(att, q + "/mess")
fifo = os.open(att + "/1.1.fifo", os.O_RDWR | os.O_NONBLOCK)
if is_sock:
    new(2, fifo)
    new(3, os.open(att + "/1.1.mine", os.O_RDWR))
    new(4, os.open(att + "/1.1.mine", os.O_RDONLY))
else:
    old(2, b"1.1.fifo")
    old(3, b"1.1.mine")
    old(4, b"1.1.mine")
buf = b""
while buf.count(b"\0") < 8:
    r, _, _ = select.select([7], [], [], 10)
    if not r:
        break
    b = os.read(7, 65536)
    if not b:
        break
    buf += b
open(out, "wb").write(buf)
"#;

#[test]
fn local_spawn_never_opens_what_the_queue_uid_controls() {
    if !need_root("local-spawn descriptors") {
        return;
    }
    let mut q = Q::nobody("qr-lspawn-attack");
    let base = q.base.clone();
    let secret = base.join("secret");
    std::fs::create_dir(&secret).unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o700)).unwrap();
    std::fs::write(secret.join("1.1.secret"), "TOP SECRET\n").unwrap();
    let att = base.join("att");
    std::fs::create_dir(&att).unwrap();
    std::fs::write(att.join("1.1.mine"), "Subject: mine\n\n").unwrap();
    let fifo = std::ffi::CString::new(att.join("1.1.fifo").to_str().unwrap()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o644) }, 0);
    chown_r(&att, NOBODY, NOBODY);
    let script = base.join("attack.py");
    std::fs::write(&script, QUEUE_UID_PY).unwrap();
    let out = q.fake.join("replies");
    let qs = q.home.join("queue");
    q.start_prog(
        "local-spawn",
        &[
            "-u",
            "65534",
            "/usr/bin/python3",
            script.to_str().unwrap(),
            qs.to_str().unwrap(),
            secret.to_str().unwrap(),
            att.to_str().unwrap(),
            out.to_str().unwrap(),
        ],
        &[],
    );
    // local-spawn ends (with its child's code) once the script is done.
    let done = wait_for(15, || q.queue.exited());
    let code = q.stop();
    let got: Vec<Vec<u8>> = q.locals().into_iter().map(|l| l.3).collect();
    assert!(
        got.iter()
            .all(|m| !String::from_utf8_lossy(m).contains("TOP SECRET")),
        "root's file was delivered: {:?}",
        got
    );
    assert!(done, "local-spawn hung\n{}", q.log_text());
    assert_eq!(code, Some(0));
    let r = std::fs::read(&out).unwrap();
    let f: Vec<&[u8]> = r.split(|&c| c == 0).collect();
    let reply = |id: &str| -> String {
        let i = f.iter().position(|x| *x == id.as_bytes()).expect(id);
        String::from_utf8_lossy(f[i + 1]).into_owned()
    };
    assert_eq!(
        reply("1"),
        "Zlocal-spawn got no message descriptor (#4.3.0)"
    );
    assert_eq!(
        reply("2"),
        "Zlocal-spawn got a message that is not a regular file (#4.3.0)"
    );
    assert_eq!(
        reply("3"),
        "Zlocal-spawn got a message not open read-only (#4.3.0)"
    );
    assert!(
        reply("4").starts_with("Kdelivered to u@mail.example.org"),
        "{}",
        reply("4")
    );
    assert_eq!(got.len(), 1);
    assert_eq!(got[0], b"Subject: mine\n\n");
}

#[test]
fn remote_send_runs_as_pmailr_whatever_uid_queue_run_has() {
    if !need_root("remote uid") {
        return;
    }
    let mut q = Q::nobody("qr-pmailr");
    q.inject(
        b"Subject: out\n\n",
        &env("s@mail.example.org", &["x@remote.example"]),
    );
    // queue-run as 65534; remote deliveries as PMAILR (uid 1, daemon).
    q.start_prog(
        "local-spawn",
        &["-u", "65534", "queue-run"],
        &[("PMAILR", "1")],
    );
    wait_until(10, "remote delivery", || {
        q.queue_empty() && q.remotes().len() == 1
    });
    q.stop();
    let uids: Vec<String> = files(&q.fake)
        .iter()
        .filter(|f| f.starts_with("ruid."))
        .map(|f| std::fs::read_to_string(q.fake.join(f)).unwrap())
        .collect();
    assert_eq!(uids, vec!["1\n"], "remote-send's uid");
    assert_eq!(
        q.remotes()[0].0,
        "remote.example s@mail.example.org x@remote.example"
    );
    assert_eq!(after_received(&q.remotes()[0].1), b"Subject: out\n\n");
}

/// Fills drop/ as one user: N junk files and N half-made ones.
const JUNK_PY: &str = r#"
import os, sys
d, n = sys.argv[1], int(sys.argv[2])
for i in range(n):
    open(os.path.join(d, "1.%d.junk.env" % i), "wb").write(b"garbage")
    open(os.path.join(d, "1.%d.half.tmp" % i), "wb").write(b"x")
"#;

fn cpu_ms(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{}/stat", pid)).unwrap_or_default();
    let rest = s.rsplit_once(')').map(|x| x.1).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let t = |i: usize| f.get(i).and_then(|x| x.parse::<u64>().ok()).unwrap_or(0);
    (t(11) + t(12)) * 1000 / 100
}

#[test]
fn one_uid_cannot_clutter_drop_or_make_scans_quadratic() {
    if !need_root("drop cap") {
        return;
    }
    let mut q = Q::new("qr-junk");
    let n = 3000;
    python_ok(
        NOBODY,
        JUNK_PY,
        &[q.home.join("queue/drop").to_str().unwrap(), &n.to_string()],
    );
    q.inject(b"Subject: real\n\n", &env("s@x", &["u@mail.example.org"]));
    q.start(&[]);
    wait_until(20, "the real one", || {
        q.locals().len() == 1 && q.queue_empty()
    });
    // Scans on demand: anyone may write to the trigger.
    let pid = q.queue.pid() as u32;
    let before = cpu_ms(pid);
    for _ in 0..20 {
        let mut t = std::fs::OpenOptions::new()
            .write(true)
            .open(q.home.join("queue/trigger"))
            .unwrap();
        t.write_all(b"x").unwrap();
        std::thread::sleep(Duration::from_millis(20));
    }
    // Every scan the trigger asked for is done.
    q.pass();
    let scans_ms = cpu_ms(pid) - before;
    q.stop();
    use std::os::unix::fs::MetadataExt;
    let left: Vec<String> = files(&q.home.join("queue/drop"))
        .into_iter()
        .filter(|f| {
            std::fs::symlink_metadata(q.home.join("queue/drop").join(f))
                .is_ok_and(|m| m.uid() == NOBODY)
        })
        .collect();
    assert!(
        left.len() <= 100,
        "uid 65534 left {} files in drop/",
        left.len()
    );
    let quarantined = files(&q.home.join("queue/quarantine")).len();
    assert!(
        quarantined <= 100,
        "{} files quarantined for one uid",
        quarantined
    );
    let log = q.log_text();
    assert!(
        log.contains(&format!(
            "removed {} more refused files of uid 65534 from drop/ (limit 100 a scan)",
            n - 100
        )),
        "{}",
        log.lines()
            .filter(|l| l.contains("removed"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(log.contains(&format!(
        "removed {} half-made files of uid 65534 from drop/ (limit 100)",
        n
    )));
    assert!(
        scans_ms < 2000,
        "20 scans of a cleaned drop/ took {} ms of CPU",
        scans_ms
    );
}

#[test]
fn dot_file_programs_get_a_clean_environment() {
    if !need_root("dot-file environment") {
        return;
    }
    let mut q = Q::nobody("qr-dotenv");
    let user = q.user_dir("user", "|env > \"$HOME/env.out\"\n");
    q.inject(
        b"Subject: env\n\n",
        &env("s@x.example", &["u@mail.example.org"]),
    );
    // The linked deliver-local (no QMAILLOCAL), under local-spawn started
    // with root's own variables.
    let mut c = q.command("local-spawn", &["-u", "65534", "queue-run"], &[]);
    c.env_remove("QMAILLOCAL")
        .env("PATH", "/root/bin:/usr/sbin:/usr/bin:/sbin:/bin")
        .env("ROOT_SECRET", "x");
    q.start_queue("queue", c);
    let out = user.join("env.out");
    let ok = wait_for(10, || q.queue_empty() && out.exists());
    assert!(ok, "no delivery:\n{}", q.log_text());
    q.stop();
    let mut vars: Vec<String> = std::fs::read_to_string(&out)
        .unwrap()
        .lines()
        .filter_map(|l| l.split_once('=').map(|x| x.0.to_string()))
        .filter(|k| k != "PWD" && k != "SHLVL" && k != "_")
        .collect();
    vars.sort();
    let text = std::fs::read_to_string(&out).unwrap();
    assert_has(&text, "PATH=/usr/local/bin:/usr/bin:/bin\n");
    assert!(
        !text.contains("ROOT_SECRET") && !text.contains("FAKE_DIR"),
        "{}",
        text
    );
    assert!(text.contains(&format!("PIPEMAIL_HOME={}\n", q.home.display())));
    assert_eq!(
        vars,
        [
            "DTLINE",
            "EXT",
            "EXT2",
            "EXT3",
            "EXT4",
            "HOME",
            "HOST",
            "HOST2",
            "HOST3",
            "HOST4",
            "LOCAL",
            "NEWSENDER",
            "PATH",
            "PIPEMAIL_HOME",
            "RECIPIENT",
            "RPLINE",
            "SENDER",
            "UFLINE",
            "USER"
        ]
    );
}

// ---------------------------------------------------------------------------
// The crash windows of the one-commit queue (pipemail-queue(5)), each made
// by hand as a crash would leave it, then a restart.

fn one_job_state(tag: &str) -> (Q, String, Vec<u8>) {
    let q = Q::new(tag);
    let msg = format!("Subject: {}\n\n", tag);
    assert_eq!(
        q.inject(msg.as_bytes(), &env("s@x.example", &["u@mail.example.org"])),
        Some(0)
    );
    let s = submissions(&q.home).pop().unwrap();
    (q, s.id, s.message)
}

/// Commits the job `id` of `size` bytes as queue-run does: a record in
/// the journal queue/jobs, or (`old`) an info/ID file as queue-runs
/// before the journal did.
fn commit_job(q: &Q, id: &str, size: u64, old: bool) {
    use pipemail::queuerun::store::{self, Dirs, Info, Rcpt};
    let d = Dirs {
        queue: q.home.join("queue"),
    };
    d.create().unwrap();
    let info = Info {
        birth: 1,
        uid: unsafe { libc::geteuid() },
        size,
        sender: b"s@x.example".to_vec(),
        rcpts: vec![Rcpt {
            addr: b"u@mail.example.org".to_vec(),
            local: Some(b"u@mail.example.org".to_vec()),
        }],
        dsn: Default::default(),
    };
    if old {
        store::write_info(&d, id, &info).unwrap();
    } else {
        let (mut j, _) = store::Journal::open(&d).unwrap();
        j.append(&[(id.to_string(), info)]).unwrap();
    }
}

#[test]
fn crash_windows_of_takeover_and_removal() {
    let mk = |q: &Q| {
        for d in ["mess", "info", "state", "tmp", "quarantine"] {
            let _ = std::fs::create_dir(q.home.join("queue").join(d));
        }
    };
    let mv = |q: &Q, id: &str| {
        std::fs::rename(
            q.home.join("queue/drop").join(id),
            q.home.join("queue/mess").join(id),
        )
        .unwrap()
    };
    let delivered_once = |q: &mut Q, tag: &str, m: &[u8]| {
        q.start(&[]);
        wait_until(10, tag, || q.queue_empty() && q.locals().len() == 1);
        q.stop();
        assert_eq!(q.locals().len(), 1, "{}", tag);
        assert_eq!(
            q.locals()[0].3,
            m,
            "{}: the message without its section",
            tag
        );
        assert!(files(&q.home.join("queue/drop")).is_empty(), "{}", tag);
        assert!(files(&q.home.join("queue/info")).is_empty(), "{}", tag);
        assert!(files(&q.home.join("queue/state")).is_empty(), "{}", tag);
    };
    // (a) moved to mess/, killed before the journal record was committed:
    // taken over again.
    let (mut q, id, m) = one_job_state("crash-a");
    mk(&q);
    mv(&q, &id);
    delivered_once(&mut q, "(a)", &m);
    for old in [false, true] {
        let t = |x: &str| format!("{} {}", x, if old { "info/" } else { "journal" });
        // (b) committed, the truncation lost: cut at load from the size.
        let (mut q, id, m) = one_job_state("crash-b");
        mk(&q);
        mv(&q, &id);
        commit_job(&q, &id, m.len() as u64, old);
        delivered_once(&mut q, &t("(b)"), &m);
        // (c) committed, the rename into mess/ lost: the file moves again.
        let (mut q, id, m) = one_job_state("crash-c");
        mk(&q);
        commit_job(&q, &id, m.len() as u64, old);
        delivered_once(&mut q, &t("(c)"), &m);
        // (d) killed in the middle of a removal: mess/ gone (the commit),
        // state/ and the record left: finished, no second delivery.
        let (mut q, id, m) = one_job_state("crash-d");
        mk(&q);
        std::fs::remove_file(q.home.join("queue/drop").join(&id)).unwrap();
        commit_job(&q, &id, m.len() as u64, old);
        std::fs::write(q.home.join("queue/state").join(&id), "Z0 1 later\0").unwrap();
        q.start(&[]);
        let line = format!("end msg {} (removed after a restart)", id);
        wait_until(10, &t("(d) cleanup"), || q.log_text().contains(&line));
        q.pass();
        q.stop();
        assert_eq!(q.started(), 0, "{}: delivery started again", t("(d)"));
        assert!(q.locals().is_empty(), "{}: delivered again", t("(d)"));
        assert!(files(&q.home.join("queue/state")).is_empty());
        assert!(files(&q.home.join("queue/info")).is_empty());
        // The dead record is gone from the journal after the start.
        let jobs = std::fs::read(q.home.join("queue/jobs")).unwrap();
        assert!(
            !String::from_utf8_lossy(&jobs).contains(&id),
            "{}",
            t("(d)")
        );
    }
    // (e) a copy left in mess/ (no tail, no record): removed, not delivered.
    let (mut q, id, m) = one_job_state("crash-e");
    mk(&q);
    std::fs::remove_file(q.home.join("queue/drop").join(&id)).unwrap();
    std::fs::write(q.home.join("queue/mess").join(&id), &m).unwrap();
    q.start(&[]);
    wait_until(10, "(e) cleanup", || {
        files(&q.home.join("queue/mess")).is_empty()
    });
    q.pass();
    q.stop();
    assert_eq!(q.started(), 0, "(e) a leftover's delivery started");
    assert!(q.locals().is_empty(), "(e) a leftover was delivered");
    // (f) killed in the middle of the journal's append (never
    // acknowledged, the file still moved): the torn record is cut off, a
    // whole record before it stays, the message is taken over again.
    let (mut q, id, m) = one_job_state("crash-f");
    mk(&q);
    mv(&q, &id);
    commit_job(&q, "1.1.gone", 10, false);
    let mut jf = std::fs::OpenOptions::new()
        .append(true)
        .open(q.home.join("queue/jobs"))
        .unwrap();
    jf.write_all(format!("+60 {}\0b1\0u0\0s", id).as_bytes())
        .unwrap();
    jf.write_all(&[0u8; 40]).unwrap();
    drop(jf);
    let home = q.home.clone();
    delivered_once(&mut q, "(f)", &m);
    // Left: the one whole record of the second takeover (dead now, gone
    // at the next rewrite).
    let jobs =
        String::from_utf8_lossy(&std::fs::read(home.join("queue/jobs")).unwrap()).into_owned();
    assert_eq!(jobs.matches('\n').count(), 1, "{:?}", jobs);
    assert!(
        jobs.starts_with("+") && jobs.contains(&id) && jobs.ends_with('\n'),
        "{:?}",
        jobs
    );
    // (g) killed while the journal was being rewritten: tmp/jobs is
    // half-made, the journal whole: the job is delivered once.
    let (mut q, id, m) = one_job_state("crash-g");
    mk(&q);
    mv(&q, &id);
    commit_job(&q, &id, m.len() as u64, false);
    std::fs::write(q.home.join("queue/tmp/jobs"), b"+99 half").unwrap();
    let home = q.home.clone();
    delivered_once(&mut q, "(g)", &m);
    assert!(files(&home.join("queue/tmp")).is_empty());
}

#[test]
fn journal_is_rewritten_without_finished_jobs() {
    // One record per job; a start rewrites the journal with the live
    // ones only, and no file per job is made besides the message.
    let mut q = Q::new("qr-journal");
    for i in 0..3 {
        q.inject(
            format!("Subject: {}\n\n", i).as_bytes(),
            &env("s@x.example", &[&format!("temp{}@mail.example.org", i)]),
        );
    }
    q.inject(
        b"Subject: ok\n\n",
        &env("s@x.example", &["u@mail.example.org"]),
    );
    q.start(&[]);
    wait_until(10, "deliveries", || q.locals().len() == 4);
    wait_until(10, "the finished one", || {
        files(&q.home.join("queue/mess")).len() == 3
    });
    q.stop();
    assert!(
        files(&q.home.join("queue/info")).is_empty(),
        "no info/ file"
    );
    let recs = |q: &Q| {
        std::fs::read(q.home.join("queue/jobs"))
            .unwrap()
            .split(|&c| c == b'\n')
            .filter(|l| !l.is_empty())
            .count()
    };
    assert_eq!(recs(&q), 4);
    let list = q.list(&[]);
    assert_eq!(list.matches("  local  temp").count(), 3, "{}", list);
    q.start(&[]);
    wait_until(10, "the finished job's record gone", || recs(&q) == 3);
    q.stop();
    assert_eq!(q.list(&[]).matches("  local  temp").count(), 3);
}

#[test]
fn takes_over_submissions_left_in_the_old_format() {
    // queue-inject before the one-file format: drop/ID and drop/ID.env.
    let mut q = Q::new("qr-legacy");
    let uid = unsafe { libc::geteuid() };
    let d = q.home.join("queue/drop");
    let msg = format!(
        "Received: (pipemail 1 invoked by uid {}); now\nSubject: old\n\n",
        uid
    );
    std::fs::write(d.join("1.1.old"), &msg).unwrap();
    std::fs::write(d.join("1.1.old.env"), env("s@x", &["u@mail.example.org"])).unwrap();
    std::fs::write(d.join("1.1.bad.env"), "garbage").unwrap();
    std::fs::write(d.join("1.1.bad"), &msg).unwrap();
    q.start(&[]);
    wait_until(10, "the old one", || {
        q.locals().len() == 1 && q.queue_empty()
    });
    q.stop();
    assert_eq!(q.locals()[0].3, msg.as_bytes());
    assert!(files(&d).is_empty(), "{:?}", files(&d));
    assert_eq!(
        files(&q.home.join("queue/quarantine")),
        vec!["1.1.bad", "1.1.bad.env"]
    );
    assert!(q
        .log_text()
        .contains("quarantine msg 1.1.bad.env: envelope does not parse"));
}

#[test]
fn local_spawn_syncs_new_directories_before_it_reports() {
    if !need_root("group commit") {
        return;
    }
    let mut q = Q::nobody("qr-group");
    let base = q.base.clone();
    let user = q.user_dir("user", "./Maildir/\n");
    assert!(Command::new(bin("maildir-make"))
        .arg(user.join("Maildir"))
        .status()
        .unwrap()
        .success());
    chown_r(&user, NOBODY, NOBODY);
    for i in 0..4 {
        let m = format!("Subject: g{}\n\n", i);
        q.inject(m.as_bytes(), &env("s@x.example", &["u@mail.example.org"]));
    }
    // The linked deliver-local (no QMAILLOCAL), every process traced.
    let trace = base.join("trace");
    let mut c = q.command("local-spawn", &["-u", "65534", "queue-run"], &[]);
    c.env_remove("QMAILLOCAL");
    let args: Vec<std::ffi::OsString> = std::iter::once(c.get_program().to_os_string())
        .chain(c.get_args().map(|a| a.to_os_string()))
        .collect();
    let mut s = Command::new("strace");
    s.args([
        "-f",
        "-y",
        "-qq",
        "-s",
        "64",
        "-e",
        "trace=fsync,fdatasync,syncfs,write",
        "-o",
    ])
    .arg(&trace)
    .args(&args)
    .env_clear()
    .envs(c.get_envs().filter_map(|(k, v)| v.map(|v| (k, v))))
    .stdin(Stdio::null())
    .stderr(q.log("queue"));
    let Ok(child) = s.spawn() else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "strace is needed in CI"
        );
        eprintln!("skipped: strace missing");
        return;
    };
    let strace_pid = child.id();
    q.queue = Proc::new(child);
    wait_until(20, "four deliveries", || {
        files(&user.join("Maildir/new")).len() == 4 && q.queue_empty()
    });
    // local-spawn is strace's child: TERM it (it passes TERM on).
    let kids = std::fs::read_to_string(format!("/proc/{0}/task/{0}/children", strace_pid))
        .unwrap_or_default();
    let lspawn: i32 = kids.split_whitespace().next().unwrap().parse().unwrap();
    unsafe { libc::kill(lspawn, libc::SIGTERM) };
    q.reap();
    let t = std::fs::read_to_string(&trace).unwrap();
    let lines: Vec<(i32, &str)> = t
        .lines()
        .filter_map(|l| {
            let (p, rest) = l.split_once(' ')?;
            Some((p.parse().ok()?, rest.trim_start()))
        })
        .collect();
    let new_sync = |l: &str| {
        (l.starts_with("fsync(") || l.starts_with("syncfs(")) && l.contains("/Maildir/new>")
    };
    let by_lspawn: Vec<usize> = (0..lines.len())
        .filter(|&i| lines[i].0 == lspawn && new_sync(lines[i].1))
        .collect();
    assert!(!by_lspawn.is_empty(), "local-spawn synced no new/:\n{}", t);
    assert!(
        !lines.iter().any(|(p, l)| *p != lspawn && new_sync(l)),
        "a delivery synced new/ itself:\n{}",
        t
    );
    // Every success is written to queue-run after a sync of new/.
    let reports: Vec<usize> = (0..lines.len())
        .filter(|&i| {
            lines[i].0 == lspawn
                && lines[i].1.starts_with("write(")
                && lines[i].1.contains("\\0Kdid ")
        })
        .collect();
    assert!(!reports.is_empty(), "no report seen:\n{}", t);
    for r in reports {
        assert!(
            by_lspawn.iter().any(|&s| s < r),
            "a report before any sync:\n{}",
            t
        );
    }
}

/// Parses a DSN with Python's email package: per-message fields, then per
/// recipient `Original-Recipient|Final-Recipient|Action|Status`, then the
/// third part's content type and whether it holds the body `marker`.
fn parse_dsn_fields(m: &[u8], marker: &str) -> Option<String> {
    let py = r#"
import email, sys
m = email.message_from_binary_file(sys.stdin.buffer)
parts = m.get_payload()
print(m.get_content_type(), m.get_param('report-type'), m['Subject'])
blocks = parts[1].get_payload()
print('envid', blocks[0]['Original-Envelope-Id'])
for b in blocks[1:]:
    print('|'.join(str(b[k]) for k in ['Original-Recipient', 'Final-Recipient', 'Action', 'Status']))
print(parts[2].get_content_type(), sys.argv[1] in parts[2].as_string())
"#;
    py_stdin(py, &[marker], m)
}

/// RFC 3461 in queue-run: NOTIFY=NEVER silences a failure, NOTIFY=SUCCESS
/// gets "delivered" (local) and "relayed" (a peer without DSN) notices but
/// none when remote-send says the peer took the parameters; RET=HDRS
/// returns the header only; ENVID and ORCPT come back; the DSN parameters
/// of each remote run reach remote-send in $PIPEMAIL_DSN, no local delivery
/// sees one.
#[test]
fn notify_ret_envid_and_orcpt_shape_the_notices() {
    let mut q = Q::new("qr-dsn");
    let rcpts = [
        "perm-never@mail.example.org",
        "perm@mail.example.org",
        "u@mail.example.org",
        "ok@remote.example",
        "dsnok@remote.example",
        "v@mail.example.org",
    ];
    let dsn =
        "RET=HDRS ENVID=env+2B1\nNOTIFY=NEVER\nNOTIFY=FAILURE ORCPT=rfc822;Orig+2Bperm@x.example\n\
NOTIFY=SUCCESS\nNOTIFY=SUCCESS ORCPT=rfc822;OK@remote.example\nNOTIFY=SUCCESS\n\n";
    assert_eq!(
        inject_dsn(
            &q.home,
            b"Subject: dsn\n\nBODYMARKER\n",
            &env("s@mail.example.org", &rcpts),
            Some(dsn)
        ),
        Some(0)
    );
    q.start(&[]);
    let to_s = |q: &Q| {
        q.locals()
            .iter()
            .filter(|l| l.1 == "s@mail.example.org")
            .count()
    };
    wait_until(15, "every notice delivered", || {
        let log = q.log_text();
        let sent = log.matches("bounce msg ").count() + log.matches("delivery notice msg ").count();
        sent > 0 && to_s(&q) == sent && q.queue_empty()
    });
    q.stop();
    let notices: Vec<Vec<u8>> = q
        .locals()
        .into_iter()
        .filter(|l| l.1 == "s@mail.example.org")
        .map(|l| {
            assert_eq!(l.0, "", "null sender");
            after_received(&l.3).to_vec()
        })
        .collect();
    assert!(
        !notices.is_empty() && notices.len() <= 3,
        "{}: {}",
        notices.len(),
        q.log_text()
    );
    let mut recips = Vec::new();
    for n in &notices {
        let t = String::from_utf8_lossy(n);
        assert!(
            t.contains("\nOriginal-Envelope-Id: env+1\nReporting-MTA: dns; "),
            "{}",
            t
        );
        assert!(!t.contains("BODYMARKER"), "RET=HDRS: {}", t);
        let Some(p) = parse_dsn_fields(n, "BODYMARKER") else {
            continue;
        };
        let lines: Vec<&str> = p.lines().collect();
        assert!(
            lines[0].starts_with("multipart/report delivery-status "),
            "{}",
            p
        );
        assert_eq!(lines[1], "envid env+1", "{}", p);
        assert_eq!(lines.last().unwrap(), &"text/rfc822-headers False", "{}", p);
        recips.extend(lines[2..lines.len() - 1].iter().map(|l| l.to_string()));
    }
    recips.sort();
    if !recips.is_empty() {
        assert_eq!(
            recips,
            [
                "None|rfc822; u@mail.example.org|delivered|2.0.0",
                "rfc822; OK@remote.example|rfc822; ok@remote.example|relayed|2.0.0",
                "rfc822; Orig+perm@x.example|rfc822; perm@mail.example.org|failed|5.1.1",
            ]
        );
    }
    // The parameters of the remote run, in its recipients' order.
    let rd: Vec<String> = files(&q.fake)
        .iter()
        .filter(|f| f.starts_with("rdsn."))
        .map(|f| std::fs::read_to_string(q.fake.join(f)).unwrap())
        .collect();
    assert_eq!(
        rd,
        ["RET=HDRS ENVID=env+2B1\nNOTIFY=SUCCESS ORCPT=rfc822;OK@remote.example\nNOTIFY=SUCCESS\n"]
    );
    assert!(files(&q.fake).iter().all(|f| !f.starts_with("ldsn.")));
    assert_eq!(q.locals().len(), 4 + notices.len());
}

/// A delay notice only for recipients whose NOTIFY asks for DELAY (or has
/// no NOTIFY), with their ORCPT.
#[test]
fn delay_notices_follow_notify() {
    let mut q = Q::new("qr-dsn-delay");
    let dsn = "\nNOTIFY=FAILURE\nNOTIFY=DELAY ORCPT=rfc822;d@x.example\n\n";
    let rcpts = [
        "soft1@remote.example",
        "soft2@remote.example",
        "soft3@remote.example",
    ];
    assert_eq!(
        inject_dsn(
            &q.home,
            b"Subject: slow\n\nbody\n",
            &env("s@mail.example.org", &rcpts),
            Some(dsn)
        ),
        Some(0)
    );
    q.start(&[]);
    wait_until(10, "first attempt", || {
        q.log_text().contains("deferral: soft3@")
    });
    q.stop();
    q.start(&[("PIPEMAIL_NOW_OFFSET", "18000")]);
    let notices = |q: &Q| {
        q.locals()
            .into_iter()
            .filter(|l| l.1 == "s@mail.example.org")
            .collect::<Vec<_>>()
    };
    wait_until(10, "delay notice", || notices(&q).len() == 1);
    q.stop();
    let n = after_received(&notices(&q)[0].3).to_vec();
    let t = String::from_utf8_lossy(&n);
    assert!(!t.contains("soft1@"), "{}", t);
    assert!(t.contains("\nOriginal-Recipient: rfc822; d@x.example\nFinal-Recipient: rfc822; soft2@remote.example\nAction: delayed\n"), "{}", t);
    assert!(
        t.contains("\nFinal-Recipient: rfc822; soft3@remote.example\nAction: delayed\n"),
        "{}",
        t
    );
    if let Some(p) = parse_dsn_fields(&n, "body") {
        let lines: Vec<&str> = p.lines().collect();
        assert_eq!(lines[1], "envid None");
        assert_eq!(
            &lines[2..4],
            [
                "rfc822; d@x.example|rfc822; soft2@remote.example|delayed|4.2.1",
                "None|rfc822; soft3@remote.example|delayed|4.2.1"
            ]
        );
        assert_eq!(lines[4], "message/rfc822 True", "{}", p);
    }
}

/// A success notice is owed durably: a K record with the delivery's
/// report, left by a crash before the notice went, makes a restarted
/// queue-run send it (once), and an older job without DSN parameters
/// (an info file without a D record) is read as before.
#[test]
fn an_owed_success_notice_survives_a_restart() {
    use pipemail::queuerun::store::{self, Dirs, Info, Rcpt, Rec};
    let mut q = Q::new("qr-dsn-restart");
    let d = Dirs {
        queue: q.home.join("queue"),
    };
    d.create().unwrap();
    let m = b"Received: (pipemail 1 invoked by uid 0); x\nSubject: ok\n\nbody\n";
    let rcpt = |a: &str| Rcpt {
        addr: a.as_bytes().to_vec(),
        local: Some(a.as_bytes().to_vec()),
    };
    for (id, dsn) in [
        ("1.1.a", "\nNOTIFY=SUCCESS\nNOTIFY=SUCCESS\n"),
        ("1.1.b", "\n"),
    ] {
        std::fs::write(d.mess(id), m).unwrap();
        let info = Info {
            birth: 1,
            uid: 0,
            size: m.len() as u64,
            sender: b"s@mail.example.org".to_vec(),
            rcpts: vec![rcpt("u@mail.example.org"), rcpt("v@mail.example.org")],
            dsn: pipemail::smtp::dsn::Dsn::decode(dsn.as_bytes()).unwrap(),
        };
        store::write_info(&d, id, &info).unwrap();
        let k = Rec::Done(0, Some(b"delivered to u@mail.example.org".to_vec()));
        store::append(
            &d.state(id),
            if id == "1.1.a" {
                &k
            } else {
                &Rec::Done(0, None)
            },
            true,
        )
        .unwrap();
    }
    let notices = |q: &Q| {
        q.locals()
            .into_iter()
            .filter(|l| l.1 == "s@mail.example.org")
            .map(|l| after_received(&l.3).to_vec())
            .collect::<Vec<_>>()
    };
    q.start(&[]);
    let delivered = |q: &Q| {
        String::from_utf8_lossy(&notices(q).concat())
            .matches("Action: delivered\n")
            .count()
    };
    wait_until(10, "the notices", || delivered(&q) == 2 && q.queue_empty());
    q.stop();
    // Only v was delivered now (u was before the crash), once per job.
    let v: Vec<_> = q
        .locals()
        .into_iter()
        .filter(|l| l.1 != "s@mail.example.org")
        .collect();
    assert_eq!(v.len(), 2);
    assert!(v.iter().all(|l| l.1 == "v@mail.example.org"));
    // Job a: u's notice from its K record, v's after its delivery (one
    // notice each round or both in one); job b: nothing.
    let n = notices(&q);
    let all = String::from_utf8_lossy(&n.concat()).into_owned();
    assert_eq!(all.matches("Action: delivered\n").count(), 2, "{}", all);
    assert!(
        all.contains("<u@mail.example.org>:\ndelivered to u@mail.example.org\n"),
        "{}",
        all
    );
    assert!(all.contains("Subject: delivery notice\n"), "{}", all);
    assert!(all.contains("X-Pipemail-Queue-ID: 1.1.a\n"));
    assert!(!all.contains("X-Pipemail-Queue-ID: 1.1.b\n"));
}

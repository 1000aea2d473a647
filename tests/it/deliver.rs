//! Local delivery: deliver-local (users/assign, dot-files, every
//! instruction kind, the alias user, permissions, loops), deliver-maildir,
//! deliver-mbox (quoting, locking, truncation), forward, and the lookup
//! functions smtp-recv uses at RCPT time.
//!
//! As root (CI) the mail users are uid/gid 65534 with homes chowned to it,
//! so deliver-local really drops its privileges; the tests check that the
//! delivered files belong to 65534.

use crate::common::*;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const DOMAIN: &str = "mail.example.org";

/// Writes a file with `mode`, owned by the mail user.
pub(crate) fn put(p: &Path, text: &[u8], mode: u32) {
    std::fs::write(p, text).unwrap();
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
    own(p);
}

fn maildir(p: &Path) {
    for d in ["", "tmp", "new", "cur"] {
        let x = p.join(d);
        std::fs::create_dir_all(&x).unwrap();
        std::fs::set_permissions(&x, std::fs::Permissions::from_mode(0o700)).unwrap();
        own(&x);
    }
}

/// A pipemail home plus users' homes beside it.
pub(crate) struct T {
    pub(crate) home: PathBuf,
    base: PathBuf,
}

impl T {
    pub(crate) fn new(tag: &str) -> T {
        let home = crate::common::home(tag);
        let base = home.parent().unwrap().to_path_buf();
        own(&home.join("alias"));
        T { home, base }
    }

    /// A user home `NAME` (mode 0755) with a Maildir, assigned in
    /// users/assign as `=NAME` and `+NAME-` together with `extra` lines.
    pub(crate) fn user(&self, name: &str) -> PathBuf {
        let h = self.base.join(name);
        std::fs::create_dir_all(&h).unwrap();
        std::fs::set_permissions(&h, std::fs::Permissions::from_mode(0o755)).unwrap();
        own(&h);
        maildir(&h.join("Maildir"));
        let u = mail_ids().0;
        let a = self.home.join("users/assign");
        let mut t = std::fs::read_to_string(&a)
            .unwrap_or_default()
            .replace(".\n", "");
        t += &format!(
            "={n}:{n}:{u}:{u}:{h}:::\n+{n}-:{n}:{u}:{u}:{h}:-::\n.\n",
            n = name,
            u = u,
            h = h.display()
        );
        std::fs::write(&a, t).unwrap();
        h
    }

    pub(crate) fn deliver(&self, sender: &str, rcpt: &str, msg: &[u8]) -> Output {
        self.deliver_env(sender, rcpt, msg, &[])
    }

    fn deliver_env(&self, sender: &str, rcpt: &str, msg: &[u8], env: &[(&str, &str)]) -> Output {
        let h = self.home.to_str().unwrap().to_string();
        let mut e: Vec<(&str, &str)> = vec![("PIPEMAIL_HOME", &h)];
        e.extend_from_slice(env);
        run("deliver-local", &[sender, rcpt], &e, msg)
    }
}

/// The files in DIR/new, read.
fn new_mail(md: &Path) -> Vec<(String, Vec<u8>)> {
    files(&md.join("new"))
        .into_iter()
        .map(|f| (f.clone(), std::fs::read(md.join("new").join(&f)).unwrap()))
        .collect()
}

fn owned_by_mail_user(p: &Path) {
    if is_root() {
        let m = std::fs::metadata(p).unwrap();
        assert_eq!(
            (m.uid(), m.gid()),
            (65534, 65534),
            "{} not owned by 65534",
            p.display()
        );
    }
}

fn added(sender: &str, rcpt: &str) -> String {
    format!("Return-Path: <{}>\nDelivered-To: {}\n", sender, rcpt)
}

fn report(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

const MSG: &[u8] = b"Subject: test\nFrom: a@example.net\n\nFrom the body\n.\n\xff 8-bit\n";

#[test]
fn basic_address_goes_to_maildir_as_the_user() {
    let t = T::new("dl-basic");
    let joe = t.user("joe");
    let o = t.deliver("a@example.net", "joe@mail.example.org", MSG);
    assert_eq!(report(&o), "did 1+0+0\n");
    assert_eq!(o.status.code(), Some(0), "{:?}", o);
    let m = new_mail(&joe.join("Maildir"));
    assert_eq!(m.len(), 1);
    let mut want = added("a@example.net", "joe@mail.example.org").into_bytes();
    want.extend_from_slice(MSG);
    assert_eq!(m[0].1, want);
    owned_by_mail_user(&joe.join("Maildir/new").join(&m[0].0));
    assert!(files(&joe.join("Maildir/tmp")).is_empty());
    // Case does not matter for the local part.
    assert_eq!(
        t.deliver("", "JOE@mail.example.org", b"x\n").status.code(),
        Some(0)
    );
    let m = new_mail(&joe.join("Maildir"));
    assert!(m
        .iter()
        .any(|(_, b)| b == b"Return-Path: <>\nDelivered-To: JOE@mail.example.org\nx\n"));
}

#[test]
fn every_instruction_kind() {
    let t = T::new("dl-kinds");
    let joe = t.user("joe");
    maildir(&joe.join("Other"));
    let q = "# a comment\n./Maildir/\n./Other/\n./mbox\n|cat > prog.out; env > env.out\n&fwd1@example.com\nfwd2@example.net\n";
    put(&joe.join(".qmail-kinds"), q.as_bytes(), 0o644);
    let o = t.deliver("s@example.net", "joe-kinds@mail.example.org", MSG);
    assert_eq!(o.status.code(), Some(0), "{:?}", o);
    let r = report(&o);
    assert!(r.starts_with("did 3+2+1 qp "), "{}", r);
    let mut want = added("s@example.net", "joe-kinds@mail.example.org").into_bytes();
    want.extend_from_slice(MSG);
    assert_eq!(new_mail(&joe.join("Maildir"))[0].1, want);
    assert_eq!(new_mail(&joe.join("Other"))[0].1, want);
    // mbox: From_ line, added lines, quoted body, blank line.
    let mb = std::fs::read(joe.join("mbox")).unwrap();
    owned_by_mail_user(&joe.join("mbox"));
    assert!(mb.starts_with(b"From s@example.net "));
    let nl = mb.iter().position(|&c| c == b'\n').unwrap();
    let mut want_mb = added("s@example.net", "joe-kinds@mail.example.org").into_bytes();
    want_mb.extend_from_slice(
        b"Subject: test\nFrom: a@example.net\n\n>From the body\n.\n\xff 8-bit\n\n",
    );
    assert_eq!(&mb[nl + 1..], &want_mb[..]);
    // The program: the message without the added lines, in the home dir.
    assert_eq!(std::fs::read(joe.join("prog.out")).unwrap(), MSG);
    owned_by_mail_user(&joe.join("prog.out"));
    let env = String::from_utf8_lossy(&std::fs::read(joe.join("env.out")).unwrap()).into_owned();
    for want in [
        "SENDER=s@example.net",
        "NEWSENDER=s@example.net",
        "RECIPIENT=joe-kinds@mail.example.org",
        "USER=joe",
        &format!("HOME={}", joe.display()),
        "HOST=mail.example.org",
        "HOST2=mail.example",
        "HOST3=mail",
        "LOCAL=joe-kinds",
        "EXT=kinds",
        "EXT2=",
        "DTLINE=Delivered-To: joe-kinds@mail.example.org",
        "RPLINE=Return-Path: <s@example.net>",
        "UFLINE=From s@example.net ",
    ] {
        assert!(
            env.lines().any(|l| l.starts_with(want)),
            "{} missing in\n{}",
            want,
            env
        );
    }
    assert!(!env.lines().any(|l| l.starts_with("DEFAULT=")));
    // The forward: one submission to both addresses, DTLINE prepended.
    let (envl, msg) = queued(&t.home);
    assert_eq!(
        envl,
        b"Fs@example.net\0Tfwd1@example.com\0Tfwd2@example.net\0\0"
    );
    let mut want = b"Delivered-To: joe-kinds@mail.example.org\n".to_vec();
    want.extend_from_slice(MSG);
    assert_eq!(msg, want);
}

/// The only committed submission in queue/drop: envelope and message
/// (without queue-inject's Received line).
fn queued(home: &Path) -> (Vec<u8>, Vec<u8>) {
    let subs = submissions(home);
    assert_eq!(subs.len(), 1, "{:?}", files(&home.join("queue/drop")));
    let (e, m) = (subs[0].envelope.clone(), subs[0].message.clone());
    assert!(m.starts_with(b"Received: (pipemail "));
    let nl = m.iter().position(|&c| c == b'\n').unwrap();
    (e, m[nl + 1..].to_vec())
}

#[test]
fn extension_and_default_lookups() {
    let t = T::new("dl-ext");
    let joe = t.user("joe");
    for d in ["A", "B", "C", "D"] {
        maildir(&joe.join(d));
    }
    put(&joe.join(".qmail-foo"), b"./A/\n", 0o644);
    put(
        &joe.join(".qmail-bar-default"),
        b"./B/\n|echo \"$DEFAULT $EXT $EXT2 $EXT3\" > def.out\n",
        0o644,
    );
    put(&joe.join(".qmail-a:b"), b"./C/\n", 0o644);
    let run = |l: &str| t.deliver("s@x.org", &format!("{}@{}", l, DOMAIN), b"m\n");
    assert_eq!(run("joe-foo").status.code(), Some(0));
    assert_eq!(new_mail(&joe.join("A")).len(), 1);
    assert_eq!(run("joe-Bar-Baz-q").status.code(), Some(0));
    assert_eq!(new_mail(&joe.join("B")).len(), 1);
    assert_eq!(
        std::fs::read(joe.join("def.out")).unwrap(),
        b"baz-q Bar-Baz-q Baz-q q\n"
    );
    // Dots become colons in file names.
    assert_eq!(run("joe-a.b").status.code(), Some(0));
    assert_eq!(new_mail(&joe.join("C")).len(), 1);
    // No file for the extension and no -default: no such mailbox.
    let o = run("joe-nothing");
    assert_eq!(o.status.code(), Some(100));
    assert_eq!(
        report(&o),
        "Sorry, no mailbox here by that name. (#5.1.1)\n"
    );
    put(&joe.join(".qmail-default"), b"./D/\n", 0o644);
    assert_eq!(run("joe-nothing").status.code(), Some(0));
    assert_eq!(new_mail(&joe.join("D")).len(), 1);
    // The basic address without .qmail uses control/defaultdelivery.
    control(&t.home, "defaultdelivery", "./mbox\n");
    assert_eq!(run("joe").status.code(), Some(0));
    assert!(std::fs::read(joe.join("mbox"))
        .unwrap()
        .starts_with(b"From s@x.org "));
    // An empty .qmail means the default delivery too.
    put(&joe.join(".qmail"), b"", 0o644);
    assert_eq!(run("joe").status.code(), Some(0));
    assert_eq!(
        std::fs::read(joe.join("mbox"))
            .unwrap()
            .windows(12)
            .filter(|w| w == b"From s@x.org")
            .count(),
        2
    );
    // A .qmail with only comments delivers nowhere (qmail's way to discard).
    put(&joe.join(".qmail"), b"# discard\n", 0o644);
    assert_eq!(report(&run("joe")), "did 0+0+0\n");
}

#[test]
fn program_exit_codes() {
    let t = T::new("dl-prog");
    let joe = t.user("joe");
    let case = |ext: &str, q: &str| {
        put(&joe.join(format!(".qmail-{}", ext)), q.as_bytes(), 0o644);
        t.deliver("s@x.org", &format!("joe-{}@{}", ext, DOMAIN), b"m\n")
    };
    let o = case("ok", "|exit 0\n./Maildir/\n");
    assert_eq!(
        (o.status.code(), report(&o)),
        (Some(0), "did 1+0+1\n".into())
    );
    let o = case("stop", "|exit 99\n./Maildir/\n");
    assert_eq!(
        (o.status.code(), report(&o)),
        (Some(0), "did 0+0+1\n".into())
    );
    assert_eq!(new_mail(&joe.join("Maildir")).len(), 1);
    let o = case("perm", "|echo no such list; exit 100\n./Maildir/\n");
    assert_eq!(
        (o.status.code(), report(&o)),
        (Some(100), "no such list\n".into())
    );
    let o = case("perm64", "|exit 64\n");
    assert_eq!(
        (o.status.code(), report(&o)),
        (Some(100), "Program exited 64. (#5.2.0)\n".into())
    );
    let o = case("temp", "|echo busy >&2; exit 111\n");
    assert_eq!((o.status.code(), report(&o)), (Some(111), "busy\n".into()));
    let o = case("temp1", "|exit 1\n");
    assert_eq!(
        (o.status.code(), report(&o)),
        (Some(111), "Program exited 1. (#4.3.0)\n".into())
    );
    let o = case("crash", "|kill -9 $$\n");
    assert_eq!(o.status.code(), Some(111));
    assert!(
        report(&o).starts_with("Aack, child crashed"),
        "{}",
        report(&o)
    );
    // A failure stops everything, forwards included.
    let o = case("fwdfail", "&x@example.com\n|exit 111\n");
    assert_eq!(o.status.code(), Some(111));
    assert!(files(&t.home.join("queue/drop")).is_empty());
    assert_eq!(new_mail(&joe.join("Maildir")).len(), 1);
    // 99 after a forward line: the forward still happens.
    let o = case("fwdstop", "&x@example.com\n|exit 99\n./Maildir/\n");
    assert_eq!(o.status.code(), Some(0));
    assert!(report(&o).starts_with("did 0+1+1 qp "), "{}", report(&o));
    assert_eq!(queued(&t.home).0, b"Fs@x.org\0Tx@example.com\0\0");
}

#[test]
fn forward_uses_owner_sender_and_bounces_keep_theirs() {
    let t = T::new("dl-owner");
    let joe = t.user("joe");
    put(&joe.join(".qmail-list"), b"&a@example.com\n", 0o644);
    put(&joe.join(".qmail-list-owner"), b"./Maildir/\n", 0o644);
    assert_eq!(
        t.deliver("s@x.org", "joe-list@mail.example.org", b"m\n")
            .status
            .code(),
        Some(0)
    );
    let (e, m) = queued(&t.home);
    assert_eq!(e, b"Fjoe-list-owner@mail.example.org\0Ta@example.com\0\0");
    assert_eq!(m, b"Delivered-To: joe-list@mail.example.org\nm\n");
    for f in files(&t.home.join("queue/drop")) {
        std::fs::remove_file(t.home.join("queue/drop").join(f)).unwrap();
    }
    assert_eq!(
        t.deliver("", "joe-list@mail.example.org", b"m\n")
            .status
            .code(),
        Some(0)
    );
    assert_eq!(queued(&t.home).0, b"F\0Ta@example.com\0\0");
}

/// A queue program that records the message in DIR/msg and the envelope
/// in DIR/env: (DIR, the program).
fn fake_qq(t: &T) -> (PathBuf, PathBuf) {
    let d = t.base.join("qq");
    std::fs::create_dir_all(&d).unwrap();
    let script = d.join("fake-qq");
    let text = format!(
        "#!/bin/sh\ncat > {d}/msg\nexec cat 0<&1 > {d}/env\n",
        d = d.display()
    );
    crate::common::script(&script, text.as_bytes());
    (d, script)
}

#[test]
fn forward_program_through_qmailqueue() {
    let t = T::new("fwd");
    let (d, script) = fake_qq(&t);
    let qq = script.to_str().unwrap();
    let o = run(
        "forward",
        &["a@example.com", "b@example.net"],
        &[
            ("QMAILQUEUE", qq),
            ("NEWSENDER", "new@x.org"),
            ("SENDER", "old@x.org"),
            ("DTLINE", "Delivered-To: me@x.org\n"),
        ],
        b"body\n",
    );
    assert_eq!(o.status.code(), Some(0), "{:?}", o);
    assert!(o.stderr.starts_with(b"forward: info: qp "));
    assert_eq!(
        std::fs::read(d.join("env")).unwrap(),
        b"Fnew@x.org\0Ta@example.com\0Tb@example.net\0\0"
    );
    assert_eq!(
        std::fs::read(d.join("msg")).unwrap(),
        b"Delivered-To: me@x.org\nbody\n"
    );
    // $SENDER when there is no $NEWSENDER; no DTLINE, nothing prepended.
    let o = run(
        "forward",
        &["c@example.com"],
        &[("QMAILQUEUE", qq), ("SENDER", "old@x.org")],
        b"b2\n",
    );
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(
        std::fs::read(d.join("env")).unwrap(),
        b"Fold@x.org\0Tc@example.com\0\0"
    );
    assert_eq!(std::fs::read(d.join("msg")).unwrap(), b"b2\n");
    // The queue's verdict: 11..40 permanent, others temporary.
    crate::common::script(&script, b"#!/bin/sh\ncat >/dev/null\nexit 31\n");
    assert_eq!(
        run(
            "forward",
            &["c@x"],
            &[("QMAILQUEUE", qq), ("SENDER", "s")],
            b"x\n"
        )
        .status
        .code(),
        Some(100)
    );
    crate::common::script(&script, b"#!/bin/sh\ncat >/dev/null\nexit 53\n");
    assert_eq!(
        run(
            "forward",
            &["c@x"],
            &[("QMAILQUEUE", qq), ("SENDER", "s")],
            b"x\n"
        )
        .status
        .code(),
        Some(111)
    );
    // Usage and missing sender.
    assert_eq!(
        run("forward", &[], &[("SENDER", "s")], b"").status.code(),
        Some(100)
    );
    assert_eq!(
        run("forward", &["a@b"], &[("QMAILQUEUE", qq)], b"")
            .status
            .code(),
        Some(100)
    );
}

#[test]
fn loop_detection() {
    let t = T::new("dl-loop");
    let joe = t.user("joe");
    let m = b"Received: x\nDELIVERED-TO: joe@mail.example.org\nSubject: l\n\nbody\n";
    let o = t.deliver("s@x.org", "joe@mail.example.org", m);
    assert_eq!(o.status.code(), Some(100));
    assert_eq!(
        report(&o),
        "This message is looping: it already has my Delivered-To line. (#5.4.6)\n"
    );
    assert!(new_mail(&joe.join("Maildir")).is_empty());
    // Another address's line, or ours in the body, is no loop.
    let m = b"Delivered-To: bob@mail.example.org\nDelivered-To: joe@mail.example.org.x\n\nDelivered-To: joe@mail.example.org\n";
    assert_eq!(
        t.deliver("s@x.org", "joe@mail.example.org", m)
            .status
            .code(),
        Some(0)
    );
}

#[test]
fn alias_user_gets_root_and_unknown_users() {
    let t = T::new("dl-alias");
    let alias = t.home.join("alias");
    maildir(&alias.join("pm"));
    maildir(&alias.join("rest"));
    put(&alias.join(".qmail-root"), b"./pm/\n", 0o644);
    put(&alias.join(".qmail-postmaster"), b"./pm/\n", 0o644);
    let o = t.deliver("s@x.org", "root@mail.example.org", b"to root\n");
    assert_eq!(o.status.code(), Some(0), "{:?}", o);
    assert_eq!(
        t.deliver("s@x.org", "PostMaster@mail.example.org", b"to pm\n")
            .status
            .code(),
        Some(0)
    );
    let m = new_mail(&alias.join("pm"));
    assert_eq!(m.len(), 2);
    owned_by_mail_user(&alias.join("pm/new").join(&m[0].0));
    // Unknown users: only with .qmail-default.
    let o = t.deliver("s@x.org", "nosuchuser@mail.example.org", b"x\n");
    assert_eq!(
        (o.status.code(), report(&o)),
        (
            Some(100),
            "Sorry, no mailbox here by that name. (#5.1.1)\n".into()
        )
    );
    put(&alias.join(".qmail-default"), b"./rest/\n", 0o644);
    assert_eq!(
        t.deliver("s@x.org", "nosuchuser@mail.example.org", b"x\n")
            .status
            .code(),
        Some(0)
    );
    assert_eq!(new_mail(&alias.join("rest")).len(), 1);
    if is_root() {
        // An alias directory owned by root: never delivered as uid 0.
        std::os::unix::fs::chown(&alias, Some(0), Some(0)).unwrap();
        let o = t.deliver("s@x.org", "root@mail.example.org", b"x\n");
        assert_eq!(o.status.code(), Some(111));
        assert!(report(&o).starts_with("Refusing to deliver as root"));
    }
}

#[test]
fn bad_permissions_are_temporary() {
    let t = T::new("dl-perm");
    let joe = t.user("joe");
    let set =
        |p: &Path, m: u32| std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap();
    for mode in [0o775, 0o757] {
        set(&joe, mode);
        let o = t.deliver("s@x.org", "joe@mail.example.org", b"x\n");
        assert_eq!(o.status.code(), Some(111), "mode {:o}", mode);
        assert!(report(&o).contains("(#4.7.0)"), "{}", report(&o));
    }
    set(&joe, 0o1755);
    let o = t.deliver("s@x.org", "joe@mail.example.org", b"x\n");
    assert_eq!(o.status.code(), Some(111));
    assert!(report(&o).contains("sticky"));
    set(&joe, 0o755);
    for mode in [0o664, 0o646] {
        put(&joe.join(".qmail-x"), b"./Maildir/\n", mode);
        let o = t.deliver("s@x.org", "joe-x@mail.example.org", b"x\n");
        assert_eq!(o.status.code(), Some(111), "mode {:o}", mode);
        assert!(report(&o).contains("(#4.7.0)"));
    }
    // The x bit makes a dot-file forward-only.
    put(&joe.join(".qmail-x"), b"./Maildir/\n", 0o744);
    assert_eq!(
        t.deliver("s@x.org", "joe-x@mail.example.org", b"x\n")
            .status
            .code(),
        Some(111)
    );
    assert!(new_mail(&joe.join("Maildir")).is_empty());
    put(&joe.join(".qmail-x"), b"./Maildir/\n", 0o644);
    assert_eq!(
        t.deliver("s@x.org", "joe-x@mail.example.org", b"x\n")
            .status
            .code(),
        Some(0)
    );
}

#[test]
fn extensions_never_leave_the_home() {
    let t = T::new("dl-escape");
    let joe = t.user("joe");
    // A dot-file that a `/` in the extension would name: never used.
    let trap = joe.join(".qmail-::");
    std::fs::create_dir_all(&trap).unwrap();
    own(&trap);
    put(&trap.join("x"), b"./Maildir/\n", 0o644);
    put(&t.base.join(".qmail-x"), b"./Maildir/\n", 0o644);
    for l in [
        "joe-../x",
        "joe-..-x/..",
        "joe-/etc/passwd",
        "../../x",
        "joe-a/../../x",
    ] {
        let o = t.deliver("s@x.org", &format!("{}@{}", l, DOMAIN), b"x\n");
        assert_eq!(o.status.code(), Some(100), "{} -> {}", l, report(&o));
    }
    assert!(new_mail(&joe.join("Maildir")).is_empty());
    // With a -default file the address is delivered there, inside the home.
    put(
        &joe.join(".qmail-default"),
        b"|echo \"$DEFAULT\" > def.out\n",
        0o644,
    );
    assert_eq!(
        t.deliver("s@x.org", "joe-../x@mail.example.org", b"x\n")
            .status
            .code(),
        Some(0)
    );
    assert_eq!(std::fs::read(joe.join("def.out")).unwrap(), b"::/x\n");
}

#[test]
fn malformed_assign_is_temporary() {
    let t = T::new("dl-assign");
    std::fs::write(t.home.join("users/assign"), "=joe:joe:x:1:/h:::\n.\n").unwrap();
    let o = t.deliver("s@x.org", "joe@mail.example.org", b"x\n");
    assert_eq!(o.status.code(), Some(111));
    let r = report(&o);
    assert_has(&r, "users/assign line 1: ");
    assert_eq!(
        run("deliver-local", &["only-one"], &[], b"").status.code(),
        Some(100)
    );
}

#[test]
fn pipe_input_and_exit_code_without_mailbox() {
    // deliver-maildir into a missing directory: 111 and nothing anywhere.
    let d = scratch("dm-missing");
    let o = run(
        "deliver-maildir",
        &[d.join("nope/").to_str().unwrap()],
        &[],
        b"x\n",
    );
    assert_eq!(o.status.code(), Some(111));
    assert!(
        o.stderr
            .starts_with(b"deliver-maildir: fatal: Unable to create a file in "),
        "{:?}",
        o
    );
    assert_eq!(
        run("deliver-maildir", &[], &[], b"").status.code(),
        Some(100)
    );
    assert_eq!(
        run("deliver-mbox", &["a", "b"], &[], b"").status.code(),
        Some(100)
    );
}

#[test]
fn maildir_names_and_sizes() {
    let d = scratch("dm-names");
    let md = d.join("Maildir");
    maildir(&md);
    let env = [
        ("RPLINE", "Return-Path: <a@b>\n"),
        ("DTLINE", "Delivered-To: c@d"),
    ];
    let msg = b"Subject: s\n\nline one\nline two\n";
    for _ in 0..3 {
        let o = run("deliver-maildir", &[md.to_str().unwrap()], &env, msg);
        assert_eq!(o.status.code(), Some(0), "{:?}", o);
    }
    let m = new_mail(&md);
    assert_eq!(m.len(), 3, "unique names");
    let want = [&b"Return-Path: <a@b>\nDelivered-To: c@d\n"[..], msg].concat();
    let host: String = String::from_utf8_lossy(&hostname())
        .replace('/', "\\057")
        .replace(':', "\\072")
        .replace(',', "\\054");
    for (name, body) in &m {
        assert_eq!(body, &want);
        // SECS.M<usec>P<pid>V<dev>I<ino>Q<n>.HOST,S=<size>,W=<crlf size>
        let (id, rest) = name.split_once(".M").unwrap();
        assert!(id.parse::<u64>().unwrap() > 1_600_000_000);
        let p = rest.find('P').unwrap();
        let v = rest.find('V').unwrap();
        let i = rest.find('I').unwrap();
        let q = rest.find('Q').unwrap();
        assert!(rest[..p].parse::<u32>().unwrap() < 1_000_000);
        rest[p + 1..v].parse::<u32>().unwrap();
        let meta = std::fs::metadata(md.join("new").join(name)).unwrap();
        assert_eq!(
            u64::from_str_radix(&rest[v + 1..i], 16).unwrap(),
            meta.dev()
        );
        assert_eq!(
            u64::from_str_radix(&rest[i + 1..q], 16).unwrap(),
            meta.ino()
        );
        let dot = rest[q..].find('.').unwrap() + q;
        rest[q + 1..dot].parse::<u32>().unwrap();
        let lfs = want.iter().filter(|&&c| c == b'\n').count();
        assert_eq!(
            &rest[dot + 1..],
            format!("{},S={},W={}", host, want.len(), want.len() + lfs)
        );
        assert_eq!(meta.len() as usize, want.len());
        assert_eq!(meta.mode() & 0o777, 0o600);
    }
    assert!(files(&md.join("tmp")).is_empty());
    // No RPLINE/DTLINE: nothing prepended.
    let md2 = d.join("M2");
    maildir(&md2);
    assert_eq!(
        run("deliver-maildir", &[md2.to_str().unwrap()], &[], b"x")
            .status
            .code(),
        Some(0)
    );
    let m = new_mail(&md2);
    assert_eq!(m[0].1, b"x");
    assert!(
        m[0].0.ends_with(",S=1,W=3"),
        "W= counts the CRLF that completes the last line"
    );
}

fn hostname() -> Vec<u8> {
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    unsafe { libc::uname(&mut u) };
    u.nodename
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8)
        .collect()
}

#[test]
fn mbox_from_lines_and_quoting() {
    let d = scratch("mbox-quote");
    let mb = d.join("mbox");
    std::fs::write(&mb, b"From old Thu Jan  1 00:00:00 1970\nold\n\n").unwrap();
    let msg =
        b"Subject: q\n\nFrom me\n>From you\nx From y\nFrom\n>>From z\nlast line without newline";
    let env = [
        ("UFLINE", "From s@x.org Thu Jan  1 00:00:00 1970\n"),
        ("RPLINE", "Return-Path: <s@x.org>\n"),
    ];
    let o = run("deliver-mbox", &[mb.to_str().unwrap()], &env, msg);
    assert_eq!(o.status.code(), Some(0), "{:?}", o);
    let want: &[u8] = b"From old Thu Jan  1 00:00:00 1970\nold\n\n\
From s@x.org Thu Jan  1 00:00:00 1970\nReturn-Path: <s@x.org>\nSubject: q\n\n>From me\n>>From you\nx From y\nFrom\n>>>From z\nlast line without newline\n\n";
    assert_eq!(std::fs::read(&mb).unwrap(), want);
    // No UFLINE: built from SENDER (empty: MAILER-DAEMON) and the time now.
    let o = run("deliver-mbox", &[mb.to_str().unwrap()], &[], b"x\n");
    assert_eq!(o.status.code(), Some(0));
    let all = std::fs::read(&mb).unwrap();
    let tail = &all[want.len()..];
    assert!(
        tail.starts_with(b"From MAILER-DAEMON "),
        "{}",
        String::from_utf8_lossy(tail)
    );
    assert!(tail.ends_with(b"\nx\n\n"));
    assert_eq!(tail.iter().filter(|&&c| c == b'\n').count(), 3);
    let o = run(
        "deliver-mbox",
        &[mb.to_str().unwrap()],
        &[("SENDER", "a b@c")],
        b"y\n",
    );
    assert_eq!(o.status.code(), Some(0));
    assert!(std::fs::read(&mb)
        .unwrap()
        .windows(12)
        .any(|w| w == b"\nFrom a-b@c "));
}

fn spawn_mbox(mb: &Path, msg: &'static [u8]) -> std::process::Child {
    let mut c = Command::new(bin("deliver-mbox"))
        .arg(mb)
        .env_clear()
        .env("UFLINE", "From w Thu Jan  1 00:00:00 1970\n")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    c.stdin.take().unwrap().write_all(msg).unwrap();
    c
}

/// Waits up to 5 s for `c`; its exit code.
fn wait_max(c: &mut std::process::Child) -> Option<i32> {
    for _ in 0..500 {
        if let Some(s) = c.try_wait().unwrap() {
            return s.code();
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let _ = c.kill();
    panic!("deliver-mbox did not finish");
}

#[test]
fn mbox_second_writer_waits_for_both_locks() {
    let d = scratch("mbox-lock");
    let mb = d.join("mbox");
    std::fs::write(&mb, b"").unwrap();
    // flock held by someone else.
    let f = std::fs::OpenOptions::new().write(true).open(&mb).unwrap();
    assert_eq!(unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) }, 0);
    let mut c = spawn_mbox(&mb, b"one\n");
    // It holds the fcntl lock and sleeps between two tries of flock.
    let pid = c.id() as i32;
    wait_until(10, "deliver-mbox retrying flock", || {
        holds_lock(pid, "POSIX", &mb) && in_nanosleep(pid)
    });
    assert!(
        c.try_wait().unwrap().is_none(),
        "writer did not wait for flock"
    );
    assert_eq!(std::fs::read(&mb).unwrap(), b"");
    drop(f);
    assert_eq!(wait_max(&mut c), Some(0));
    assert_eq!(
        std::fs::read(&mb).unwrap(),
        b"From w Thu Jan  1 00:00:00 1970\none\n\n"
    );
    // An fcntl lock held by this process.
    let f = std::fs::OpenOptions::new().write(true).open(&mb).unwrap();
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = libc::F_WRLCK as libc::c_short;
    fl.l_whence = libc::SEEK_SET as libc::c_short;
    assert_eq!(unsafe { libc::fcntl(f.as_raw_fd(), libc::F_SETLK, &fl) }, 0);
    let mut c = spawn_mbox(&mb, b"two\n");
    // It has the mbox open and sleeps between two tries of fcntl.
    let pid = c.id() as i32;
    wait_until(10, "deliver-mbox retrying fcntl", || {
        has_open(pid, &mb) && in_nanosleep(pid)
    });
    assert!(
        c.try_wait().unwrap().is_none(),
        "writer did not wait for fcntl"
    );
    drop(f);
    assert_eq!(wait_max(&mut c), Some(0));
    assert!(std::fs::read(&mb).unwrap().ends_with(b"\ntwo\n\n"));
}

#[test]
fn mbox_failure_truncates_back() {
    let d = scratch("mbox-trunc");
    let mb = d.join("mbox");
    let old: Vec<u8> = (0..10000)
        .map(|i| if i % 50 == 49 { b'\n' } else { b'o' })
        .collect();
    std::fs::write(&mb, &old).unwrap();
    let big: Vec<u8> = (0..100_000)
        .map(|i| if i % 70 == 69 { b'\n' } else { b'b' })
        .collect();
    // 40 blocks of 512 bytes: the old file fits, the message does not.
    let cmd = format!(
        "ulimit -f 40; exec {} \"$1\"",
        bin("deliver-mbox").display()
    );
    let o = Command::new("/bin/sh")
        .args(["-c", &cmd, "sh", mb.to_str().unwrap()])
        .env_clear()
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            let mut i = c.stdin.take().unwrap();
            let t = std::thread::spawn(move || {
                let _ = i.write_all(&big);
            });
            let o = c.wait_with_output();
            t.join().unwrap();
            o
        })
        .unwrap();
    assert_eq!(o.status.code(), Some(111), "{:?}", o);
    assert!(
        o.stderr
            .starts_with(b"deliver-mbox: fatal: Unable to write "),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(std::fs::read(&mb).unwrap(), old);
}

#[test]
fn lookup_and_recipient_exists() {
    use pipemail::users::{lookup_in, recipient_exists_in};
    let t = T::new("users");
    let joe = t.user("joe");
    let u = mail_ids().0;
    let a = lookup_in(&t.home, b"Joe-Foo").unwrap().unwrap();
    assert_eq!(
        (
            a.user.as_slice(),
            a.uid,
            a.gid,
            a.dash.as_slice(),
            a.ext.as_slice()
        ),
        (&b"joe"[..], u, u, &b"-"[..], &b"Foo"[..])
    );
    assert_eq!(a.home, joe.to_str().unwrap().as_bytes());
    // Unknown and root go to the alias user.
    let alias = lookup_in(&t.home, b"root").unwrap().unwrap();
    assert_eq!(
        (
            alias.user.as_slice(),
            alias.dash.as_slice(),
            alias.ext.as_slice()
        ),
        (&b"alias"[..], &b"-"[..], &b"root"[..])
    );
    assert_eq!(
        alias.home,
        t.home.join("alias").to_str().unwrap().as_bytes()
    );
    assert_eq!(
        alias.uid,
        std::fs::metadata(t.home.join("alias")).unwrap().uid()
    );
    assert_eq!(lookup_in(&t.home, b"").unwrap(), None);
    let ex = |l: &str| recipient_exists_in(&t.home, l.as_bytes(), DOMAIN.as_bytes()).unwrap();
    assert!(ex("joe"));
    assert!(ex("JOE"));
    assert!(!ex("joe-foo"));
    assert!(!ex("nosuch"));
    assert!(!ex("postmaster"));
    assert!(!ex(""));
    put(&joe.join(".qmail-foo"), b"./Maildir/\n", 0o644);
    put(&joe.join(".qmail-bar-default"), b"./Maildir/\n", 0o644);
    assert!(ex("joe-foo"));
    assert!(ex("joe-Bar-anything"));
    assert!(!ex("joe-bar"));
    put(
        &t.home.join("alias/.qmail-postmaster"),
        b"./Maildir/\n",
        0o644,
    );
    assert!(ex("postmaster"));
    assert!(!ex("nosuch"));
    put(&t.home.join("alias/.qmail-default"), b"./Maildir/\n", 0o644);
    assert!(ex("nosuch"));
    assert!(
        !ex("joe-zzz"),
        "joe's own -default decides, not the alias user's"
    );
    // A malformed users/assign is an error naming the file and line.
    let t2 = T::new("users-bad");
    std::fs::write(t2.home.join("users/assign"), "=a:a:1:1:/x:::\n=b\n.\n").unwrap();
    let e = lookup_in(&t2.home, b"a").unwrap_err();
    assert_eq!(e.line, 2);
    assert!(e.to_string().contains("users/assign line 2"));
}

/// Issue 13: forwards carry smtp-recv's hop limit. A loop that the
/// Delivered-To check cannot see (each pass a different address) ends at
/// 100 Received/Delivered-To lines with a bounce, as it would over SMTP.
#[test]
fn forwards_bounce_past_100_hops() {
    let t = T::new("dl-hops");
    let joe = t.user("joe");
    put(
        &joe.join(".qmail-fwd"),
        b"./Maildir/\n&next@example.com\n",
        0o644,
    );
    let msg = |n: usize| {
        let mut m = b"Received: from a\n".to_vec();
        for i in 1..n {
            m.extend_from_slice(format!("Delivered-To: hop{}@mail.example.org\n", i).as_bytes());
        }
        m.extend_from_slice(b"Subject: loop\n\nbody\n");
        m
    };
    // 100 lines, ours makes 101: bounced before anything is delivered.
    let o = t.deliver("s@x.org", "joe-fwd@mail.example.org", &msg(100));
    assert_eq!(
        (o.status.code(), report(&o)),
        (
            Some(100),
            "This message is looping: it has more than 100 Received and Delivered-To lines. (#5.4.6)\n".into()
        )
    );
    assert!(new_mail(&joe.join("Maildir")).is_empty());
    assert!(files(&t.home.join("queue/drop")).is_empty());
    // 99 and ours: 100, still within the limit.
    let o = t.deliver("s@x.org", "joe-fwd@mail.example.org", &msg(99));
    assert_eq!(o.status.code(), Some(0), "{:?}", o);
    let (env, m) = queued(&t.home);
    assert_eq!(env, b"Fs@x.org\0Tnext@example.com\0\0");
    assert!(m.starts_with(b"Delivered-To: joe-fwd@mail.example.org\nReceived: from a\n"));

    // forward(1), e.g. from a dot-file program: the same limit, DTLINE counted.
    let (d, script) = fake_qq(&t);
    let env = [
        ("QMAILQUEUE", script.to_str().unwrap()),
        ("SENDER", "s@x.org"),
        ("DTLINE", "Delivered-To: me@x.org\n"),
    ];
    let o = run("forward", &["a@example.com"], &env, &msg(100));
    assert_eq!(o.status.code(), Some(100));
    assert_eq!(
        String::from_utf8_lossy(&o.stderr),
        "forward: fatal: This message is looping: it has more than 100 Received and Delivered-To lines. (#5.4.6)\n"
    );
    assert!(!d.join("env").exists());
    let o = run("forward", &["a@example.com"], &env, &msg(99));
    assert_eq!(o.status.code(), Some(0), "{:?}", o);
    assert_eq!(
        std::fs::read(d.join("env")).unwrap(),
        b"Fs@x.org\0Ta@example.com\0\0"
    );
}

//! queue-inject: the qmail-queue interface, exit codes and durability.

use crate::common::*;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

fn committed(home: &Path) -> Vec<Submission> {
    submissions(home)
}

#[test]
fn queues_message_and_envelope() {
    let h = home("inject");
    assert_eq!(
        inject(
            &h,
            b"Subject: hi\n\nbody\n",
            b"Fa@b.example\0Tc@d.example\0\0",
            None
        ),
        Some(0)
    );
    let subs = committed(&h);
    assert_eq!(subs.len(), 1);
    assert_eq!(subs[0].envelope, b"Fa@b.example\0Tc@d.example\0\0");
    let m = subs[0].message.clone();
    let uid = unsafe { libc::geteuid() };
    let first = format!("Received: (pipemail ");
    assert!(m.starts_with(first.as_bytes()));
    let nl = m.iter().position(|&c| c == b'\n').unwrap();
    assert!(String::from_utf8_lossy(&m[..nl]).contains(&format!(" invoked by uid {});", uid)));
    assert_eq!(&m[nl + 1..], b"Subject: hi\n\nbody\n");
    assert_eq!(
        files(&h.join("queue/drop")).len(),
        1,
        "one file, no temporary files left"
    );
    // One file fsync makes it durable where that covers the new name
    // (ext4, XFS, btrfs); elsewhere, or with PIPEMAIL_FSYNC_DIRS, one
    // directory fsync more.
    let f = std::fs::File::open(h.join("queue/drop")).unwrap();
    let one = pipemail::sys::fsync_covers_new_name(&f);
    if let Some(n) = fsyncs_of_one_injection(&h, false) {
        assert_eq!(
            n,
            if one { 1 } else { 2 },
            "fsync calls of one queue-inject"
        );
    }
    if let Some(n) = fsyncs_of_one_injection(&h, true) {
        assert_eq!(n, 2, "fsync calls of one queue-inject, PIPEMAIL_FSYNC_DIRS");
    }
}

#[test]
fn bad_envelopes_get_exact_codes_and_queue_nothing() {
    let h = home("inject-bad");
    let long = {
        let mut v = b"Fa\0T".to_vec();
        v.extend(std::iter::repeat(b'x').take(1003));
        v.extend_from_slice(b"\0\0");
        v
    };
    let cases: Vec<(&[u8], i32)> = vec![
        (b"Xa\0Tb\0\0", 91),
        (b"Fa\0Xb\0\0", 91),
        (b"Fa\0Tb\0", 91),
        (b"", 91),
        (b"Fa\0\0", 91),
        (b"Fa\0Tb\0\0trailing", 91),
        (&long, 11),
    ];
    for (env, code) in cases {
        assert_eq!(
            inject(&h, b"x\n", env, None),
            Some(code),
            "envelope {:?}",
            String::from_utf8_lossy(env)
        );
    }
    assert!(files(&h.join("queue/drop")).is_empty());
    assert_eq!(
        run("queue-inject", &["arg"], &[], b"").status.code(),
        Some(100)
    );
}

#[test]
fn missing_home_is_61() {
    let h = scratch("inject-nohome").join("nope");
    assert_eq!(inject(&h, b"x\n", b"Fa\0Tb\0\0", None), Some(61));
}

#[test]
fn unprivileged_uid_can_submit() {
    if !is_root() {
        return;
    }
    let h = home("inject-uid");
    assert_eq!(inject(&h, b"x\n", b"Fa\0Tb@c\0\0", Some(65534)), Some(0));
    let subs = committed(&h);
    assert_eq!(subs.len(), 1);
    let id = &subs[0].id;
    let m = subs[0].message.clone();
    assert!(String::from_utf8_lossy(&m).contains("invoked by uid 65534);"));
    use std::os::unix::fs::MetadataExt;
    assert_eq!(
        std::fs::metadata(h.join("queue/drop").join(id))
            .unwrap()
            .uid(),
        65534
    );
}

#[test]
fn killed_injections_never_look_whole() {
    let h = home("inject-kill");
    let body = vec![b'a'; 200_000];
    let mut whole = 0;
    for i in 0..40u64 {
        let (er, mut ew) = std::io::pipe().unwrap();
        let mut child = Command::new(bin("queue-inject"))
            .env_clear()
            .env("PIPEMAIL_HOME", &h)
            .stdin(Stdio::piped())
            .stdout(er)
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let b = body.clone();
        let t = std::thread::spawn(move || {
            let _ = stdin.write_all(&b);
            drop(stdin);
            let _ = ew.write_all(b"Fa\0Tb@c\0\0");
        });
        std::thread::sleep(std::time::Duration::from_micros((i * 397) % 4000));
        unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
        let st = child.wait().unwrap();
        t.join().unwrap();
        if st.code() == Some(0) {
            whole += 1;
        }
    }
    // Every committed envelope has its complete message beside it.
    for s in committed(&h) {
        assert!(
            s.message.ends_with(&body),
            "committed message {} is whole",
            s.id
        );
        assert_eq!(s.envelope, b"Fa\0Tb@c\0\0");
    }
    assert!(
        files(&h.join("queue/drop"))
            .iter()
            .all(|f| is_submission(f)),
        "a killed queue-inject leaves no file behind (O_TMPFILE)"
    );
    assert!(
        committed(&h).len() >= whole,
        "every exit 0 left a committed message"
    );
}

/// fsync-family calls of one queue-inject under strace (None without strace).
fn fsyncs_of_one_injection(h: &Path, dirs: bool) -> Option<usize> {
    let dir = scratch("inject-strace");
    let out = dir.join("trace");
    let env = dir.join("env");
    std::fs::write(&env, b"Fa@b.example\0Tc@d.example\0\0").unwrap();
    let st = Command::new("strace")
        .args(["-f", "-qq", "-e", "trace=fsync,fdatasync,syncfs,sync", "-o"])
        .arg(&out)
        .arg("sh")
        .arg("-c")
        .arg(format!(
            "echo x | '{}' 1<'{}'",
            bin("queue-inject").display(),
            env.display()
        ))
        .env_clear()
        .env("PIPEMAIL_HOME", h)
        .env("PATH", "/usr/bin:/bin")
        .envs(dirs.then_some(("PIPEMAIL_FSYNC_DIRS", "1")))
        .status();
    match st {
        Ok(s) if s.success() => {}
        _ if std::env::var("CI").as_deref() == Ok("true") => panic!("strace is needed in CI"),
        _ => {
            eprintln!("skipped: strace missing");
            return None;
        }
    }
    let t = std::fs::read_to_string(&out).unwrap();
    Some(t.lines().filter(|l| l.contains("sync")).count())
}

/// $PIPEMAIL_DSN (queue-inject(8)): recorded in a version 2 file; one that
/// does not parse is 91 and queues nothing; a recipient list of another
/// length than the envelope's is dropped; none at all is version 1.
#[test]
fn dsn_parameters_from_the_environment() {
    let h = home("inject-dsn");
    let env = b"Fa@b.example\0Tc@d.example\0Te@f.example\0\0";
    let dsn = "RET=HDRS ENVID=x+2By\nNOTIFY=SUCCESS ORCPT=rfc822;C@d.example\n\n";
    assert_eq!(
        inject_env(&h, b"A: 1\n\n", env, None, &[("PIPEMAIL_DSN", dsn)]),
        Some(0)
    );
    let subs = committed(&h);
    assert_eq!(subs.len(), 1);
    let mut want = b"D".to_vec();
    want.extend_from_slice(dsn.as_bytes());
    want.push(0);
    want.extend_from_slice(env);
    assert_eq!(subs[0].envelope, want);
    let f = std::fs::read(h.join("queue/drop").join(&subs[0].id)).unwrap();
    let tail = format!("\n#pipemail-queue-v2 {:020}\n", subs[0].message.len());
    assert!(f.ends_with(tail.as_bytes()));
    for bad in [
        "RET=HDRS",
        "RET=ALL\n",
        "\nNOTIFY=SOMETIMES\n\n",
        "BODY=8BITMIME\n",
    ] {
        let h = home("inject-dsn-bad");
        assert_eq!(
            inject_env(&h, b"A: 1\n\n", env, None, &[("PIPEMAIL_DSN", bad)]),
            Some(91),
            "{:?}",
            bad
        );
        assert!(committed(&h).is_empty());
    }
    let h = home("inject-dsn-fit");
    let three = "ENVID=e\nNOTIFY=NEVER\n\n\n";
    assert_eq!(
        inject_env(&h, b"A: 1\n\n", env, None, &[("PIPEMAIL_DSN", three)]),
        Some(0)
    );
    let mut want = b"DENVID=e\n\0".to_vec();
    want.extend_from_slice(env);
    assert_eq!(committed(&h)[0].envelope, want);
    let h = home("inject-dsn-none");
    assert_eq!(
        inject_env(&h, b"A: 1\n\n", env, None, &[("PIPEMAIL_DSN", "\n")]),
        Some(0)
    );
    assert_eq!(committed(&h)[0].envelope, env);
}

//! queue-inject: the qmail-queue interface, exit codes and durability.

use crate::common::*;
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};

/// Runs queue-inject with `msg` on fd 0 and `env` on fd 1; returns the code.
fn inject(home: &Path, msg: &[u8], envelope: &[u8], uid: Option<u32>) -> Option<i32> {
    let (er, mut ew) = std::io::pipe().unwrap();
    let mut c = Command::new(bin("queue-inject"));
    c.env_clear()
        .env("PIPEMAIL_HOME", home)
        .stdin(Stdio::piped())
        .stdout(er)
        .stderr(Stdio::piped());
    if let Some(u) = uid {
        c.uid(u).gid(u);
    }
    let mut child = c.spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let _ = stdin.write_all(msg);
    drop(stdin);
    let _ = ew.write_all(envelope);
    drop(ew);
    child.wait().unwrap().code()
}

fn committed(home: &Path) -> Vec<String> {
    files(&home.join("queue/drop"))
        .into_iter()
        .filter(|f| f.ends_with(".env"))
        .collect()
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
    let envs = committed(&h);
    assert_eq!(envs.len(), 1);
    let id = envs[0].trim_end_matches(".env");
    assert_eq!(
        std::fs::read(h.join("queue/drop").join(&envs[0])).unwrap(),
        b"Fa@b.example\0Tc@d.example\0\0"
    );
    let m = std::fs::read(h.join("queue/drop").join(id)).unwrap();
    let uid = unsafe { libc::geteuid() };
    let first = format!("Received: (pipemail ");
    assert!(m.starts_with(first.as_bytes()));
    let nl = m.iter().position(|&c| c == b'\n').unwrap();
    assert!(String::from_utf8_lossy(&m[..nl]).contains(&format!(" invoked by uid {});", uid)));
    assert_eq!(&m[nl + 1..], b"Subject: hi\n\nbody\n");
    assert_eq!(
        files(&h.join("queue/drop")).len(),
        2,
        "no temporary files left"
    );
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
    let envs = committed(&h);
    assert_eq!(envs.len(), 1);
    let id = envs[0].trim_end_matches(".env");
    let m = std::fs::read(h.join("queue/drop").join(id)).unwrap();
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
    for e in committed(&h) {
        let id = e.trim_end_matches(".env");
        let m = std::fs::read(h.join("queue/drop").join(id)).unwrap();
        assert!(m.ends_with(&body), "committed message {} is whole", id);
    }
    assert!(
        committed(&h).len() >= whole,
        "every exit 0 left a committed message"
    );
}

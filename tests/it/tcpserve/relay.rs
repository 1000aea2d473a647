//! relay-stamp and relay-gate: stamps, the gate, expiry, hostile
//! addresses and stamps from uids relay-gate does not trust.

use crate::common::*;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

const SHOW: &str = "echo \"R=${RELAYCLIENT-unset}\"";

fn env_for<'a>(home: &'a str, ip: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![("PIPEMAIL_HOME", home), ("TCPREMOTEIP", ip)]
}

fn stamp(home: &Path, ip: &str) -> Output {
    run(
        "relay-stamp",
        &["sh", "-c", "echo in"],
        &env_for(home.to_str().unwrap(), ip),
        b"",
    )
}

fn gate(home: &Path, ip: &str) -> (String, String) {
    let o = run(
        "relay-gate",
        &["sh", "-c", SHOW],
        &env_for(home.to_str().unwrap(), ip),
        b"",
    );
    assert_eq!(o.status.code(), Some(0));
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// Sets a file's mtime `secs` seconds into the past.
fn age(p: &Path, secs: i64) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let t = libc::timeval {
        tv_sec: (now - secs) as libc::time_t,
        tv_usec: 0,
    };
    let c = std::ffi::CString::new(p.to_str().unwrap()).unwrap();
    assert_eq!(unsafe { libc::lutimes(c.as_ptr(), [t, t].as_ptr()) }, 0);
}

#[test]
fn stamp_opens_relay_for_that_address_only() {
    let h = home("relay");
    let o = stamp(&h, "192.0.2.7");
    assert_eq!(
        (o.status.code(), o.stdout.as_slice(), o.stderr.as_slice()),
        (Some(0), &b"in\n"[..], &b""[..])
    );
    assert_eq!(files(&h.join("relay")), vec!["192.0.2.7"]);
    let text = std::fs::read_to_string(h.join("relay/192.0.2.7")).unwrap();
    assert!(text.ends_with('\n') && text.trim().parse::<u64>().is_ok());
    let (out, err) = gate(&h, "192.0.2.7");
    assert_eq!(out, "R=\n");
    assert!(
        err.starts_with("relay-gate: pid ")
            && err.contains(": info: relay allowed for 192.0.2.7: stamp "),
        "{}",
        err
    );
    assert_eq!(gate(&h, "::ffff:192.0.2.7").0, "R=\n");
    assert_eq!(gate(&h, "192.0.2.8").0, "R=unset\n");
    assert_eq!(gate(&h, "192.0.2.8").1, "");
    // An IPv6 client and its canonical form.
    assert_eq!(stamp(&h, "2001:DB8:0::5").status.code(), Some(0));
    assert!(h.join("relay/2001:db8::5").is_file());
    assert_eq!(gate(&h, "2001:db8::5").0, "R=\n");
    // A RELAYCLIENT set earlier (tcp-serve rules) is left alone.
    let hs = h.to_str().unwrap();
    let o = run(
        "relay-gate",
        &["sh", "-c", SHOW],
        &[
            ("PIPEMAIL_HOME", hs),
            ("TCPREMOTEIP", "10.9.9.9"),
            ("RELAYCLIENT", "@x"),
        ],
        b"",
    );
    assert_eq!(o.stdout, b"R=@x\n");
}

#[test]
fn stamps_expire_and_are_cleaned() {
    let h = home("relay-exp");
    assert_eq!(stamp(&h, "192.0.2.7").status.code(), Some(0));
    let p = h.join("relay/192.0.2.7");
    age(&p, 1000);
    assert_eq!(gate(&h, "192.0.2.7").0, "R=\n", "default relaytime is 1800");
    age(&p, 2000);
    assert_eq!(gate(&h, "192.0.2.7").0, "R=unset\n");
    assert!(!p.exists(), "stale stamp not removed");
    control(&h, "relaytime", "1\n");
    assert_eq!(stamp(&h, "192.0.2.7").status.code(), Some(0));
    age(&p, 2);
    assert_eq!(gate(&h, "192.0.2.7").0, "R=unset\n");
    // relay-stamp cleans other stale stamps.
    control(&h, "relaytime", "60\n");
    assert_eq!(stamp(&h, "10.0.0.1").status.code(), Some(0));
    age(&h.join("relay/10.0.0.1"), 61);
    assert_eq!(stamp(&h, "10.0.0.2").status.code(), Some(0));
    assert_eq!(files(&h.join("relay")), vec!["10.0.0.2"]);
    control(&h, "relaytime", "soon\n");
    let o = run(
        "relay-gate",
        &["true"],
        &env_for(h.to_str().unwrap(), "10.0.0.2"),
        b"",
    );
    assert_eq!(o.status.code(), Some(111));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("control/relaytime line 1: not a number: soon")
    );
}

#[test]
fn hostile_addresses_never_name_a_path() {
    let h = home("relay-hostile");
    let before = files(&h);
    for bad in [
        "../x",
        "..",
        "/etc/passwd",
        "1.2.3.4/../../x",
        "",
        "1.2.3.4 ",
        "x\ny",
        "fe80::1%lo",
        "01.2.3.4",
        "../../tmp/x",
    ] {
        let o = stamp(&h, bad);
        assert_eq!(o.status.code(), Some(0), "{:?}", bad);
        assert_eq!(o.stdout, b"in\n");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            err.contains(": warning: ignoring TCPREMOTEIP that is not an IP address: "),
            "{}",
            err
        );
        assert!(
            !err.contains('\n') || err.matches('\n').count() == 1,
            "{}",
            err
        );
        assert_eq!(gate(&h, bad).0, "R=unset\n");
    }
    assert_eq!(files(&h.join("relay")), Vec::<String>::new());
    assert_eq!(files(&h), before);
    assert!(!h.join("x").exists() && !h.parent().unwrap().join("x").exists());
}

#[test]
fn untrusted_stamps_are_ignored() {
    let h = home("relay-trust");
    let relay = h.join("relay");
    // A stamp through a symlink or with a second link is not trusted.
    std::fs::write(h.join("elsewhere"), "0\n").unwrap();
    std::os::unix::fs::symlink(h.join("elsewhere"), relay.join("192.0.2.10")).unwrap();
    let (out, err) = gate(&h, "192.0.2.10");
    assert_eq!(out, "R=unset\n");
    assert!(
        err.contains("warning: ignoring stamp relay/192.0.2.10: not a plain file"),
        "{}",
        err
    );
    std::fs::hard_link(h.join("elsewhere"), relay.join("192.0.2.11")).unwrap();
    assert_eq!(gate(&h, "192.0.2.11").0, "R=unset\n");
    // relay/ writable by others: nothing in it is trusted.
    assert_eq!(stamp(&h, "192.0.2.12").status.code(), Some(0));
    std::fs::set_permissions(&relay, std::fs::Permissions::from_mode(0o1733)).unwrap();
    let (out, err) = gate(&h, "192.0.2.12");
    assert_eq!(out, "R=unset\n");
    assert!(
        err.contains("relay/ is writable by group or others (mode 1733)"),
        "{}",
        err
    );
    std::fs::set_permissions(&relay, std::fs::Permissions::from_mode(0o700)).unwrap();
    assert_eq!(gate(&h, "192.0.2.12").0, "R=\n");
    if !is_root() {
        eprintln!("skipped: stamps by another uid need root");
        return;
    }
    // A stamp owned by a uid that does not own relay/ (planted by nobody).
    let planted = relay.join("192.0.2.9");
    std::fs::write(&planted, "0\n").unwrap();
    std::os::unix::fs::chown(&planted, Some(65534), Some(65534)).unwrap();
    let (out, err) = gate(&h, "192.0.2.9");
    assert_eq!(out, "R=unset\n");
    assert!(
        err.contains(
            "ignoring stamp relay/192.0.2.9: owned by uid 65534, not by the owner of relay/"
        ),
        "{}",
        err
    );
    // A shell user (uid 65534) running relay-stamp cannot write relay/,
    // and its program still runs.
    use std::os::unix::process::CommandExt;
    let o = Command::new(bin("relay-stamp"))
        .args(["sh", "-c", "echo in"])
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("PIPEMAIL_HOME", &h)
        .env("TCPREMOTEIP", "192.0.2.20")
        .uid(65534)
        .gid(65534)
        .output()
        .unwrap();
    assert_eq!(
        (o.status.code(), o.stdout.as_slice()),
        (Some(0), &b"in\n"[..])
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("warning: unable to write stamp relay/192.0.2.20: permission denied"),
        "{}",
        err
    );
    assert_eq!(gate(&h, "192.0.2.20").0, "R=unset\n");
    // relay/ given to the mail uid: its stamps count, root's too.
    std::os::unix::fs::chown(&relay, Some(65534), Some(65534)).unwrap();
    assert_eq!(gate(&h, "192.0.2.9").0, "R=\n");
    assert_eq!(gate(&h, "192.0.2.12").0, "R=\n");
}

#[test]
fn usage_and_exec_failure() {
    let h = home("relay-usage");
    let hs = h.to_str().unwrap();
    for p in ["relay-stamp", "relay-gate"] {
        let o = run(p, &[], &[("PIPEMAIL_HOME", hs)], b"");
        assert_eq!(o.status.code(), Some(100));
        assert!(o.stderr.starts_with(format!("{}: pid ", p).as_bytes()));
        let o = run(p, &["/nonexistent/prog"], &env_for(hs, "127.0.0.1"), b"");
        assert_eq!(o.status.code(), Some(127), "{}", p);
    }
}

#[test]
fn stamp_and_gate_through_tcp_serve() {
    let h = home("relay-tcp");
    let hs = h.to_str().unwrap();
    let dir = scratch("relay-tcp-rules");
    let rules = dir.join("rules");
    // The rule unsets TCPREMOTEIP: relay-gate then asks getpeername (plain inetd).
    std::fs::write(&rules, ":allow,TCPREMOTEIP\n").unwrap();
    let env = [("PIPEMAIL_HOME", hs)];
    let pop = super::start(
        &[],
        &[bin("relay-stamp").to_str().unwrap(), "sh", "-c", "echo +OK"],
        &env,
    );
    let smtp = super::start(
        &["-x", rules.to_str().unwrap()],
        &[bin("relay-gate").to_str().unwrap(), "sh", "-c", SHOW],
        &env,
    );
    assert_eq!(smtp.talk(b""), b"R=unset\n");
    assert_eq!(pop.talk(b""), b"+OK\n");
    assert_eq!(files(&h.join("relay")), vec!["127.0.0.1"]);
    assert_eq!(smtp.talk(b""), b"R=\n");
}

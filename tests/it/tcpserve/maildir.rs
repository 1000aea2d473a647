//! maildir-make: layout, modes, -p, -f, usage and failure codes.

use crate::common::*;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o7777
}

fn is_maildir(p: &Path) {
    assert_eq!(mode(p), 0o700, "{}", p.display());
    for s in ["cur", "new", "tmp"] {
        assert_eq!(mode(&p.join(s)), 0o700, "{}/{}", p.display(), s);
    }
}

#[test]
fn makes_a_maildir_and_refuses_an_existing_one() {
    let d = scratch("mdmake").join("Maildir");
    let ds = d.to_str().unwrap();
    let o = run("maildir-make", &[ds], &[], b"");
    assert_eq!(
        (o.status.code(), o.stdout.as_slice(), o.stderr.as_slice()),
        (Some(0), &b""[..], &b""[..])
    );
    is_maildir(&d);
    assert_eq!(files(&d), vec!["cur", "new", "tmp"]);
    let o = run("maildir-make", &[ds], &[], b"");
    assert_eq!(o.status.code(), Some(111));
    let want = format!("maildir-make: fatal: unable to mkdir {}: file exists\n", ds);
    assert_eq!(String::from_utf8_lossy(&o.stderr), want);
    assert_eq!(
        run("maildir-make", &["-p", ds], &[], b"").status.code(),
        Some(0)
    );
}

#[test]
fn parents_and_missing_parent() {
    let top = scratch("mdmake-p");
    let d = top.join("a/b/Maildir");
    let o = run("maildir-make", &[d.to_str().unwrap()], &[], b"");
    assert_eq!(o.status.code(), Some(111));
    assert!(String::from_utf8_lossy(&o.stderr).ends_with(": no such file or directory\n"));
    let o = run("maildir-make", &["-p", d.to_str().unwrap()], &[], b"");
    assert_eq!(o.status.code(), Some(0));
    is_maildir(&d);
}

#[test]
fn maildirplusplus_folders() {
    let d = scratch("mdmake-f").join("Maildir");
    let ds = d.to_str().unwrap();
    // Without -p the Maildir must exist.
    assert_eq!(
        run("maildir-make", &["-f", "Sent", ds], &[], b"")
            .status
            .code(),
        Some(111)
    );
    assert_eq!(
        run("maildir-make", &["-p", "-f", "Sent", ds], &[], b"")
            .status
            .code(),
        Some(0)
    );
    is_maildir(&d);
    is_maildir(&d.join(".Sent"));
    assert_eq!(std::fs::read(d.join(".Sent/maildirfolder")).unwrap(), b"");
    assert_eq!(
        run("maildir-make", &["-f", "Lists.rust", ds], &[], b"")
            .status
            .code(),
        Some(0)
    );
    assert_eq!(
        files(&d.join(".Lists.rust")),
        vec!["cur", "maildirfolder", "new", "tmp"]
    );
    assert_eq!(
        run("maildir-make", &["-f", "Sent", ds], &[], b"")
            .status
            .code(),
        Some(111)
    );
    assert_eq!(
        run("maildir-make", &["-p", "-f", "Sent", ds], &[], b"")
            .status
            .code(),
        Some(0)
    );
    for bad in ["../x", ".Sent", "a/b", "", "a..b", "x."] {
        let o = run("maildir-make", &["-f", bad, ds], &[], b"");
        assert_eq!(o.status.code(), Some(100), "{}", bad);
        assert!(o
            .stderr
            .starts_with(b"maildir-make: fatal: bad folder name: "));
    }
    assert_eq!(files(&d), vec![".Lists.rust", ".Sent", "cur", "new", "tmp"]);
}

#[test]
fn usage() {
    for args in [&[][..], &["-x", "d"][..], &["a", "b"][..], &["-f"][..]] {
        let o = run("maildir-make", args, &[], b"");
        assert_eq!(o.status.code(), Some(100), "{:?}", args);
        assert_eq!(
            o.stderr,
            b"maildir-make: usage: maildir-make [-p] [-f folder] dir\n"
        );
    }
}

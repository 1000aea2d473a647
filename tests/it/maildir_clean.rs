//! maildir-clean: a made-up Maildir tree with old and new files.

use crate::common::{run, scratch};
use std::path::Path;
use std::time::{Duration, SystemTime};

/// Writes `p` with access and modification time `hours` ago.
fn file(p: &Path, hours: u64) {
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, b"x").unwrap();
    let t = SystemTime::now() - Duration::from_secs(hours * 3600);
    let f = std::fs::File::options().write(true).open(p).unwrap();
    f.set_times(std::fs::FileTimes::new().set_accessed(t).set_modified(t))
        .unwrap();
}

#[test]
fn removes_stale_tmp_files_and_expired_trash() {
    let d = scratch("mdclean");
    let md = d.join("Maildir");
    for sub in [
        "tmp",
        "new",
        "cur",
        ".Lists/tmp",
        ".Trash/cur",
        ".Trash/new",
    ] {
        std::fs::create_dir_all(md.join(sub)).unwrap();
    }
    file(&md.join("tmp/dead"), 37);
    file(&md.join("tmp/edge"), 35);
    file(&md.join("tmp/fresh"), 0);
    std::fs::create_dir(md.join("tmp/adir")).unwrap();
    file(&md.join("new/old-message"), 24 * 400);
    file(&md.join("cur/old-message:2,S"), 24 * 400);
    file(&md.join(".Lists/tmp/dead"), 100);
    // delivered 40 days ago, moved to the trash now: kept for -d 1
    file(&md.join(".Trash/cur/trashed:2,S"), 24 * 40);
    // a folder that is a link elsewhere is never followed
    file(&d.join("victim/tmp/precious"), 100);
    std::os::unix::fs::symlink(d.join("victim"), md.join(".Victim")).unwrap();
    let mds = md.to_str().unwrap();

    let o = run("maildir-clean", &["-n", mds], &[], b"");
    assert_eq!(o.status.code(), Some(0));
    let expect = format!("{0}/tmp/dead\n{0}/.Lists/tmp/dead\n", mds);
    assert_eq!(String::from_utf8_lossy(&o.stdout), expect);
    assert!(md.join("tmp/dead").exists(), "-n removed a file");

    let o = run("maildir-clean", &["-v", "-d", "1", mds], &[], b"");
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&o.stdout), expect);
    assert_eq!(o.stderr, b"");
    assert!(!md.join("tmp/dead").exists());
    assert!(!md.join(".Lists/tmp/dead").exists());
    for kept in [
        "tmp/edge",
        "tmp/fresh",
        "tmp/adir",
        "new/old-message",
        "cur/old-message:2,S",
        ".Trash/cur/trashed:2,S",
    ] {
        assert!(md.join(kept).exists(), "{} was removed", kept);
    }
    assert!(d.join("victim/tmp/precious").exists());

    // quiet by default; -d 0 empties the trash
    let o = run("maildir-clean", &["-d", "0", mds], &[], b"");
    assert_eq!((o.status.code(), o.stdout.len()), (Some(0), 0));
    assert!(!md.join(".Trash/cur/trashed:2,S").exists());
    assert!(md.join("new/old-message").exists());

    // another trash folder name
    file(&md.join(".Deleted Items/cur/x"), 1);
    let o = run(
        "maildir-clean",
        &["-v", "-d", "0", "-T", "Deleted Items", mds],
        &[],
        b"",
    );
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        format!("{}/.Deleted Items/cur/x\n", mds)
    );
}

#[test]
fn errors_and_usage() {
    let d = scratch("mdclean-bad");
    let ds = d.to_str().unwrap();
    let o = run("maildir-clean", &[ds], &[], b"");
    assert_eq!(o.status.code(), Some(111));
    assert_eq!(
        String::from_utf8_lossy(&o.stderr),
        format!(
            "maildir-clean: fatal: unable to clean {}: not a Maildir\n",
            ds
        )
    );
    let o = run("maildir-clean", &[&format!("{}/none", ds)], &[], b"");
    assert_eq!(o.status.code(), Some(111));
    assert!(o.stderr.ends_with(b"/none: no such file or directory\n"));
    for args in [&[][..], &["-d", "x", ds][..], &["-T", "../x", ds][..]] {
        let o = run("maildir-clean", args, &[], b"");
        assert_eq!(o.status.code(), Some(100), "{:?}", args);
        assert!(o.stderr.starts_with(b"maildir-clean: usage: "));
    }
}

/// One folder-name encoding (issue 15): `-T Gelöscht` is the folder that
/// `maildir-make -f Gelöscht` makes and imapd lists, `.Gel&APY-scht`; it
/// used to look for a raw UTF-8 `.Gelöscht` and found nothing.
#[test]
fn trash_folder_named_in_utf8() {
    let md = scratch("mdclean-utf8").join("Maildir");
    let mds = md.to_str().unwrap();
    let o = run("maildir-make", &["-p", "-f", "Gelöscht", mds], &[], b"");
    assert_eq!(o.status.code(), Some(0), "{:?}", o);
    file(&md.join(".Gel&APY-scht/cur/x:2,S"), 1);
    let o = run(
        "maildir-clean",
        &["-v", "-d", "0", "-T", "Gelöscht", mds],
        &[],
        b"",
    );
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        format!("{}/.Gel&APY-scht/cur/x:2,S\n", mds)
    );
    // INBOX is the Maildir, not a folder of it.
    let o = run("maildir-clean", &["-T", "INBOX", mds], &[], b"");
    assert_eq!(o.status.code(), Some(100));
}

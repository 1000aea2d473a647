//! One grammar for every program's command line and man page: each [[bin]]
//! run with an unknown option prints its one usage line (the man page's
//! SYNOPSIS) and exits 100 (or the code its interface fixes), touching
//! nothing (per-connection programs may say `PROG: pid N: usage: `, as
//! every line they log); every [[bin]] has a page; every `name(N)` in man/ resolves.

use crate::common::{run_in, scratch};
use std::path::Path;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// Pages outside man/ that our pages may name (system and qmail pages).
const FOREIGN: &[&str] = &[
    "crypt(3)",
    "crypt(5)",
    "dot-qmail(5)",
    "fdatasync(2)",
    "flock(2)",
    "grep(1)",
    "linkat(2)",
    "maildir(5)",
    "qmail-users(5)",
    "resolv.conf(5)",
    "shadow(5)",
    "stat(2)",
    "syncfs(2)",
    "tcprules(1)",
    "tcpserver(1)",
    "write(2)",
];

/// Misuse codes fixed by a foreign interface (the man pages say so).
fn misuse_code(prog: &str) -> i32 {
    match prog {
        "check-password" => 2, // checkpassword interface
        "sendmail" => 64,      // sysexits EX_USAGE
        _ => 100,
    }
}

/// The names of Cargo.toml's [[bin]] sections.
fn bins() -> Vec<String> {
    let toml = std::fs::read_to_string(Path::new(ROOT).join("Cargo.toml")).unwrap();
    let mut out = Vec::new();
    let mut in_bin = false;
    for l in toml.lines().map(str::trim) {
        if l.starts_with('[') {
            in_bin = l == "[[bin]]";
        } else if let (true, Some(v)) = (in_bin, l.strip_prefix("name")) {
            out.push(
                v.trim_start_matches([' ', '='])
                    .trim_matches('"')
                    .to_string(),
            );
        }
    }
    assert!(out.len() > 20, "too few [[bin]] in Cargo.toml: {out:?}");
    out
}

/// man/NAME.N for the first section that exists.
fn page(name: &str) -> Option<std::path::PathBuf> {
    (1..=8)
        .map(|n| Path::new(ROOT).join("man").join(format!("{name}.{n}")))
        .find(|p| p.exists())
}

/// Splits a macro's arguments, keeping "quoted strings" whole.
fn macro_args(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let (mut quoted, mut any) = (false, false);
    for c in s.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                any = true;
            }
            ' ' | '\t' if !quoted => {
                if any || !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
                any = false;
            }
            c => cur.push(c),
        }
    }
    if any || !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// Font escapes, `\-` and `\&` out.
fn plain(s: &str) -> String {
    let mut out = String::new();
    let mut it = s.chars();
    while let Some(c) = it.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match it.next() {
            Some('f') => {
                it.next();
            }
            Some('-') => out.push('-'),
            Some('&') | None => {}
            Some(o) => out.push(o),
        }
    }
    out
}

/// One spacing: `[-p]`, `a|b`, `name...`, single spaces.
fn tidy(s: &str) -> String {
    let mut t = s.split_whitespace().collect::<Vec<_>>().join(" ");
    for (a, b) in [
        ("[ ", "["),
        (" ]", "]"),
        (" |", "|"),
        ("| ", "|"),
        (" ...", "..."),
    ] {
        while t.contains(a) {
            t = t.replace(a, b);
        }
    }
    t
}

/// The SYNOPSIS of a page as text, one string per form (`.br` separates).
fn synopsis(page: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(page).unwrap();
    let mut forms = vec![String::new()];
    let mut inside = false;
    for l in text.lines() {
        if l.starts_with(".SH") {
            inside = l.trim() == ".SH SYNOPSIS";
            continue;
        }
        if !inside {
            continue;
        }
        let piece = if l.starts_with(".br") {
            forms.push(String::new());
            continue;
        } else if let Some(m) = l.strip_prefix('.') {
            let (name, rest) = m.split_once(' ').unwrap_or((m, ""));
            let args = macro_args(rest);
            match name {
                "B" | "I" => args.join(" "),
                "IR" | "RI" | "BR" | "RB" | "BI" | "IB" => args.concat(),
                _ => panic!("{}: macro .{name} in SYNOPSIS", page.display()),
            }
        } else {
            l.to_string()
        };
        let f = forms.last_mut().unwrap();
        f.push(' ');
        f.push_str(&plain(&piece));
    }
    forms
        .iter()
        .map(|f| tidy(f))
        .filter(|f| !f.is_empty())
        .collect()
}

/// The usage line the page's SYNOPSIS implies for `prog`: its forms that
/// start with `prog`, joined by ", ".
fn usage_of(prog: &str, page: &Path) -> String {
    let forms: Vec<String> = synopsis(page)
        .into_iter()
        .filter(|f| f.split(' ').next() == Some(prog))
        .collect();
    assert!(
        !forms.is_empty(),
        "{}: no SYNOPSIS form starts with {prog}",
        page.display()
    );
    forms.join(", ")
}

#[test]
fn every_bin_has_a_man_page() {
    let missing: Vec<String> = bins().into_iter().filter(|b| page(b).is_none()).collect();
    assert!(missing.is_empty(), "no man page for {missing:?}");
}

#[test]
fn synopsis_reads_the_macros() {
    let p = Path::new(ROOT).join("man/queue-ctl.8");
    assert_eq!(
        usage_of("queue-ctl", &p),
        "queue-ctl retry|hold|release|delete|bounce id...|all, queue-ctl etrn domain..."
    );
}

/// `PROG: pid N: ` (a per-connection program's prefix) as `PROG: `.
fn without_pid(prog: &str, line: &str) -> String {
    let head = format!("{prog}: pid ");
    match line.strip_prefix(&head).and_then(|r| r.split_once(": ")) {
        Some((pid, rest)) if pid.bytes().all(|c| c.is_ascii_digit()) => format!("{prog}: {rest}"),
        _ => line.to_string(),
    }
}

/// Every program, unknown option: exactly `PROG: usage: SYNOPSIS` on
/// stderr, nothing on stdout, its misuse code, and no file left behind
/// (deliver-mbox used to create `--bogus-opt`; relay-gate exec'd it).
#[test]
fn unknown_option_prints_the_synopsis_and_exits() {
    let mut bad = Vec::new();
    for prog in bins() {
        let Some(p) = page(&prog) else { continue };
        let want = format!("{prog}: usage: {}\n", usage_of(&prog, &p));
        let dir = scratch("usage");
        let out = run_in(Some(&dir), &prog, &["--bogus-opt"], &[], b"");
        let got = without_pid(&prog, &String::from_utf8_lossy(&out.stderr));
        let left: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        if got != want
            || out.status.code() != Some(misuse_code(&prog))
            || !out.stdout.is_empty()
            || !left.is_empty()
        {
            bad.push(format!(
                "{prog}: exit {:?} (want {}), stderr {got:?} (want {want:?}), stdout {:?}, left {left:?}",
                out.status.code(),
                misuse_code(&prog),
                String::from_utf8_lossy(&out.stdout),
            ));
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
    assert!(bad.is_empty(), "\n{}", bad.join("\n"));
}

/// Every `name(N)` in man/ names a page in man/ with that section, or a
/// listed foreign page.
#[test]
fn cross_references_name_existing_pages() {
    let mut bad = Vec::new();
    for e in std::fs::read_dir(Path::new(ROOT).join("man"))
        .unwrap()
        .flatten()
    {
        let text = plain(&std::fs::read_to_string(e.path()).unwrap());
        let b = text.as_bytes();
        for (i, _) in text.match_indices('(') {
            let Some(&sec) = b.get(i + 1) else { continue };
            if !sec.is_ascii_digit() || b.get(i + 2) != Some(&b')') {
                continue;
            }
            let start = text[..i]
                .rfind(|c: char| !(c.is_ascii_alphanumeric() || "-._".contains(c)))
                .map_or(0, |s| s + 1);
            let name = &text[start..i];
            if name.is_empty() || !name.as_bytes()[0].is_ascii_alphabetic() {
                continue;
            }
            let r = format!("{name}({})", sec as char);
            let ours = Path::new(ROOT)
                .join("man")
                .join(format!("{name}.{}", sec as char));
            if !ours.exists() && !FOREIGN.contains(&r.as_str()) {
                bad.push(format!("{}: {r}", e.file_name().to_string_lossy()));
            }
        }
    }
    bad.sort();
    assert!(bad.is_empty(), "references to no page:\n{}", bad.join("\n"));
}

//! House rules read from the source: unsafe code only in lib/sys and the
//! FFI modules, each block with a `// SAFETY:` note, and smtp-recv asking
//! for ETRN through the queue's interface, not queue-run's code.

use std::path::{Path, PathBuf};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// The modules that may hold unsafe code: lib/sys/ and the FFI modules.
fn may_be_unsafe(rel: &str) -> bool {
    rel.starts_with("lib/sys/")
        || ["lib/tls/mod.rs", "lib/tls/ffi.rs", "lib/auth/crypt.rs"].contains(&rel)
}

/// Every .rs file below `dir`, as (path relative to the root, text).
fn sources(dir: &str) -> Vec<(String, String)> {
    fn walk(p: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(p).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    let mut files = Vec::new();
    walk(&Path::new(ROOT).join(dir), &mut files);
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let rel = p.strip_prefix(ROOT).unwrap().to_string_lossy().into_owned();
            (rel, std::fs::read_to_string(&p).unwrap())
        })
        .collect()
}

/// The code of a line, without a trailing `//` comment.
fn code(line: &str) -> &str {
    line.split("//").next().unwrap_or("")
}

/// Whether `s` holds the word `w` (not part of a longer identifier).
fn has_word(s: &str, w: &str) -> bool {
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    s.match_indices(w).any(|(i, _)| {
        !s[..i].chars().next_back().is_some_and(ident)
            && !s[i + w.len()..].chars().next().is_some_and(ident)
    })
}

#[test]
fn unsafe_code_lives_in_sys_and_the_ffi_modules() {
    let mut bad = Vec::new();
    for dir in ["lib", "bin"] {
        for (rel, text) in sources(dir) {
            if !may_be_unsafe(&rel) && text.lines().any(|l| has_word(code(l), "unsafe")) {
                bad.push(rel);
            }
        }
    }
    assert!(
        bad.is_empty(),
        "unsafe code outside lib/sys and the FFI modules: {bad:?}"
    );
    // The compiler keeps it so: denied for the library and the programs,
    // allowed only on those modules (and smtp-recv's C entry point).
    let lib = std::fs::read_to_string(Path::new(ROOT).join("lib/lib.rs")).unwrap();
    assert!(lib.contains("#![deny(unsafe_code)]"));
    let cargo = std::fs::read_to_string(Path::new(ROOT).join("Cargo.toml")).unwrap();
    assert!(cargo.contains("[lints.rust]\nunsafe_code = \"deny\""));
    let mut allowed = Vec::new();
    for dir in ["lib", "bin"] {
        for (rel, text) in sources(dir) {
            let lines: Vec<&str> = text.lines().collect();
            for (i, l) in lines.iter().enumerate() {
                if code(l).contains("allow(unsafe_code)") {
                    let next = lines.get(i + 1).map_or("", |n| n.trim());
                    allowed.push(format!("{rel}: {next}"));
                }
            }
        }
    }
    allowed.sort();
    assert_eq!(
        allowed,
        [
            "bin/smtp-recv.rs: #[no_mangle]",
            "lib/auth/mod.rs: pub mod crypt;",
            "lib/lib.rs: pub mod sys;",
            "lib/lib.rs: pub mod tls;",
        ]
    );
}

#[test]
fn every_unsafe_block_has_a_safety_note() {
    let mut bad = Vec::new();
    for (rel, text) in sources("lib") {
        let lines: Vec<&str> = text.lines().collect();
        for (i, l) in lines.iter().enumerate() {
            let c = code(l);
            let block = c.contains("unsafe {") || c.contains("unsafe impl");
            if block
                && !lines[i.saturating_sub(6)..i]
                    .iter()
                    .any(|p| p.contains("SAFETY"))
            {
                bad.push(format!("{}:{}", rel, i + 1));
            }
        }
    }
    assert!(
        bad.is_empty(),
        "unsafe blocks without a // SAFETY: note: {bad:?}"
    );
}

#[test]
fn smtp_asks_for_etrn_through_the_queue_interface() {
    for (rel, text) in sources("lib/smtp") {
        assert!(
            !text.contains("queuerun"),
            "{rel} reaches into queue-run's code"
        );
    }
}

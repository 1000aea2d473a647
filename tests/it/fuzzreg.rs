//! Replays the fuzzers' saved inputs with plain `cargo test`: every file
//! under tests/fuzz/seeds/TARGET/ and tests/fuzz/regressions/TARGET/ goes
//! through the same check the cargo-fuzz target TARGET runs
//! (tests/fuzz/checks.rs), so a crash once found stays fixed without
//! libFuzzer or a nightly compiler.

#[path = "../fuzz/checks.rs"]
mod checks;

use std::path::Path;

fn replay(kind: &str) -> usize {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fuzz")
        .join(kind);
    let mut n = 0;
    for (name, check) in checks::TARGETS {
        let Ok(dir) = std::fs::read_dir(root.join(name)) else {
            continue;
        };
        let mut files: Vec<_> = dir.filter_map(|e| e.ok()).map(|e| e.path()).collect();
        files.sort();
        for f in files {
            let data = std::fs::read(&f).unwrap();
            let r = std::panic::catch_unwind(|| check(&data));
            assert!(r.is_ok(), "{} failed on {}", name, f.display());
            n += 1;
        }
    }
    n
}

#[test]
fn seeds() {
    assert!(replay("seeds") > 0);
}

#[test]
fn regressions() {
    replay("regressions");
}

/// Every target has seeds, and every seed directory names a target.
#[test]
fn every_target_has_seeds() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz/seeds");
    for (name, _) in checks::TARGETS {
        assert!(root.join(name).is_dir(), "no seeds for {}", name);
    }
    for e in std::fs::read_dir(&root).unwrap() {
        let n = e.unwrap().file_name().into_string().unwrap();
        assert!(
            checks::TARGETS.iter().any(|(t, _)| *t == n),
            "seeds for unknown target {}",
            n
        );
    }
}

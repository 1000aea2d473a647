//! Running other programs: finding a sibling pipemail program next to our
//! own executable, chain-loading argv (exit 126/127 when exec fails), and
//! naming replacements through the environment (`QMAILQUEUE`, ...).

use std::ffi::{CString, OsString};
use std::io;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::PathBuf;

/// The path of pipemail program `name`: the directory of our own
/// executable, so a cargo tree and an installed tree both work.
pub fn sibling(name: &str) -> PathBuf {
    let dir = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(|d| d.to_path_buf()));
    match dir {
        Some(d) => d.join(name),
        None => PathBuf::from(name),
    }
}

/// Where to run program `name` from: a name with a slash as it is; else
/// our sibling of that name when there is one (inetd clears PATH, and an
/// installed tree need not be in PATH); else the bare name, for PATH.
pub fn resolve(name: &std::ffi::OsStr) -> OsString {
    if name.as_bytes().contains(&b'/') || name.is_empty() {
        return name.to_os_string();
    }
    let s = sibling(&name.to_string_lossy());
    if s.is_file() && crate::sys::fs::executable(&s) {
        s.into_os_string()
    } else {
        name.to_os_string()
    }
}

/// A Command for `prog` found by [`resolve`].
pub fn command(prog: &std::ffi::OsStr) -> std::process::Command {
    std::process::Command::new(resolve(prog))
}

/// `$VAR` when set and non-empty, else the sibling program `name`.
pub fn program(var: &str, name: &str) -> PathBuf {
    match std::env::var_os(var) {
        Some(v) if !v.is_empty() => PathBuf::from(v),
        _ => sibling(name),
    }
}

fn cstrings(args: &[OsString]) -> io::Result<Vec<CString>> {
    args.iter()
        .map(|a| crate::sys::cstr(a.as_bytes()))
        .collect()
}

/// execvp(argv), argv[0] found by [`resolve`] (argv[0] itself is passed
/// unchanged). Returns only on failure, with the errno.
pub fn exec(argv: &[OsString]) -> io::Error {
    if argv.is_empty() {
        return io::Error::from_raw_os_error(libc::EINVAL);
    }
    let (c, file) = match (
        cstrings(argv),
        crate::sys::cstr(resolve(&argv[0]).as_bytes()),
    ) {
        (Ok(c), Ok(f)) => (c, f),
        (Err(e), _) | (_, Err(e)) => return e,
    };
    crate::sys::proc::execvp(&file, &c)
}

/// Chain-loads argv; on failure dies with 127 (not found) or 126.
pub fn chain(argv: &[OsString]) -> ! {
    let e = exec(argv);
    let name = argv
        .first()
        .map(|a| a.as_bytes().to_vec())
        .unwrap_or_default();
    let code = if e.kind() == io::ErrorKind::NotFound {
        crate::exit::EXEC_NOENT
    } else {
        crate::exit::EXEC_FAIL
    };
    crate::exit::die_sys(code, &[b"unable to run ", &name], &e)
}

/// What tells one executable file from another: device, inode, size,
/// mtime and ctime (an in-place rewrite keeps the inode, not the times).
pub type FileId = (u64, u64, u64, i64, i64);

fn file_id(p: &std::path::Path) -> Option<FileId> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(p).ok()?;
    if !m.is_file() {
        return None;
    }
    Some((m.dev(), m.ino(), m.size(), m.mtime(), m.ctime()))
}

/// The file [`exec`] would run for argv[0] `prog`: [`resolve`]'s answer
/// when it holds a slash, else the first executable regular file named so
/// in `$PATH` (what execvp does with a bare name).
fn exec_path(prog: &std::ffi::OsStr) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let prog = resolve(prog);
    if prog.as_bytes().contains(&b'/') {
        return Some(PathBuf::from(prog));
    }
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/bin:/usr/bin".into());
    std::env::split_paths(&path)
        .map(|d| d.join(&prog))
        .find(|p| {
            std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// A program's entry point: its arguments after argv[0]; returns the exit code.
pub type Main = fn(&[OsString]) -> i32;

/// The pipemail programs a chain-loader (tcp-serve, relay-gate) may run in
/// its own process instead of exec'ing them (DESIGN.md, "Speed"): nothing
/// in them needs a fresh process, and they keep the caller's uid.
pub const LINKED: &[(&str, Main)] = &[
    (crate::smtp::PROG, crate::smtp::main),
    (crate::relay::GATE, crate::relay::gate),
];

/// A linked program and the identity of the file beside our executable
/// when [`linked`] first looked.
struct Linked {
    name: &'static str,
    main: Main,
    id: Option<FileId>,
}

static PROBE: std::sync::OnceLock<Vec<Linked>> = std::sync::OnceLock::new();

fn probe() -> &'static [Linked] {
    PROBE.get_or_init(|| {
        LINKED
            .iter()
            .map(|&(name, main)| Linked {
                name,
                main,
                id: file_id(&sibling(name)),
            })
            .collect()
    })
}

/// Notes, once per process, which [`LINKED`] programs lie beside our
/// executable as they are now. tcp-serve calls it at start, so its
/// children compare against what was there when it started.
pub fn probe_linked() {
    probe();
}

/// Whether argv[0] `prog` may run as linked code instead of an exec: yes
/// when the file [`exec`] would run for it is the very file that lay beside our
/// executable when it was probed (not a replacement, not a newer build
/// installed since); None: exec it.
pub fn linked(prog: &std::ffi::OsStr) -> Option<(&'static str, Main)> {
    let path = exec_path(prog)?;
    let name = path.file_name()?.as_bytes();
    let l = probe().iter().find(|l| l.name.as_bytes() == name)?;
    let id = file_id(&path)?;
    (l.id == Some(id)).then_some((l.name, l.main))
}

/// Becomes the linked program `name` and runs it with `args` (after
/// argv[0]), as an exec would start it: SIGPIPE ignored (Rust's runtime
/// does that) and `name` as the process name (ps, top, /proc/PID/comm).
pub fn run_linked((name, main): (&'static str, Main), args: &[OsString]) -> ! {
    crate::sys::signal_ignore(libc::SIGPIPE, true);
    crate::sys::proc::set_name(name);
    std::process::exit(main(args))
}

/// Runs argv: the linked code of a [`LINKED`] program when [`linked`]
/// allows, else chain-loads it ([`chain`]). Never returns.
pub fn run_or_chain(argv: &[OsString]) -> ! {
    if let Some(l) = argv.first().and_then(|p| linked(p)) {
        run_linked(l, &argv[1..]);
    }
    chain(argv)
}

/// The rest of the command line as raw OsStrings (for chain-loaders).
pub fn os_args(v: Vec<Vec<u8>>) -> Vec<OsString> {
    v.into_iter().map(OsString::from_vec).collect()
}

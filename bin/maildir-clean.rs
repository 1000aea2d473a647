//! maildir-clean: remove stale tmp/ files and expired trash (maildir-clean(1)).

use pipemail::maildir::clean::{self, Opts};
use pipemail::{exit, sys};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

const PROG: &str = "maildir-clean";
const USAGE: &str = "maildir-clean [-n] [-v] [-d days] [-T folder] maildir...";

fn main() {
    exit::set_prog(PROG, false);
    let (o, verbose, dirs) = args().unwrap_or_else(|()| exit::usage(USAGE));
    let mut code = exit::OK;
    for d in &dirs {
        let name = d.as_os_str().as_bytes();
        let r = match clean::clean(d, sys::now(), &o) {
            Ok(r) => r,
            Err(e) => {
                exit::log(
                    "fatal",
                    &[
                        b"unable to clean ",
                        name,
                        b": ",
                        exit::errtext(&e).as_bytes(),
                    ],
                );
                code = exit::TEMP;
                continue;
            }
        };
        for (p, e) in &r.errors {
            let t = exit::errtext(e);
            exit::warn(&[b"unable to clean ", name, b"/", p, b": ", t.as_bytes()]);
            code = exit::TEMP;
        }
        if verbose || o.dry_run {
            let mut out = Vec::new();
            for p in &r.removed {
                out.extend_from_slice(&[name, b"/", p, b"\n"].concat());
            }
            if let Err(e) = sys::write_all(1, &out) {
                exit::die_sys(exit::TEMP, &[b"unable to write output"], &e);
            }
        }
    }
    std::process::exit(code);
}

fn args() -> Result<(Opts, bool, Vec<PathBuf>), ()> {
    use lexopt::Arg::*;
    let mut p = lexopt::Parser::from_env();
    let mut o = Opts {
        trash_days: None,
        trash: b"Trash".to_vec(),
        dry_run: false,
    };
    let (mut verbose, mut dirs) = (false, Vec::new());
    while let Some(arg) = p.next().map_err(|_| ())? {
        match arg {
            Short('n') => o.dry_run = true,
            Short('v') => verbose = true,
            Short('d') => {
                let v = p.value().map_err(|_| ())?;
                o.trash_days = Some(pipemail::parse::number(v.as_bytes()).ok_or(())?);
            }
            Short('T') => {
                let v = p.value().map_err(|_| ())?.as_bytes().to_vec();
                o.trash = pipemail::maildir::folder::name_from_utf8(&v).ok_or(())?;
            }
            Value(v) => dirs.push(PathBuf::from(v)),
            _ => return Err(()),
        }
    }
    if dirs.is_empty() {
        return Err(());
    }
    Ok((o, verbose, dirs))
}

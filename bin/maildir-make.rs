//! maildir-make: create a Maildir or a Maildir++ folder (maildir-make(1)).

use pipemail::exit;
use pipemail::maildir::{folder, make};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

const PROG: &str = "maildir-make";
const USAGE: &str = "maildir-make [-p] [-f folder] dir";

fn main() {
    exit::set_prog(PROG, false);
    let (parents, folder, dir) = match args() {
        Ok(a) => a,
        Err(()) => exit::usage(USAGE),
    };
    if let Some(f) = &folder {
        if folder::name_from_utf8(f).is_none() {
            exit::die(exit::PERM, &[b"bad folder name: ", f]);
        }
    }
    if let Err(e) = make::make(&dir, parents, folder.as_deref()) {
        let p = e.path.as_os_str().as_bytes();
        exit::die_sys(
            exit::TEMP,
            &[b"unable to ", e.verb.as_bytes(), b" ", p],
            &e.err,
        );
    }
}

fn args() -> Result<(bool, Option<Vec<u8>>, PathBuf), ()> {
    use lexopt::Arg::*;
    let mut p = lexopt::Parser::from_env();
    let (mut parents, mut folder, mut dir) = (false, None, None);
    while let Some(arg) = p.next().map_err(|_| ())? {
        match arg {
            Short('p') => parents = true,
            Short('f') => folder = Some(p.value().map_err(|_| ())?.as_bytes().to_vec()),
            Value(v) if dir.is_none() => dir = Some(PathBuf::from(v)),
            _ => return Err(()),
        }
    }
    Ok((parents, folder, dir.ok_or(())?))
}

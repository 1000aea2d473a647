//! mail-passwd: add or change an account in users/passwd, with the
//! password read from stdin (mail-passwd(1)).

use pipemail::auth::{crypt, passwd};
use pipemail::exit::{self, die, die_sys, PERM, TEMP};
use std::os::unix::ffi::OsStringExt;

const PROG: &str = "mail-passwd";
const USAGE: &str = "mail-passwd [-u uid:gid] [-d home] name";

fn main() {
    exit::set_prog(PROG, false);
    let (mut ids, mut home, mut name) = (None, None, None);
    let mut p = lexopt::Parser::from_env();
    loop {
        use lexopt::prelude::*;
        match p.next() {
            Ok(None) => break,
            Ok(Some(Short('u'))) => ids = p.value().ok().map(|v| v.into_vec()),
            Ok(Some(Short('d'))) => home = p.value().ok().map(|v| v.into_vec()),
            Ok(Some(Value(v))) if name.is_none() => name = Some(v.into_vec()),
            _ => exit::usage(USAGE),
        }
    }
    let Some(name) = name else { exit::usage(USAGE) };
    let ids = ids.map(|v| passwd::parse_ids(&v).unwrap_or_else(|| exit::usage(USAGE)));
    if name.is_empty() || name.len() > passwd::MAX_NAME || !passwd::field_ok(&name) {
        die(PERM, &[b"bad name: ", &name]);
    }
    if let Some(h) = &home {
        if h.first() != Some(&b'/') || !passwd::field_ok(h) {
            die(
                PERM,
                &[b"home must be an absolute path without colons: ", h],
            );
        }
    }
    let mut pw = match passwd::read_password(0) {
        Ok(p) => p,
        Err(e) => die_sys(TEMP, &[b"unable to read password from stdin"], &e),
    };
    if pw.is_empty() {
        die(PERM, &[b"empty password"]);
    }
    let hash =
        crypt::make(&pw).unwrap_or_else(|| die(TEMP, &[b"unable to hash password: crypt failed"]));
    pw.iter_mut().for_each(|b| *b = 0);
    if let Err(e) = passwd::update(&passwd::path(), &name, &hash, ids, home.as_deref()) {
        die(e.0, &[&e.1]);
    }
}

//! dns-query: asks the DNS for MX, A, AAAA, TXT or PTR records (dns-query(1)).

use pipemail::{dns, exit};
use std::os::unix::ffi::OsStringExt;

const PROG: &str = "dns-query";
const USAGE: &str = "dns-query mx|a|aaaa|txt|ptr name";

fn main() {
    exit::set_prog(PROG, false);
    let args: Vec<Vec<u8>> = std::env::args_os().skip(1).map(|a| a.into_vec()).collect();
    let [kind, name] = &args[..] else {
        exit::usage(USAGE)
    };
    let r = dns::Resolver::from_env();
    let Some(result) = dns::query_lines(&r, kind, name) else {
        exit::usage(USAGE)
    };
    match result {
        Ok(lines) => {
            let mut out = Vec::new();
            for l in lines {
                out.extend_from_slice(&l);
                out.push(b'\n');
            }
            if let Err(e) = pipemail::sys::write_all(1, &out) {
                exit::die_sys(exit::TEMP, &[b"unable to write output"], &e);
            }
        }
        Err(f) => {
            let code = if matches!(f, dns::Fail::Temp(_)) {
                exit::TEMP
            } else {
                exit::PERM
            };
            let k = kind.to_ascii_uppercase();
            exit::die(
                code,
                &[
                    b"unable to find ",
                    &k,
                    b" records for ",
                    name,
                    b": ",
                    f.text().as_bytes(),
                ],
            );
        }
    }
}

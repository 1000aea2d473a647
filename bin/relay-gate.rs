//! relay-gate: set RELAYCLIENT for a client with a fresh SMTP-after-POP
//! stamp, then run prog (relay-gate(8)).

use pipemail::relay::{self, Verdict};
use pipemail::{exec, exit, sys};

const PROG: &str = "relay-gate";
const USAGE: &str = "relay-gate prog...";

fn main() {
    exit::set_prog(PROG, true);
    let argv: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    if argv.is_empty() {
        exit::usage(USAGE);
    }
    if std::env::var_os("RELAYCLIENT").is_none() {
        let rt = match relay::relaytime() {
            Ok(n) => n,
            Err(e) => exit::die(exit::TEMP, &[&e.text()]),
        };
        match relay::remote_addr() {
            Err(m) => exit::warn(&[&m]),
            Ok(addr) => match relay::check(&addr, rt, sys::now()) {
                Ok(Verdict::Fresh(age)) => {
                    std::env::set_var("RELAYCLIENT", "");
                    exit::info(&[
                        b"relay allowed for ",
                        addr.as_bytes(),
                        format!(": stamp {} s old", age).as_bytes(),
                    ]);
                }
                Ok(Verdict::Untrusted(why)) => {
                    exit::warn(&[
                        b"ignoring stamp relay/",
                        addr.as_bytes(),
                        b": ",
                        why.as_bytes(),
                    ]);
                }
                Ok(Verdict::Stale | Verdict::Missing) => {}
                Err(e) => {
                    let t = exit::errtext(&e);
                    exit::warn(&[
                        b"unable to check stamp relay/",
                        addr.as_bytes(),
                        b": ",
                        t.as_bytes(),
                    ]);
                }
            },
        }
    }
    exec::chain(&argv)
}

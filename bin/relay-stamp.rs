//! relay-stamp: record the client's address for SMTP-after-POP, then run
//! prog (relay-stamp(8)).

use pipemail::{exec, exit, relay, sys};

const PROG: &str = "relay-stamp";
const USAGE: &str = "relay-stamp prog...";

fn main() {
    exit::set_prog(PROG, true);
    let argv = exit::operands(USAGE);
    if argv.is_empty() {
        exit::usage(USAGE);
    }
    // A failed stamp must not fail the login: warn and run prog anyway.
    match relay::remote_addr() {
        Err(m) => exit::warn(&[&m]),
        Ok(addr) => {
            let now = sys::now();
            if let Err(e) = relay::stamp(&addr, now) {
                let t = exit::errtext(&e);
                exit::warn(&[
                    b"unable to write stamp relay/",
                    addr.as_bytes(),
                    b": ",
                    t.as_bytes(),
                ]);
            }
            match relay::relaytime() {
                Ok(rt) => relay::clean(rt, now),
                Err(e) => exit::warn(&[&e.text()]),
            }
        }
    }
    exec::chain(&argv)
}

//! tcp-serve: accept TCP connections and run a program for each (tcp-serve(1)).

use pipemail::{exit, tcpserve};

const PROG: &str = "tcp-serve";

fn main() {
    exit::set_prog(PROG, false);
    let cfg = match tcpserve::parse_args(lexopt::Parser::from_env()) {
        Ok(c) => c,
        Err(_) => exit::usage(tcpserve::USAGE),
    };
    match tcpserve::serve(&cfg) {
        Ok(()) => std::process::exit(exit::OK),
        Err((code, msg)) => exit::die(code, &[&msg]),
    }
}

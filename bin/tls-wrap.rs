//! tls-wrap: TLS between the network on fds 0/1 and a protocol program,
//! implicit or delayed (UCSPI-TLS) (tls-wrap(8)).

use pipemail::{exit, tls::wrap};

const PROG: &str = "tls-wrap";

fn main() {
    exit::set_prog(PROG, true);
    match wrap::parse_args(lexopt::Parser::from_env()) {
        Ok(o) => std::process::exit(wrap::run(&o)),
        Err(_) => exit::usage(wrap::USAGE),
    }
}

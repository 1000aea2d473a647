//! smtp-recv: receive mail via SMTP on descriptors 0 and 1 (smtp-recv(8)).

const PROG: &str = "smtp-recv";
const USAGE: &str = "smtp-recv";

fn main() {
    pipemail::exit::set_prog(PROG, true);
    if std::env::args_os().len() > 1 {
        pipemail::exit::usage(USAGE);
    }
    std::process::exit(pipemail::smtp::run(0, 1));
}

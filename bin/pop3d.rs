//! pop3d: POP3 transaction state on a Maildir (pop3d(8)).

const PROG: &str = "pop3d";
const USAGE: &str = "pop3d [maildir]";

fn main() {
    pipemail::exit::set_prog(PROG, true);
    let mut args = pipemail::exit::operands(USAGE).into_iter();
    let md = args.next().unwrap_or_else(|| ".".into());
    if args.next().is_some() {
        pipemail::exit::usage(USAGE);
    }
    std::process::exit(pipemail::pop3::server::run(std::path::Path::new(&md)))
}

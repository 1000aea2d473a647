//! imap-login: the IMAP not-authenticated state; runs checkprog, which
//! execs prog (imapd) as the user (man/imap-login.8).

const PROG: &str = "imap-login";
const USAGE: &str = "imap-login checkprog prog...";

fn main() {
    pipemail::exit::set_prog(PROG, true);
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    if args.len() < 2 {
        pipemail::exit::usage(USAGE);
    }
    pipemail::sys::signal_ignore(libc::SIGPIPE, true);
    std::process::exit(pipemail::imap::login::run(args));
}

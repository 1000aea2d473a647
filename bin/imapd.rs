//! imapd: IMAP4rev1 on a Maildir++ tree after login (man/imapd.8).

const PROG: &str = "imapd";
const USAGE: &str = "imapd [maildir]";

fn main() {
    pipemail::exit::set_prog(PROG, true);
    let mut p = lexopt::Parser::from_env();
    let mut dir: Option<std::ffi::OsString> = None;
    while let Some(arg) = p.next().unwrap_or_else(|_| pipemail::exit::usage(USAGE)) {
        match arg {
            lexopt::Arg::Value(v) if dir.is_none() => dir = Some(v),
            _ => pipemail::exit::usage(USAGE),
        }
    }
    let root = std::path::PathBuf::from(dir.unwrap_or_else(|| ".".into()));
    // The tag of the LOGIN that imap-login passed on; only tag characters.
    let tag = std::env::var_os("IMAPLOGINTAG")
        .map(std::os::unix::ffi::OsStringExt::into_vec)
        .filter(|t| {
            !t.is_empty()
                && t.len() <= 64
                && t.iter()
                    .all(|&c| c > 0x20 && c < 0x7f && !b"(){%*\"\\+]".contains(&c))
        });
    std::env::remove_var("IMAPLOGINTAG");
    pipemail::sys::signal_ignore(libc::SIGPIPE, true);
    std::process::exit(pipemail::imap::session::run(root, tag));
}

//! lmtp-recv: an LMTP server (RFC 2033) on descriptors 0 and 1 that
//! delivers each recipient through deliver-local (lmtp-recv(8)). Under
//! `local-spawn -u user lmtp-recv`, local-spawn starts each delivery as the
//! recipient's account; alone, deliveries run as our own uid.

use pipemail::{exit, lmtp, sys};

const PROG: &str = "lmtp-recv";
const USAGE: &str = "lmtp-recv";

fn main() {
    exit::set_prog(PROG, true);
    if std::env::args_os().len() > 1 {
        exit::usage(USAGE);
    }
    if sys::geteuid() == 0 {
        let _ = sys::write_timeout(1, b"421 4.3.0 lmtp-recv does not run as root\r\n", 10);
        exit::die(exit::TEMP, &[b"refusing to run as root (see lmtp-recv(8))"]);
    }
    let under = std::env::var_os("PIPEMAIL_LSPAWN").is_some_and(|v| v == "1");
    let helper = (under && sys::fd_is_open(6) && sys::fd_is_open(7)).then_some((6, 7));
    std::process::exit(lmtp::server::run(0, 1, helper))
}

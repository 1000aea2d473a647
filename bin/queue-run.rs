//! queue-run: the queue manager (queue-run(8)).
//! Under local-spawn it talks to it on fds 6 (requests: a socket) and 7 (replies);
//! alone, it forks its own local-spawn (same code, no exec).

use pipemail::queuerun::{run, spawn};
use pipemail::{exit, sys};

const PROG: &str = "queue-run";
const USAGE: &str = "queue-run";

fn main() {
    exit::set_prog(PROG, false);
    if std::env::args_os().len() > 1 {
        exit::usage(USAGE);
    }
    let under = std::env::var_os("PIPEMAIL_LSPAWN").is_some_and(|v| v == "1");
    let sp = if under && sys::fd_is_open(6) && sys::fd_is_open(7) {
        let _ = sys::set_cloexec(6, true);
        let _ = sys::set_cloexec(7, true);
        run::Spawner { w: 6, r: 7 }
    } else {
        let (req_r, req_w) = spawn::socketpair()
            .unwrap_or_else(|e| exit::die_sys(exit::TEMP, &[b"unable to make a socket pair"], &e));
        let (rep_r, rep_w) = sys::pipe()
            .unwrap_or_else(|e| exit::die_sys(exit::TEMP, &[b"unable to make a pipe"], &e));
        match sys::proc::fork() {
            Err(e) => exit::die_sys(exit::TEMP, &[b"unable to fork"], &e),
            Ok(sys::proc::Fork::Child) => {
                // The built-in local-spawn: serves until queue-run is gone.
                for s in [libc::SIGTERM, libc::SIGHUP, libc::SIGALRM] {
                    sys::signal_ignore(s, true);
                }
                sys::close(req_w);
                sys::close(rep_r);
                spawn::serve(req_r, rep_w);
                std::process::exit(0);
            }
            Ok(sys::proc::Fork::Parent(_)) => {
                sys::close(req_r);
                sys::close(rep_w);
                run::Spawner { w: req_w, r: rep_r }
            }
        }
    };
    std::process::exit(run::main(sp));
}

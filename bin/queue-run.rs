//! queue-run: the queue manager (queue-run(8)).
//! Under local-spawn it talks to it on fds 6 (requests: a socket) and 7 (replies);
//! alone, it forks its own local-spawn (same code, no exec).

use pipemail::queuerun::{run, spawn};
use pipemail::{exit, sys};

const PROG: &str = "queue-run";
const USAGE: &str = "queue-run";

fn valid_fd(fd: i32) -> bool {
    unsafe { libc::fcntl(fd, libc::F_GETFD) >= 0 }
}

fn main() {
    exit::set_prog(PROG, false);
    if std::env::args_os().len() > 1 {
        exit::usage(USAGE);
    }
    let under = std::env::var_os("PIPEMAIL_LSPAWN").is_some_and(|v| v == "1");
    let sp = if under && valid_fd(6) && valid_fd(7) {
        let _ = sys::set_cloexec(6, true);
        let _ = sys::set_cloexec(7, true);
        run::Spawner { w: 6, r: 7 }
    } else {
        let (req_r, req_w) = spawn::socketpair()
            .unwrap_or_else(|e| exit::die_sys(exit::TEMP, &[b"unable to make a socket pair"], &e));
        let (rep_r, rep_w) = sys::pipe()
            .unwrap_or_else(|e| exit::die_sys(exit::TEMP, &[b"unable to make a pipe"], &e));
        match unsafe { libc::fork() } {
            -1 => exit::die_sys(
                exit::TEMP,
                &[b"unable to fork"],
                &std::io::Error::last_os_error(),
            ),
            0 => {
                // The built-in local-spawn: serves until queue-run is gone.
                for s in [libc::SIGTERM, libc::SIGHUP, libc::SIGALRM] {
                    sys::signal_ignore(s, true);
                }
                sys::close(req_w);
                sys::close(rep_r);
                spawn::serve(req_r, rep_w);
                std::process::exit(0);
            }
            _ => {
                sys::close(req_r);
                sys::close(rep_w);
                run::Spawner { w: req_w, r: rep_r }
            }
        }
    };
    std::process::exit(run::main(sp));
}

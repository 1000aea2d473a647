//! local-spawn: starts local deliveries for queue-run as the recipient's
//! uid (local-spawn(8)). `local-spawn [-u user] queue-run`.

use pipemail::queuerun::{run, spawn};
use pipemail::{exec, exit, sys};
use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;
use std::sync::atomic::{AtomicI32, Ordering};

const PROG: &str = "local-spawn";
const USAGE: &str = "local-spawn [-u user] prog...";

static CHILD: AtomicI32 = AtomicI32::new(0);

extern "C" fn forward(s: libc::c_int) {
    let pid = CHILD.load(Ordering::SeqCst);
    if pid > 0 {
        let _ = sys::proc::kill(pid, s);
    }
}

fn main() {
    exit::set_prog(PROG, false);
    let mut user: Option<OsString> = None;
    let mut prog: Vec<OsString> = Vec::new();
    let mut p = lexopt::Parser::from_env();
    loop {
        match p.next() {
            Ok(Some(lexopt::Arg::Short('u'))) => match p.value() {
                Ok(v) => user = Some(v),
                Err(_) => exit::usage(USAGE),
            },
            Ok(Some(lexopt::Arg::Value(v))) => {
                prog.push(v);
                match p.raw_args() {
                    Ok(r) => prog.extend(r),
                    Err(_) => exit::usage(USAGE),
                }
                break;
            }
            Ok(None) => break,
            _ => exit::usage(USAGE),
        }
    }
    if prog.is_empty() {
        exit::usage(USAGE);
    }
    let user = user.or_else(|| std::env::var_os("PMAILQ"));
    let ids = if sys::geteuid() == 0 {
        let name = user
            .map(|u| u.as_bytes().to_vec())
            .unwrap_or(b"pmailq".to_vec());
        match run::account_ids(&name) {
            Some((0, _)) => exit::die(
                exit::PERM,
                &[b"refusing to run ", prog[0].as_bytes(), b" as root"],
            ),
            Some(ids) => Some(ids),
            None => exit::die(exit::TEMP, &[b"unable to find user ", &name]),
        }
    } else {
        None
    };
    // A name without a slash is a sibling program when one exists.
    prog[0] = exec::resolve(&prog[0]);
    let (req_r, req_w) = spawn::socketpair()
        .unwrap_or_else(|e| exit::die_sys(exit::TEMP, &[b"unable to make a socket pair"], &e));
    let (rep_r, rep_w) =
        sys::pipe().unwrap_or_else(|e| exit::die_sys(exit::TEMP, &[b"unable to make a pipe"], &e));
    std::env::set_var("PIPEMAIL_LSPAWN", "1");
    let pid = match sys::proc::fork() {
        Err(e) => exit::die_sys(exit::TEMP, &[b"unable to fork"], &e),
        Ok(sys::proc::Fork::Parent(pid)) => pid,
        Ok(sys::proc::Fork::Child) => {
            if sys::dup2(req_w, 6).is_err() || sys::dup2(rep_r, 7).is_err() {
                exit::die(exit::TEMP, &[b"unable to move descriptors"]);
            }
            if let Some((uid, gid)) = ids {
                if let Err(e) = sys::drop_privileges(uid, gid, &[gid]) {
                    exit::die_sys(exit::TEMP, &[b"unable to switch to the queue user"], &e);
                }
            }
            // Set after the uid change (which clears it): our death ends the child.
            sys::proc::die_with_parent(libc::SIGTERM);
            if sys::proc::getppid() == 1 {
                std::process::exit(exit::TEMP);
            }
            exec::chain(&prog)
        }
    };
    sys::close(req_w);
    sys::close(rep_r);
    CHILD.store(pid, Ordering::SeqCst);
    sys::signals::set(
        &[libc::SIGTERM, libc::SIGHUP, libc::SIGALRM, libc::SIGINT],
        sys::signals::Action::Handler(forward),
    );
    spawn::serve(req_r, rep_w);
    let code = match sys::waitpid(pid) {
        Ok(st) => sys::exit_code(st).unwrap_or(exit::TEMP),
        Err(_) => exit::TEMP,
    };
    std::process::exit(code);
}

//! sendmail: the sendmail command line for programs that expect it
//! (sendmail(8)). Submits through mail-inject's code, in process.

use pipemail::submit::inject::{self, Identity};
use pipemail::submit::input::Fd;
use pipemail::submit::sendmail::{self, Action};
use pipemail::{exec, exit};
use std::ffi::OsString;

const PROG: &str = "sendmail";
const USAGE: &str =
    "sendmail [-t] [-i] [-f sender] [-F name] [-bm|-bs|-bp|-bi|-q] [-v] [--] [recipient...]";

fn fail(code: i32, parts: &[&[u8]]) -> ! {
    exit::log("fatal", parts);
    std::process::exit(code)
}

/// Runs the sibling program `name` in our place.
fn become_sibling(name: &str) -> ! {
    let p = exec::sibling(name);
    let e = exec::exec(&[OsString::from(p.as_os_str())]);
    let t = exit::errtext(&e);
    fail(
        sendmail::EX_OSERR,
        &[
            b"unable to run ",
            pipemail::control::bytes(&p),
            b": ",
            t.as_bytes(),
        ],
    )
}

fn main() {
    exit::set_prog(PROG, false);
    let argv0 = std::env::args_os().next().unwrap_or_default();
    let action = match sendmail::by_name(&argv0)
        .map_or_else(|| sendmail::parse(lexopt::Parser::from_env()), Ok)
    {
        Ok(a) => a,
        Err(e) if e.is_empty() => exit::usage_exit(sendmail::EX_USAGE, USAGE),
        Err(e) => fail(sendmail::EX_USAGE, &[e.as_bytes()]),
    };
    match action {
        Action::Poke => pipemail::queue::pull_trigger(),
        Action::List => become_sibling("queue-list"),
        Action::Newaliases => exit::info(&[sendmail::NEWALIASES]),
        Action::Smtp => {
            let user = pipemail::sys::getpwuid(pipemail::sys::getuid())
                .ok()
                .flatten()
                .map(|p| p.name);
            std::env::set_var("PROTO", "TCP");
            std::env::set_var("RELAYCLIENT", "");
            std::env::set_var("TCPREMOTEIP", "127.0.0.1");
            std::env::set_var("TCPLOCALIP", "127.0.0.1");
            std::env::set_var("TCPREMOTEHOST", "localhost");
            if let Some(u) = user {
                use std::os::unix::ffi::OsStringExt;
                std::env::set_var("TCPREMOTEINFO", OsString::from_vec(u));
            }
            become_sibling("smtp-recv")
        }
        Action::Submit { opts, verbose } => {
            let id = match Identity::from_env() {
                Ok(i) => i,
                Err(e) => fail(sendmail::EX_TEMPFAIL, &[e.text()]),
            };
            match inject::inject(&opts, &id, Fd(0), std::io::sink()) {
                Ok(qid) => {
                    if verbose {
                        exit::info(&[b"message queued ", &qid]);
                    }
                }
                Err(e) => {
                    let code = sendmail::exit_code(&e);
                    match e {
                        inject::Error::Usage(t) => {
                            fail(code, &[&t, b"; usage: ", USAGE.as_bytes()])
                        }
                        inject::Error::Perm(t) => fail(code, &[b"queue refused the message: ", &t]),
                        e => fail(code, &[e.text()]),
                    }
                }
            }
        }
    }
}

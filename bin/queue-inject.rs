//! queue-inject: put one message into the queue (queue-inject(8)).
//! The qmail-queue interface: message on fd 0, envelope on fd 1.

use pipemail::{exit, queue, sys};

const PROG: &str = "queue-inject";

/// Alarm after a day, as qmail-queue: exit 52.
extern "C" fn on_alarm(_: libc::c_int) {
    sys::proc::exit_now(52);
}

fn main() {
    exit::set_prog(PROG, false);
    if std::env::args_os().len() > 1 {
        exit::usage("queue-inject");
    }
    sys::signals::set(&[libc::SIGALRM], sys::signals::Action::Handler(on_alarm));
    sys::proc::alarm(86400);
    std::process::exit(match run() {
        Ok(()) => 0,
        Err(c) => c,
    })
}

fn run() -> Result<(), i32> {
    let mut q = queue::Inject::create()?;
    let mut buf = vec![0u8; 65536];
    loop {
        match sys::read(0, &mut buf) {
            Ok(0) => break,
            Ok(n) => q.write(&buf[..n])?,
            Err(_) => return Err(queue::code::READ),
        }
    }
    let mut env = Vec::new();
    loop {
        if let Some(end) = queue::envelope_end(&env) {
            if end != env.len() {
                return Err(queue::code::ENVELOPE);
            }
            break;
        }
        if env.len() > queue::MAX_ENVELOPE {
            return Err(queue::code::ENVELOPE);
        }
        match sys::read(1, &mut buf) {
            Ok(0) => return Err(queue::code::ENVELOPE),
            Ok(n) => env.extend_from_slice(&buf[..n]),
            Err(_) => return Err(queue::code::READ),
        }
    }
    q.commit(&env).map(|_| ())
}

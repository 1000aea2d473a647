//! check-password: the checkpassword interface against users/passwd and
//! the system accounts (check-password(8)).

const PROG: &str = "check-password";

fn main() {
    pipemail::exit::set_prog(PROG, false);
    let prog = {
        use pipemail::auth::checkpw::{MISUSE, USAGE};
        pipemail::exit::operands_exit(MISUSE, USAGE)
    };
    pipemail::auth::checkpw::main(&prog)
}

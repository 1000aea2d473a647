//! check-password: the checkpassword interface against users/passwd and
//! the system accounts (check-password(8)).

const PROG: &str = "check-password";

fn main() {
    pipemail::exit::set_prog(PROG, false);
    let prog: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    pipemail::auth::checkpw::main(&prog)
}

//! pop3-login: not written yet (stub).

fn main() {
    pipemail::exit::set_prog("pop3-login", false);
    pipemail::exit::die(pipemail::exit::TEMP, &[b"not implemented yet"]);
}

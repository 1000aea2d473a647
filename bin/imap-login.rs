//! imap-login: not written yet (stub).

fn main() {
    pipemail::exit::set_prog("imap-login", false);
    pipemail::exit::die(pipemail::exit::TEMP, &[b"not implemented yet"]);
}

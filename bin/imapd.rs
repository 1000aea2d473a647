//! imapd: not written yet (stub).

fn main() {
    pipemail::exit::set_prog("imapd", false);
    pipemail::exit::die(pipemail::exit::TEMP, &[b"not implemented yet"]);
}

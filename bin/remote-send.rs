//! remote-send: not written yet (stub).

fn main() {
    pipemail::exit::set_prog("remote-send", false);
    pipemail::exit::die(pipemail::exit::TEMP, &[b"not implemented yet"]);
}

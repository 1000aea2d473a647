//! relay-stamp: not written yet (stub).

fn main() {
    pipemail::exit::set_prog("relay-stamp", false);
    pipemail::exit::die(pipemail::exit::TEMP, &[b"not implemented yet"]);
}

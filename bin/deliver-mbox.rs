//! deliver-mbox: not written yet (stub).

fn main() {
    pipemail::exit::set_prog("deliver-mbox", false);
    pipemail::exit::die(pipemail::exit::TEMP, &[b"not implemented yet"]);
}

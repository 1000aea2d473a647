//! deliver-local: not written yet (stub).

fn main() {
    pipemail::exit::set_prog("deliver-local", false);
    pipemail::exit::die(pipemail::exit::TEMP, &[b"not implemented yet"]);
}

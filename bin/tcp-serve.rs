//! tcp-serve: not written yet (stub).

fn main() {
    pipemail::exit::set_prog("tcp-serve", false);
    pipemail::exit::die(pipemail::exit::TEMP, &[b"not implemented yet"]);
}

//! forward: not written yet (stub).

fn main() {
    pipemail::exit::set_prog("forward", false);
    pipemail::exit::die(pipemail::exit::TEMP, &[b"not implemented yet"]);
}

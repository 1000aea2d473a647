//! check-password: not written yet (stub).

fn main() {
    pipemail::exit::set_prog("check-password", false);
    pipemail::exit::die(pipemail::exit::TEMP, &[b"not implemented yet"]);
}

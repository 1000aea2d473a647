//! smtp-recv: not written yet (stub).

fn main() {
    pipemail::exit::set_prog("smtp-recv", false);
    pipemail::exit::die(pipemail::exit::TEMP, &[b"not implemented yet"]);
}

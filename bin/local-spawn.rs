//! local-spawn: not written yet (stub).

fn main() {
    pipemail::exit::set_prog("local-spawn", false);
    pipemail::exit::die(pipemail::exit::TEMP, &[b"not implemented yet"]);
}

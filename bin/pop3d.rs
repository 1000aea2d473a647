//! pop3d: not written yet (stub).

fn main() {
    pipemail::exit::set_prog("pop3d", false);
    pipemail::exit::die(pipemail::exit::TEMP, &[b"not implemented yet"]);
}

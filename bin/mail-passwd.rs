//! mail-passwd: not written yet (stub).

fn main() {
    pipemail::exit::set_prog("mail-passwd", false);
    pipemail::exit::die(pipemail::exit::TEMP, &[b"not implemented yet"]);
}

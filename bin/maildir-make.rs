//! maildir-make: not written yet (stub).

fn main() {
    pipemail::exit::set_prog("maildir-make", false);
    pipemail::exit::die(pipemail::exit::TEMP, &[b"not implemented yet"]);
}

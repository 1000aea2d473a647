//! dns-query: not written yet (stub).

fn main() {
    pipemail::exit::set_prog("dns-query", false);
    pipemail::exit::die(pipemail::exit::TEMP, &[b"not implemented yet"]);
}

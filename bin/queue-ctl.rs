//! queue-ctl: not written yet (stub).

fn main() {
    pipemail::exit::set_prog("queue-ctl", false);
    pipemail::exit::die(pipemail::exit::TEMP, &[b"not implemented yet"]);
}

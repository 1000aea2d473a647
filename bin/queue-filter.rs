//! queue-filter: run $QUEUE_FILTER on a message on its way into the queue
//! (queue-filter(8)). A qmail-queue program: message on fd 0, envelope on fd 1.

const PROG: &str = "queue-filter";

fn main() {
    pipemail::exit::set_prog(PROG, false);
    if std::env::args_os().len() > 1 {
        pipemail::exit::usage("queue-filter");
    }
    std::process::exit(pipemail::submit::filter::run())
}

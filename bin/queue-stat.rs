//! queue-stat: the RFC 1566/2789 mail monitoring counters per channel
//! (queue-stat(8)).

use pipemail::queuerun::{ctl, stats, store::Dirs};
use pipemail::{exit, sys};

const PROG: &str = "queue-stat";
const USAGE: &str = "queue-stat [ -p ]";

fn main() {
    exit::set_prog(PROG, false);
    let mut prom = false;
    let mut p = lexopt::Parser::from_env();
    loop {
        match p.next() {
            Ok(Some(lexopt::Arg::Short('p'))) => prom = true,
            Ok(None) => break,
            _ => exit::usage(USAGE),
        }
    }
    let d = Dirs::new();
    // before queue-run's first start there is no queue/info: nothing stored
    let jobs = match ctl::list(&d) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        r => r.unwrap_or_else(|e| exit::die_sys(exit::TEMP, &[b"unable to read the queue"], &e)),
    };
    let now = pipemail::queuerun::now();
    let unprocessed = ctl::unprocessed(&d).unwrap_or(0);
    let g = stats::gauges(&jobs, stats::quarantined(&d), unprocessed, now);
    let out = stats::format(&stats::Stats::load(&d), &g, prom);
    if let Err(e) = sys::write_all(1, &out) {
        exit::die_sys(exit::TEMP, &[b"unable to write output"], &e);
    }
}

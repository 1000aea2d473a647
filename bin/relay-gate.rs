//! relay-gate: set RELAYCLIENT for a client with a fresh SMTP-after-POP
//! stamp, then run prog (relay-gate(8)). The program lives in lib/relay
//! (GATE, GATE_USAGE, gate), which tcp-serve also links.

fn main() {
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    std::process::exit(pipemail::relay::gate(&args));
}

//! tls-wrap: TLS between the network on fds 0/1 and a protocol program,
//! implicit or delayed (UCSPI-TLS) (tls-wrap(8)).

use pipemail::{exit, tls::wrap};

const PROG: &str = "tls-wrap";
const USAGE: &str = "tls-wrap [-d] [-t secs] prog...";

fn main() {
    exit::set_prog(PROG, true);
    let mut o = wrap::Opts {
        delayed: false,
        timeout: 60,
        prog: Vec::new(),
    };
    let mut p = lexopt::Parser::from_env();
    while let Ok(Some(arg)) = p.next() {
        match arg {
            lexopt::Arg::Short('d') => o.delayed = true,
            lexopt::Arg::Short('t') => match p.value().ok().and_then(|v| v.into_string().ok()) {
                Some(v) => match v.parse::<u64>() {
                    Ok(n) if n > 0 => o.timeout = n,
                    _ => exit::usage(USAGE),
                },
                None => exit::usage(USAGE),
            },
            lexopt::Arg::Value(v) => {
                o.prog.push(v);
                o.prog.extend(
                    p.raw_args()
                        .map(|r| r.collect::<Vec<_>>())
                        .unwrap_or_default(),
                );
                break;
            }
            _ => exit::usage(USAGE),
        }
    }
    if o.prog.is_empty() {
        exit::usage(USAGE);
    }
    std::process::exit(wrap::run(&o));
}

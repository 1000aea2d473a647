//! rbl-gate: refuse clients listed in DNS block lists, or run prog
//! (rbl-gate(8)).

use pipemail::rbl::{self, Decision, List, Opts};
use pipemail::{exec, exit, relay};
use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;

const PROG: &str = "rbl-gate";
const USAGE: &str = "rbl-gate [-bBcC] [-t secs] [-w secs] [-r base] [-a base] prog...";

struct Args {
    o: Opts,
    secs: u64,
    lists: Vec<List>,
    argv: Vec<OsString>,
}

fn main() {
    exit::set_prog(PROG, true);
    let mut a = args().unwrap_or_else(|()| exit::usage(USAGE));
    let (me, file_lists) = rbl::controls().unwrap_or_else(|e| {
        let _ = pipemail::sys::write_all(1, b"421 unable to read controls\r\n");
        exit::die(exit::TEMP, &[b"unable to read controls: ", &e.text()])
    });
    if a.lists.is_empty() {
        a.lists = file_lists;
    }
    let env = std::env::var_os("RBLSMTPD");
    let ip = relay::remote_addr();
    let d = rbl::decision(env.as_ref().map(|v| v.as_bytes()), &ip, &a.lists, &a.o);
    if let Decision::Block { code, text, why } = d {
        let msg = rbl::reply(code, &text);
        let ip = ip.unwrap_or_else(|_| "unknown".into());
        exit::info(&[
            b"blocked remote=",
            ip.as_bytes(),
            b" list=",
            &why,
            b" reply=",
            &msg,
        ]);
        rbl::refuse_session(0, 1, &me, &msg, a.secs);
        std::process::exit(exit::OK);
    }
    exec::chain(&a.argv)
}

fn args() -> Result<Args, ()> {
    use lexopt::Arg::*;
    let mut p = lexopt::Parser::from_env();
    let mut a = Args {
        o: Opts {
            permanent: false,
            fail_closed: false,
            budget: 10,
        },
        secs: 60,
        lists: Vec::new(),
        argv: Vec::new(),
    };
    let num = |p: &mut lexopt::Parser| -> Result<u64, ()> {
        let v = p.value().map_err(|_| ())?;
        pipemail::parse::number(v.as_bytes()).ok_or(())
    };
    while let Some(arg) = p.next().map_err(|_| ())? {
        match arg {
            Short('b') => a.o.permanent = true,
            Short('B') => a.o.permanent = false,
            Short('c') => a.o.fail_closed = true,
            Short('C') => a.o.fail_closed = false,
            Short('t') => a.secs = num(&mut p)?,
            Short('w') => a.o.budget = num(&mut p)?.clamp(1, 300),
            Short(c @ ('r' | 'a')) => {
                let v = p.value().map_err(|_| ())?;
                a.lists.push(rbl::list(v.as_bytes(), c == 'a').ok_or(())?);
            }
            Value(v) => {
                a.argv.push(v);
                a.argv.extend(p.raw_args().map_err(|_| ())?);
            }
            _ => return Err(()),
        }
    }
    if a.argv.is_empty() {
        return Err(());
    }
    Ok(a)
}

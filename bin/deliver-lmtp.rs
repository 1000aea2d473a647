//! deliver-lmtp: hand the message on fd 0 to an LMTP server for one
//! recipient (deliver-lmtp(8)).

use pipemail::lmtp::client::{self, Job};
use pipemail::{control, exit, sys};
use std::io::Read;
use std::os::unix::ffi::OsStrExt;

const PROG: &str = "deliver-lmtp";
const USAGE: &str = "deliver-lmtp [-t secs] [-f sender] [-r recipient] server";

fn main() {
    exit::set_prog(PROG, false);
    let (timeout, sender, rcpt, target) = args().unwrap_or_else(|()| exit::usage(USAGE));
    let env = |k: &str| std::env::var_os(k).map(|v| v.as_bytes().to_vec());
    let (Some(sender), Some(rcpt)) = (
        sender.or_else(|| env("SENDER")),
        rcpt.or_else(|| env("RECIPIENT")),
    ) else {
        exit::usage(USAGE)
    };
    let mut msg = Vec::new();
    if let Err(e) = std::io::stdin().lock().read_to_end(&mut msg) {
        exit::die_sys(exit::TEMP, &[b"unable to read the message"], &e);
    }
    let me = control::me().unwrap_or_else(|_| sys::hostname());
    let job = Job {
        sender: &sender,
        recipient: &rcpt,
        msg: &msg,
        me: &me,
        timeout,
    };
    let o = client::deliver(&target, &job);
    match o.code {
        exit::OK => exit::info(&[&o.text]),
        c => exit::die(c, &[&o.text]),
    }
}

type Args = (u64, Option<Vec<u8>>, Option<Vec<u8>>, client::Target);

fn args() -> Result<Args, ()> {
    use lexopt::Arg::*;
    let mut p = lexopt::Parser::from_env();
    let (mut timeout, mut sender, mut rcpt, mut target) = (300, None, None, None);
    while let Some(arg) = p.next().map_err(|_| ())? {
        match arg {
            Short('t') => {
                let v = p.value().map_err(|_| ())?;
                timeout = pipemail::parse::number(v.as_bytes())
                    .filter(|&n| n > 0)
                    .ok_or(())?;
            }
            Short('f') => sender = Some(p.value().map_err(|_| ())?.as_bytes().to_vec()),
            Short('r') => rcpt = Some(p.value().map_err(|_| ())?.as_bytes().to_vec()),
            Value(v) if target.is_none() => target = Some(client::target(v.as_bytes()).ok_or(())?),
            _ => return Err(()),
        }
    }
    Ok((timeout, sender, rcpt, target.ok_or(())?))
}

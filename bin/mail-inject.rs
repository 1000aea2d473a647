//! mail-inject: complete a message's header and queue it (mail-inject(8)).

use pipemail::exit;
use pipemail::submit::inject::{self, Error, Identity, Mode, Options};
use pipemail::submit::input::Fd;
use std::os::unix::ffi::OsStringExt;

const PROG: &str = "mail-inject";
const USAGE: &str = "mail-inject [-nNaAhHt] [-f sender] [recipient...]";

fn main() {
    exit::set_prog(PROG, false);
    let mut opts = Options::default();
    let mut p = lexopt::Parser::from_env();
    loop {
        use lexopt::Arg::*;
        match p.next() {
            Ok(None) => break,
            Ok(Some(Short('n'))) => opts.print = true,
            Ok(Some(Short('N'))) => opts.print = false,
            Ok(Some(Short('a'))) => opts.mode = Mode::Args,
            Ok(Some(Short('A'))) => opts.mode = Mode::ArgsElseHeader,
            Ok(Some(Short('h' | 't'))) => opts.mode = Mode::Header,
            Ok(Some(Short('H'))) => opts.mode = Mode::Both,
            Ok(Some(Short('f'))) => match p.value() {
                Ok(v) => opts.sender = Some(v.into_vec()),
                Err(_) => exit::usage(USAGE),
            },
            Ok(Some(Value(v))) => opts.recipients.push(v.into_vec()),
            _ => exit::usage(USAGE),
        }
    }
    let id = match Identity::from_env() {
        Ok(i) => i,
        Err(e) => exit::die(exit::TEMP, &[e.text()]),
    };
    let stdout = std::io::BufWriter::new(std::io::stdout().lock());
    match inject::inject(&opts, &id, Fd(0), stdout) {
        Ok(_) => {}
        Err(Error::Usage(t)) => exit::die(exit::PERM, &[&t, b"; usage: ", USAGE.as_bytes()]),
        Err(Error::Data(t)) => exit::die(exit::PERM, &[&t]),
        Err(Error::Perm(t)) => exit::die(exit::PERM, &[b"queue refused the message: ", &t]),
        Err(Error::Temp(t)) => exit::die(exit::TEMP, &[&t]),
    }
}

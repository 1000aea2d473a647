//! queue-filter's work (queue-filter(8)): a qmail-queue program that runs
//! the message through `$QUEUE_FILTER` (a /bin/sh command, message on
//! stdin, new message on stdout) and hands the result, with the envelope
//! unchanged, to `$QUEUE_FILTER_NEXT` (else the linked queue code).
//!
//! The filter's exit code decides: 0 pass the output on, 99 accept and
//! drop the message, 100 reject for good, 111 (and anything else, or a
//! crash) try again later. A rejection's text is the first line the filter
//! wrote to stderr; it goes to descriptor 6 with exit 82 (`D` or `Z`), or,
//! when there is no text or no descriptor 6, exit 31 or 71.

use crate::enqueue::{Outcome, Queue};
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};

/// What the filter decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Pass,
    Drop,
    Perm(Vec<u8>),
    Temp(Vec<u8>),
}

/// A filter's exit code (None: killed by a signal) and the first line of
/// its stderr, as a verdict.
pub fn verdict(code: Option<i32>, said: &[u8]) -> Verdict {
    let said = clean(said);
    match code {
        Some(0) => Verdict::Pass,
        Some(99) => Verdict::Drop,
        Some(100) => Verdict::Perm(said),
        Some(111) => Verdict::Temp(said),
        Some(n) => Verdict::Temp(if said.is_empty() {
            format!("message filter failed with exit code {} (#4.3.0)", n).into_bytes()
        } else {
            said
        }),
        None => Verdict::Temp(b"message filter crashed (#4.3.0)".to_vec()),
    }
}

/// The first line of `b`, printable ASCII only, at most 200 bytes.
pub fn clean(b: &[u8]) -> Vec<u8> {
    let line = b.split(|&c| c == b'\n').next().unwrap_or(b"");
    let v: Vec<u8> = line
        .iter()
        .take(200)
        .map(|&c| if (0x20..0x7f).contains(&c) { c } else { b'?' })
        .collect();
    crate::parse::trim(&v).to_vec()
}

/// The exit code for a refusal: 82 with `D`/`Z` text on fd 6 when there is
/// text and fd 6 takes it, else `fallback` (31 or 71).
/// `fd6` says whether descriptor 6 was open when we started (else a file
/// of ours may have taken its number).
pub fn refuse(fd6: bool, perm: bool, text: &[u8], fallback: i32) -> i32 {
    if text.is_empty() || !fd6 {
        return fallback;
    }
    let mut v = vec![if perm { b'D' } else { b'Z' }];
    v.extend_from_slice(text);
    match crate::sys::write_all(6, &v) {
        Ok(()) => 82,
        Err(_) => fallback,
    }
}

fn temp_file() -> io::Result<File> {
    crate::sys::temp_file("queue-filter")
}

/// The run ends here, refused for now: logged as fatal, said on fd 6.
fn temp(fd6: bool, text: &str, code: i32) -> i32 {
    crate::exit::log("fatal", &[text.as_bytes()]);
    refuse(fd6, false, format!("{} (#4.3.0)", text).as_bytes(), code)
}

/// Reads fd 1 up to the end of a well-formed envelope. Err is an exit code.
fn read_envelope() -> Result<Vec<u8>, i32> {
    let mut env = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        if let Some(end) = crate::queue::envelope_end(&env) {
            if end != env.len() {
                return Err(crate::queue::code::ENVELOPE);
            }
            crate::queue::parse_envelope(&env)?;
            return Ok(env);
        }
        if env.len() > crate::queue::MAX_ENVELOPE {
            return Err(crate::queue::code::ENVELOPE);
        }
        match crate::sys::read(1, &mut buf) {
            Ok(0) => return Err(crate::queue::code::ENVELOPE),
            Ok(n) => env.extend_from_slice(&buf[..n]),
            Err(_) => return Err(crate::queue::code::READ),
        }
    }
}

/// The whole program; returns the exit code.
pub fn run() -> i32 {
    // Our fd 6 is for our caller only, never for the filter.
    let fd6 = crate::sys::set_cloexec(6, true).is_ok();
    let Some(cmd) = std::env::var_os("QUEUE_FILTER").filter(|c| !c.is_empty()) else {
        return temp(fd6, "QUEUE_FILTER is not set", 55);
    };
    let next = std::env::var_os("QUEUE_FILTER_NEXT").filter(|c| !c.is_empty());
    // Neither the filter nor the next program may loop back into us.
    std::env::remove_var("QUEUE_FILTER");
    std::env::remove_var("QUEUE_FILTER_NEXT");
    std::env::remove_var("QMAILQUEUE");

    let (mut msg, mut out, mut err) = match (temp_file(), temp_file(), temp_file()) {
        (Ok(a), Ok(b), Ok(c)) => (a, b, c),
        _ => return temp(fd6, "unable to create a temporary file", 53),
    };
    let mut buf = vec![0u8; 65536];
    loop {
        match crate::sys::read(0, &mut buf) {
            Ok(0) => break,
            Ok(n) => {
                if msg.write_all(&buf[..n]).is_err() {
                    return temp(fd6, "unable to write a temporary file", 53);
                }
            }
            Err(_) => return crate::queue::code::READ,
        }
    }
    let envelope = match read_envelope() {
        Ok(e) => e,
        Err(c) => return c,
    };
    let env = crate::queue::parse_envelope(&envelope).unwrap_or(crate::queue::Envelope {
        sender: vec![],
        recipients: vec![],
    });
    let mut rcpts = Vec::new();
    for (i, r) in env.recipients.iter().enumerate() {
        if i > 0 {
            rcpts.push(b'\n');
        }
        rcpts.extend_from_slice(r);
    }
    use std::os::unix::ffi::OsStringExt;
    let mut spawn = || -> io::Result<std::process::ExitStatus> {
        msg.seek(SeekFrom::Start(0))?;
        Command::new("/bin/sh")
            .arg("-c")
            .arg(&cmd)
            .env("SENDER", std::ffi::OsString::from_vec(env.sender.clone()))
            .env("RECIPIENTS", std::ffi::OsString::from_vec(rcpts.clone()))
            .stdin(Stdio::from(msg.try_clone()?))
            .stdout(Stdio::from(out.try_clone()?))
            .stderr(Stdio::from(err.try_clone()?))
            .status()
    };
    let status = match spawn() {
        Ok(s) => s,
        Err(_) => return temp(fd6, "unable to run the filter", 71),
    };
    let mut said = Vec::new();
    let _ = err
        .seek(SeekFrom::Start(0))
        .and_then(|_| (&mut err).take(4096).read_to_end(&mut said));
    let code = status.code();
    match verdict(code, &said) {
        Verdict::Pass => {}
        Verdict::Drop => {
            crate::exit::info(&[b"filter exit 99: message accepted and dropped"]);
            return 0;
        }
        Verdict::Perm(t) => {
            crate::exit::info(&[b"filter rejected the message permanently: ", &t]);
            return refuse(fd6, true, &t, 31);
        }
        Verdict::Temp(t) => {
            let how = match (code, status.signal()) {
                (Some(c), _) => format!("filter exit {}: ", c),
                (None, Some(s)) => format!("filter killed by signal {}: ", s),
                _ => "filter failed: ".to_string(),
            };
            crate::exit::warn(&[how.as_bytes(), if t.is_empty() { b"no text" } else { &t }]);
            return refuse(fd6, false, &t, 71);
        }
    }
    if out.seek(SeekFrom::End(0)).unwrap_or(0) == 0 {
        return temp(fd6, "the filter wrote no message", 71);
    }
    if out.seek(SeekFrom::Start(0)).is_err() {
        return temp(fd6, "unable to read a temporary file", 54);
    }
    let q = match next {
        Some(p) => Queue::program(p),
        None => Ok(Queue::Linked(crate::queue::Inject::create())),
    };
    let mut q = match q {
        Ok(q) => q,
        Err(_) => return temp(fd6, "unable to run the next queue program", 71),
    };
    loop {
        match out.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => q.write(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return temp(fd6, "unable to read a temporary file", 54),
        }
    }
    match q.finish(&envelope) {
        Outcome::Queued(_) => 0,
        Outcome::Perm(t) => refuse(fd6, true, &t, 31),
        Outcome::Temp(t) => refuse(fd6, false, &t, 71),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn verdicts() {
        assert_eq!(verdict(Some(0), b""), Verdict::Pass);
        assert_eq!(verdict(Some(99), b""), Verdict::Drop);
        assert_eq!(
            verdict(Some(100), b"spam (#5.7.1)\nmore\n"),
            Verdict::Perm(b"spam (#5.7.1)".to_vec())
        );
        assert_eq!(verdict(Some(100), b""), Verdict::Perm(vec![]));
        assert_eq!(
            verdict(Some(111), b"busy\x01\n"),
            Verdict::Temp(b"busy?".to_vec())
        );
        assert!(matches!(verdict(Some(1), b""), Verdict::Temp(t) if !t.is_empty()));
        assert!(matches!(verdict(None, b""), Verdict::Temp(t) if !t.is_empty()));
    }
}

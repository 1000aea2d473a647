//! `|command` instructions: `/bin/sh -c command` in the home directory,
//! the message (without the added lines) on stdin, qmail-command(8) exit
//! codes.

use super::Fail;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::process::{Command, Stdio};

/// Most program output kept for the report.
const MAX_OUTPUT: usize = 1000;

/// What a program's exit code means.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    Ok,
    /// 99: success, and skip the rest of the dot-file.
    Stop,
    Perm,
    Temp,
}

/// qmail-command(8): 0 ok, 99 stop, 100 and 64, 65, 70, 76, 77, 78, 112
/// permanent, everything else (and a crash, `None`) temporary.
pub fn verdict(code: Option<i32>) -> Verdict {
    match code {
        Some(0) => Verdict::Ok,
        Some(99) => Verdict::Stop,
        Some(100 | 64 | 65 | 70 | 76 | 77 | 78 | 112) => Verdict::Perm,
        _ => Verdict::Temp,
    }
}

/// The PATH a dot-file program gets (pipemail-dot(5)).
pub const PATH: &[u8] = b"/usr/local/bin:/usr/bin:/bin";

/// Variables passed on from deliver-local's own environment, so that a
/// program that queues mail (forward, sendmail) reaches the same queue.
const PASSED: [&str; 2] = ["PIPEMAIL_HOME", "QMAILQUEUE"];

/// Runs `cmd` with the message on fd 0 (rewound), its stdout and stderr
/// captured for the report, in a clean environment: PATH, the variables
/// of [`PASSED`] when set, and `env`. Ok(true) when it asked to stop (99).
pub fn run(cmd: &[u8], env: &[(Vec<u8>, Vec<u8>)]) -> Result<bool, Fail> {
    super::rewind()?;
    let (r, w) = crate::sys::pipe_owned().map_err(|e| Fail::sys(b"Unable to make a pipe", &e))?;
    let r = std::fs::File::from(r);
    let w2 = w
        .try_clone()
        .map_err(|e| Fail::sys(b"Unable to duplicate a pipe", &e))?;
    let mut c = Command::new("/bin/sh");
    c.arg("-c")
        .arg(OsStr::from_bytes(cmd))
        .stdin(Stdio::inherit())
        .stdout(Stdio::from(w))
        .stderr(Stdio::from(w2))
        .env_clear()
        .env("PATH", OsStr::from_bytes(PATH));
    for k in PASSED {
        if let Some(v) = std::env::var_os(k) {
            c.env(k, v);
        }
    }
    for (k, v) in env {
        c.env(OsStr::from_bytes(k), OsStr::from_bytes(v));
    }
    let mut child = c
        .spawn()
        .map_err(|e| Fail::sys(b"Unable to run /bin/sh", &e))?;
    drop(c); // closes our copies of the write ends
    let out = read_capped(r);
    let st = child
        .wait()
        .map_err(|e| Fail::sys(b"Unable to wait for the program", &e))?;
    use std::os::unix::process::ExitStatusExt;
    let code = st.code();
    let text = |dflt: &[u8]| -> Vec<u8> {
        let o = one_line(&out);
        if o.is_empty() {
            dflt.to_vec()
        } else {
            o
        }
    };
    match verdict(code) {
        Verdict::Ok => Ok(false),
        Verdict::Stop => Ok(true),
        Verdict::Perm => Err(Fail::perm(&text(
            format!("Program exited {}. (#5.2.0)", code.unwrap_or(0)).as_bytes(),
        ))),
        Verdict::Temp => match code {
            Some(c) => Err(Fail::temp(&text(
                format!("Program exited {}. (#4.3.0)", c).as_bytes(),
            ))),
            None => Err(Fail::temp(&text(
                format!(
                    "Aack, child crashed (signal {}). (#4.3.0)",
                    st.signal().unwrap_or(0)
                )
                .as_bytes(),
            ))),
        },
    }
}

/// Reads the program's output, keeping at most [`MAX_OUTPUT`] bytes and
/// draining the rest so the program never blocks on a full pipe.
fn read_capped(mut r: std::fs::File) -> Vec<u8> {
    use std::io::Read;
    let mut keep = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match r.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                let room = MAX_OUTPUT.saturating_sub(keep.len());
                keep.extend_from_slice(&buf[..n.min(room)]);
            }
        }
    }
    keep
}

/// Output as one report line: trailing newlines cut, inner ones become
/// `/` (as qmail-send does in bounces), control bytes escaped.
pub fn one_line(out: &[u8]) -> Vec<u8> {
    let t = crate::parse::trim(out);
    let mut v = Vec::with_capacity(t.len());
    for &c in t {
        match c {
            b'\n' => v.push(b'/'),
            0x20..=0x7e => v.push(c),
            _ => crate::log::escape_into(&mut v, &[c]),
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn exit_codes() {
        assert_eq!(verdict(Some(0)), Verdict::Ok);
        assert_eq!(verdict(Some(99)), Verdict::Stop);
        for c in [100, 64, 65, 70, 76, 77, 78, 112] {
            assert_eq!(verdict(Some(c)), Verdict::Perm, "{}", c);
        }
        for c in [1, 2, 71, 75, 111, 101, 126, 127] {
            assert_eq!(verdict(Some(c)), Verdict::Temp, "{}", c);
        }
        assert_eq!(verdict(None), Verdict::Temp);
        assert_eq!(one_line(b"no such list\nsorry\n"), b"no such list/sorry");
    }
}

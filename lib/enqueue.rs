//! The caller's side of the qmail-queue interface: hand a message and an
//! envelope to `$QMAILQUEUE` (or queue-inject) and turn its exit code into
//! a result (qmail.c's qmail_close). Without `$QMAILQUEUE` the queue code is
//! linked in and no process is started (DESIGN.md, "Speed").

use std::ffi::OsString;
use std::io::{self, Read, Write};
use std::os::fd::OwnedFd;
use std::process::{Child, Command, Stdio};

/// The outcome of a submission.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Queued; the text names the queue id (or the program's pid).
    Queued(Vec<u8>),
    /// Refused for good: the text for a `D` report or a 554.
    Perm(Vec<u8>),
    /// Try again later: the text for a `Z` report or a 451.
    Temp(Vec<u8>),
}

impl Outcome {
    /// The RFC 3463 status in the text's `(#x.y.z)`, else 4.3.0 / 5.3.0.
    pub fn status(&self) -> Vec<u8> {
        let (t, d): (&[u8], &[u8]) = match self {
            Outcome::Queued(_) => return b"2.0.0".to_vec(),
            Outcome::Perm(t) => (t, b"5.3.0"),
            Outcome::Temp(t) => (t, b"4.3.0"),
        };
        match memchr::memmem::find(t, b"(#") {
            Some(i) => {
                let s = &t[i + 2..];
                let end = memchr::memchr(b')', s).unwrap_or(s.len());
                s[..end].to_vec()
            }
            None => d.to_vec(),
        }
    }
}

/// Maps a queue program's wait status (None = killed) and its fd 6 text.
pub fn outcome(code: Option<i32>, fd6: &[u8]) -> Outcome {
    let z = |t: &str| Outcome::Temp(t.as_bytes().to_vec());
    let d = |t: &str| Outcome::Perm(t.as_bytes().to_vec());
    let Some(code) = code else {
        return z("qq crashed (#4.3.0)");
    };
    match code {
        0 => Outcome::Queued(Vec::new()),
        11 | 115 => d("envelope address too long for qq (#5.1.3)"),
        31 => d("mail server permanently rejected message (#5.3.0)"),
        51 => z("qq out of memory (#4.3.0)"),
        52 => z("qq timeout (#4.3.0)"),
        53 => z("qq write error or disk full (#4.3.0)"),
        54 => z("qq read error (#4.3.0)"),
        55 => z("qq unable to read configuration (#4.3.0)"),
        56 => z("qq trouble making network connection (#4.3.0)"),
        61 => z("qq trouble in home directory (#4.3.0)"),
        62..=66 => z("qq trouble creating files in queue (#4.3.0)"),
        71 => z("mail server temporarily rejected message (#4.3.0)"),
        72 => z("connection to mail server timed out (#4.4.1)"),
        73 => z("connection to mail server rejected (#4.4.1)"),
        74 => z("communication with mail server failed (#4.4.2)"),
        81 => z("qq internal bug (#4.3.0)"),
        82 if fd6.len() >= 3 && (fd6[0] == b'D' || fd6[0] == b'Z') => {
            let t = crate::parse::trim(&fd6[1..]).to_vec();
            if fd6[0] == b'D' {
                Outcome::Perm(t)
            } else {
                Outcome::Temp(t)
            }
        }
        91 => z("qq envelope format error (#4.3.0)"),
        120 => z("unable to exec qq (#4.3.0)"),
        11..=40 => d("qq permanent problem (#5.3.0)"),
        _ => z("qq temporary problem (#4.3.0)"),
    }
}

/// A submission in progress: message bytes go in with [`Queue::write`],
/// the envelope with [`Queue::finish`].
pub enum Queue {
    /// The linked queue code, or the exit code it already failed with.
    Linked(Result<crate::queue::Inject, i32>),
    Program {
        child: Child,
        msg: Option<std::fs::File>,
        env: std::fs::File,
        fd6: std::fs::File,
        broken: bool,
    },
}

fn pipe_files() -> io::Result<(std::fs::File, std::fs::File)> {
    let (r, w) = crate::sys::pipe_owned()?;
    Ok((r.into(), w.into()))
}

impl Queue {
    /// Starts `$QMAILQUEUE` when set, else links the queue code in.
    pub fn start() -> io::Result<Queue> {
        match std::env::var_os("QMAILQUEUE") {
            Some(p) if !p.is_empty() => Queue::program(p),
            _ => Ok(Queue::Linked(crate::queue::Inject::create())),
        }
    }

    /// Runs the queue program `prog` (no arguments), qmail-queue's interface.
    pub fn program(prog: OsString) -> io::Result<Queue> {
        let (msg_r, msg_w) = pipe_files()?;
        let (env_r, env_w) = pipe_files()?;
        let (e6_r, e6_w) = pipe_files()?;
        let e6_fd = std::os::fd::AsRawFd::as_raw_fd(&e6_w);
        let mut cmd = Command::new(&prog);
        cmd.stdin(Stdio::from(OwnedFd::from(msg_r)))
            .stdout(Stdio::from(OwnedFd::from(env_r)));
        crate::sys::proc::pass_fd(&mut cmd, e6_fd, 6);
        let child = cmd.spawn()?;
        drop(e6_w);
        Ok(Queue::Program {
            child,
            msg: Some(msg_w),
            env: env_w,
            fd6: e6_r,
            broken: false,
        })
    }

    /// Sends message bytes. A queue program that stopped reading is not an
    /// error here: its exit code tells what happened.
    pub fn write(&mut self, b: &[u8]) {
        match self {
            Queue::Linked(Ok(i)) => {
                if let Err(c) = i.write(b) {
                    *self = Queue::Linked(Err(c));
                }
            }
            Queue::Linked(Err(_)) => {}
            Queue::Program { msg, broken, .. } => {
                if !*broken {
                    if let Some(m) = msg {
                        if m.write_all(b).is_err() {
                            *broken = true;
                        }
                    }
                }
            }
        }
    }

    /// Ends the message, sends the envelope, waits for the verdict.
    pub fn finish(self, envelope: &[u8]) -> Outcome {
        match self {
            Queue::Linked(Ok(i)) => match i.commit(envelope) {
                Ok(id) => Outcome::Queued(id.into_bytes()),
                Err(c) => outcome(Some(c), b""),
            },
            Queue::Linked(Err(c)) => outcome(Some(c), b""),
            Queue::Program {
                child,
                msg,
                mut env,
                mut fd6,
                ..
            } => {
                drop(msg);
                let _ = env.write_all(envelope);
                drop(env);
                let mut text = Vec::new();
                let _ = (&mut fd6).take(255).read_to_end(&mut text);
                let pid = child.id();
                let st = crate::sys::waitpid(pid as i32);
                // The child is reaped by waitpid; keep std from waiting again.
                std::mem::forget(child);
                match st {
                    Ok(s) => match outcome(crate::sys::exit_code(s), &text) {
                        Outcome::Queued(_) => Outcome::Queued(format!("qp {}", pid).into_bytes()),
                        o => o,
                    },
                    Err(_) => outcome(None, b""),
                }
            }
        }
    }

    /// Gives up a submission: the queue program is killed before it sees an
    /// envelope, the linked queue code removes its files. Nothing is queued.
    pub fn abort(self) {
        match self {
            Queue::Program {
                mut child,
                msg,
                env,
                fd6,
                ..
            } => {
                let _ = child.kill();
                drop(msg);
                drop(env);
                drop(fd6);
                let _ = child.wait();
            }
            Queue::Linked(i) => drop(i),
        }
    }

    /// Submits a whole message in one call.
    pub fn submit(message: &[u8], envelope: &[u8]) -> Outcome {
        match Queue::start() {
            Ok(mut q) => {
                q.write(message);
                q.finish(envelope)
            }
            Err(_) => outcome(Some(120), b""),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn exit_codes_map_like_qmail_close() {
        assert_eq!(outcome(Some(0), b""), Outcome::Queued(vec![]));
        assert!(matches!(outcome(Some(11), b""), Outcome::Perm(_)));
        assert!(matches!(outcome(Some(31), b""), Outcome::Perm(_)));
        assert!(matches!(outcome(Some(25), b""), Outcome::Perm(_)));
        assert!(matches!(outcome(Some(71), b""), Outcome::Temp(_)));
        assert!(matches!(outcome(None, b""), Outcome::Temp(_)));
        assert_eq!(
            outcome(Some(82), b"Dno spam here (#5.7.1)"),
            Outcome::Perm(b"no spam here (#5.7.1)".to_vec())
        );
        assert_eq!(
            outcome(Some(82), b"Ztry later"),
            Outcome::Temp(b"try later".to_vec())
        );
        assert!(matches!(outcome(Some(82), b"x"), Outcome::Temp(_)));
        assert_eq!(
            outcome(Some(82), b"Dno spam here (#5.7.1)").status(),
            b"5.7.1"
        );
        assert_eq!(outcome(Some(53), b"").status(), b"4.3.0");
    }
}

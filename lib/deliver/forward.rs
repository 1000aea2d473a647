//! Forwarding: re-inject the message to new recipients through the queue
//! (qmail's forward(1) and qmail-local's `&addr` lines).

use super::Fail;
use crate::qq::{Outcome, Queue};
use crate::queue::Envelope;

/// Queues `prefix` (usually the DTLINE) and the message read from `fd` to
/// `recipients` with envelope sender `sender`. Ok: the queue's id text.
/// Nothing is queued when the message cannot be read.
pub fn forward(
    fd: i32,
    prefix: &[u8],
    sender: &[u8],
    recipients: &[Vec<u8>],
) -> Result<Vec<u8>, Fail> {
    let mut q = Queue::start().map_err(|e| Fail::sys(b"Unable to start the queue program", &e))?;
    q.write(prefix);
    let mut buf = vec![0u8; 65536];
    loop {
        match crate::sys::read(fd, &mut buf) {
            Ok(0) => break,
            Ok(n) => q.write(&buf[..n]),
            // Dropping the submission unfinished queues nothing.
            Err(e) => return Err(Fail::sys(b"Unable to read message", &e)),
        }
    }
    let env = Envelope {
        sender: sender.to_vec(),
        recipients: recipients.to_vec(),
    };
    match q.finish(&env.encode()) {
        Outcome::Queued(id) => Ok(id),
        Outcome::Perm(t) => Err(Fail::perm(&t)),
        Outcome::Temp(t) => Err(Fail::temp(&t)),
    }
}

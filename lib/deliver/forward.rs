//! Forwarding: re-inject the message to new recipients through the queue
//! (qmail's forward(1) and qmail-local's `&addr` lines).

use super::Fail;
use crate::enqueue::{Outcome, Queue};
use crate::header::Hops;
use crate::queue::Envelope;

/// Queues `prefix` (usually the DTLINE) and the message read from `fd` to
/// `recipients` with envelope sender `sender`. Ok: the queue's id text.
/// Nothing is queued when the message cannot be read, or when its header
/// (with `prefix`) has more than [`crate::header::MAX_HOPS`] `Received:` and
/// `Delivered-To:` lines: a loop, a permanent failure (#5.4.6) as
/// smtp-recv's.
pub fn forward(
    fd: i32,
    prefix: &[u8],
    sender: &[u8],
    recipients: &[Vec<u8>],
) -> Result<Vec<u8>, Fail> {
    let mut q = Queue::start().map_err(|e| Fail::sys(b"Unable to start the queue program", &e))?;
    q.write(prefix);
    let mut hops = Hops::default();
    hops.feed(prefix);
    let mut buf = vec![0u8; 65536];
    loop {
        match crate::sys::read(fd, &mut buf) {
            Ok(0) => break,
            Ok(n) => {
                hops.feed(&buf[..n]);
                q.write(&buf[..n]);
            }
            Err(e) => {
                q.abort();
                return Err(Fail::sys(b"Unable to read message", &e));
            }
        }
    }
    if hops.looping() {
        q.abort();
        return Err(Fail::perm(crate::header::LOOPING));
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

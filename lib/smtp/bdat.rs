//! CHUNKING (RFC 3030): `BDAT size [LAST]` followed by exactly `size`
//! octets of content, read as they are (no dot-stuffing, no line
//! framing). The chunks of one transaction go through the DATA state
//! machine in chunked mode (data.rs), so the stored message is what DATA
//! would store: LF line ends, a bare CR or LF refuses it (550 5.6.2), and
//! databytes, hops, submission and the Received: line are the same.
//!
//! Every chunk whose command parses is read whole whatever the reply
//! (503 without MAIL, 554 without recipients, 552 over databytes): the
//! byte count is the framing, and a chunk's content is never read as
//! commands. A transaction refused in the middle takes and drops its later
//! chunks with the same reply until BDAT LAST (RFC 3030 §2: the receiver
//! must accept and discard chunks after a failed one); RSET, HELO, EHLO
//! or the end of the session give up the message.

use super::conn::Fatal;
use super::message::Body;
use super::Session;

/// BDAT chunks of a transaction so far.
pub enum Chunks {
    /// Going to the queue.
    Open(Box<Body>),
    /// Refused with this reply: later chunks are read and dropped.
    Failed(Vec<u8>),
}

/// Parses BDAT's argument: `chunk-size [SP "LAST"]` (RFC 3030 §3),
/// chunk-size one or more digits that fit 64 bits, LAST in any case.
pub fn parse(arg: &[u8]) -> Option<(u64, bool)> {
    let (n, last) = match memchr::memchr(b' ', arg) {
        Some(i) if arg[i + 1..].eq_ignore_ascii_case(b"LAST") => (&arg[..i], true),
        Some(_) => return None,
        None => (arg, false),
    };
    if n.is_empty() {
        return None;
    }
    let mut v: u64 = 0;
    for &c in n {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add((c - b'0') as u64)?;
    }
    Some((v, last))
}

impl Session {
    /// Whether `verb` may not follow the BDAT chunks of this transaction
    /// (RFC 3030 §2: DATA and BDAT are not mixed; no RCPT once the
    /// content has started): 503 without touching the transaction.
    pub(super) fn after_bdat(&self, verb: &[u8]) -> bool {
        (verb == b"DATA" || verb == b"RCPT") && self.tx.as_ref().is_some_and(|t| t.chunks.is_some())
    }

    pub(super) fn bdat(&mut self, arg: &[u8]) -> Result<(), Fatal> {
        let Some((size, last)) = parse(arg) else {
            self.err(b"501 5.5.4 syntax: BDAT size [LAST]");
            return Ok(());
        };
        let refused: Option<&[u8]> = match &self.tx {
            None => Some(b"503 5.5.1 MAIL first"),
            Some(t) if t.rcpts.is_empty() => Some(b"554 5.5.1 no valid recipients"),
            Some(_) => None,
        };
        if let Some(r) = refused {
            self.take_chunk(size)?;
            self.err(r);
            return Ok(());
        }
        if self.tx.as_ref().is_some_and(|t| t.chunks.is_none()) {
            let d = super::data::Data::chunked(self.cfg.databytes);
            let c = match self.open_body(d) {
                Ok(b) => Chunks::Open(Box::new(b)),
                Err(reply) => Chunks::Failed(reply),
            };
            if let Some(t) = self.tx.as_mut() {
                t.chunks = Some(c);
            }
        }
        self.take_chunk(size)?;
        let Some(t) = self.tx.as_mut() else {
            return Ok(());
        };
        match t.chunks.take() {
            Some(Chunks::Open(body)) => match body.d.refusal() {
                // The end of the content may still refuse it (a CR
                // waiting for its LF): end_message decides.
                _ if last => return self.end_message(*body),
                Some((reply, reason)) => {
                    let id = body.id.clone();
                    drop(body);
                    t.chunks = Some(Chunks::Failed(reply.to_vec()));
                    self.refuse(reply, b"id", &id, reason);
                }
                None => {
                    t.chunks = Some(Chunks::Open(body));
                    let n = size.to_string().into_bytes();
                    self.put(&[b"250 2.0.0 ", &n, b" octets received"]);
                }
            },
            Some(Chunks::Failed(reply)) => {
                self.put(&[&reply]);
                if last {
                    self.tx = None;
                } else if let Some(t) = self.tx.as_mut() {
                    t.chunks = Some(Chunks::Failed(reply));
                }
            }
            None => {}
        }
        Ok(())
    }

    /// Reads the next `size` octets of input into the open message, if
    /// any; otherwise they are dropped.
    fn take_chunk(&mut self, mut size: u64) -> Result<(), Fatal> {
        while size > 0 {
            if self.conn.buffered().is_empty() {
                self.conn.fill()?;
            }
            let b = self.conn.buffered();
            let n = (b.len() as u64).min(size) as usize;
            if let Some(Chunks::Open(body)) = self.tx.as_mut().and_then(|t| t.chunks.as_mut()) {
                body.feed(&b[..n]);
            }
            self.conn.consume(n);
            size -= n as u64;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn arguments() {
        assert_eq!(parse(b"0"), Some((0, false)));
        assert_eq!(parse(b"0 LAST"), Some((0, true)));
        assert_eq!(parse(b"0012 last"), Some((12, true)));
        assert_eq!(parse(b"18446744073709551615"), Some((u64::MAX, false)));
        for bad in [
            &b""[..],
            b"LAST",
            b" 1",
            b"1 ",
            b"1  LAST",
            b"1 LAST ",
            b"1 FIRST",
            b"-1",
            b"+1",
            b"1x",
            b"18446744073709551616",
            b"1 LAST x",
        ] {
            assert_eq!(parse(bad), None, "{:?}", bad);
        }
    }
}

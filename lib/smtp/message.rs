//! A message being received (after DATA or the first BDAT): the DATA
//! state machine, submission's header completion and the queue it goes
//! to. Dropped before [`Body::end`], it is given up: nothing is queued
//! (a client that disconnects or stalls mid-message, RSET between BDAT
//! chunks, a refused message).

use super::data::Data;
use super::submission::Complete;
use crate::enqueue::Queue;

pub struct Body {
    q: Option<Queue>,
    /// Our id for the message (Received: line and logs).
    pub id: Vec<u8>,
    pub d: Data,
    sub: Option<Complete>,
    out: Vec<u8>,
    tmp: Vec<u8>,
}

impl Body {
    pub fn new(q: Queue, id: Vec<u8>, d: Data, sub: Option<Complete>) -> Body {
        Body {
            q: Some(q),
            id,
            d,
            sub,
            out: Vec::with_capacity(65536),
            tmp: Vec::new(),
        }
    }

    /// Bytes that go to the queue as they are (our Received: line).
    pub fn write(&mut self, b: &[u8]) {
        if let Some(q) = self.q.as_mut() {
            q.write(b);
        }
    }

    /// Feeds input from the client; Some(n) when the data ended after n
    /// bytes of it ([`Data::feed`]).
    pub fn feed(&mut self, input: &[u8]) -> Option<usize> {
        self.out.clear();
        let r = self.d.feed(input, &mut self.out);
        self.pass();
        r
    }

    /// Passes the stored bytes in `out` through submission to the queue.
    fn pass(&mut self) {
        if let Some(c) = self.sub.as_mut() {
            self.tmp.clear();
            c.feed(&self.out, &mut self.tmp);
            std::mem::swap(&mut self.out, &mut self.tmp);
        }
        if self.d.good() && !self.out.is_empty() {
            if let Some(q) = self.q.as_mut() {
                q.write(&self.out);
            }
        }
    }

    /// Ends the content ([`Data::last`], submission's held header) and
    /// hands the queue over for its verdict; None when already ended.
    pub fn end(&mut self) -> Option<Queue> {
        self.out.clear();
        self.d.last(&mut self.out);
        self.pass();
        if let Some(c) = self.sub.as_mut() {
            self.out.clear();
            c.finish(&mut self.out);
            if self.d.good() && !self.out.is_empty() {
                if let Some(q) = self.q.as_mut() {
                    q.write(&self.out);
                }
            }
        }
        self.q.take()
    }
}

impl Drop for Body {
    fn drop(&mut self) {
        if let Some(q) = self.q.take() {
            q.abort();
        }
    }
}

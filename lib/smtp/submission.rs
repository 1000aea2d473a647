//! Submission (RFC 6409 §8): a message from an authenticated client gets
//! the Date and Message-ID fields it lacks, as mail-inject adds them
//! (crate::date, submit::inject::message_id), at the end of its header.
//! The header is held back until its end, at most MAX_HEADER bytes; a
//! longer one gets the fields at the top instead.

/// The most header bytes held back while looking for Date and Message-ID.
pub const MAX_HEADER: usize = 65536;

pub struct Complete {
    held: Vec<u8>,
    done: bool,
    id_host: Vec<u8>,
}

/// Whether the header (LF line ends) has a field called `name`.
fn has(header: &[u8], name: &[u8]) -> bool {
    crate::header::fields(header)
        .iter()
        .any(|f| f.name.eq_ignore_ascii_case(name))
}

impl Complete {
    pub fn new(id_host: &[u8]) -> Complete {
        Complete {
            held: Vec::new(),
            done: false,
            id_host: id_host.to_vec(),
        }
    }

    fn missing(&self, header: &[u8]) -> Vec<u8> {
        let mut add = Vec::new();
        if !has(header, b"Date") {
            add.extend_from_slice(b"Date: ");
            add.extend_from_slice(crate::date::now().as_bytes());
            add.push(b'\n');
        }
        if !has(header, b"Message-ID") {
            let id = crate::submit::inject::Identity {
                id_host: self.id_host.clone(),
                ..Default::default()
            };
            add.extend_from_slice(b"Message-ID: ");
            add.extend_from_slice(&crate::submit::inject::message_id(&id));
            add.push(b'\n');
        }
        add
    }

    /// Passes stored bytes (LF line ends) on to `out`, the header once
    /// its end is known, with the missing fields.
    pub fn feed(&mut self, b: &[u8], out: &mut Vec<u8>) {
        if self.done {
            out.extend_from_slice(b);
            return;
        }
        self.held.extend_from_slice(b);
        let end = crate::header::blank_line(&self.held).map(|(e, _)| e);
        match end {
            Some(e) => {
                let add = self.missing(&self.held[..e]);
                out.extend_from_slice(&self.held[..e]);
                out.extend_from_slice(&add);
                out.extend_from_slice(&self.held[e..]);
            }
            None if self.held.len() > MAX_HEADER => {
                out.extend_from_slice(&self.missing(b""));
                out.extend_from_slice(&self.held);
            }
            None => return,
        }
        self.held = Vec::new();
        self.done = true;
    }

    /// The end of the message: a message that is all header gets the
    /// fields after it.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        if self.done {
            return;
        }
        let mut h = std::mem::take(&mut self.held);
        if !h.is_empty() && !h.ends_with(b"\n") {
            h.push(b'\n');
        }
        let add = self.missing(&h);
        out.extend_from_slice(&h);
        out.extend_from_slice(&add);
        self.done = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(chunks: &[&[u8]]) -> String {
        let mut c = Complete::new(b"mail.example.org");
        let mut out = Vec::new();
        for ch in chunks {
            c.feed(ch, &mut out);
        }
        c.finish(&mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn adds_what_is_missing_at_the_end_of_the_header() {
        let o = run(&[b"Subject: a\nDa", b"te: x\n", b"\nbody\n"]);
        assert!(o.starts_with("Subject: a\nDate: x\nMessage-ID: <"), "{o}");
        assert!(o.ends_with("@mail.example.org>\n\nbody\n"), "{o}");
        let o = run(&[b"message-id: <a@b>\nDATE: y\n\nbody\n"]);
        assert_eq!(o, "message-id: <a@b>\nDATE: y\n\nbody\n");
        let o = run(&[b"Subject: only header"]);
        assert!(o.starts_with("Subject: only header\nDate: "), "{o}");
        let o = run(&[b"\nno header\n"]);
        assert!(
            o.starts_with("Date: ") && o.ends_with(">\n\nno header\n"),
            "{o}"
        );
        assert!(!has(b"X-Date: 1\n", b"Date"));
        // The obsolete syntax (RFC 5322 4.5) names a field too.
        let o = run(&[b"Message-ID : <a@b>\nDate\t: y\n\nbody\n"]);
        assert_eq!(o, "Message-ID : <a@b>\nDate\t: y\n\nbody\n");
    }
}

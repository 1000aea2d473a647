//! mbox delivery (deliver-mbox(8)): append a `From ` line, the added
//! header lines and the message with mboxrd `>From ` quoting, then a blank
//! line; under an fcntl and an flock lock taken with a timeout; on any
//! error the file is cut back to its old length, so nothing half-written
//! stays.

use crate::deliver::Fail;
use std::fs::File;
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// mboxrd quoting, streaming: a line that matches `>*From ` gets one more
/// `>` in front. Feed chunks with [`Quoter::feed`], then call
/// [`Quoter::finish`].
pub struct Quoter {
    /// Start of the current line while it may still become `>*From `.
    pending: Vec<u8>,
    /// Past the point of deciding in the current line.
    decided: bool,
    /// The last byte written.
    last: Option<u8>,
}

impl Default for Quoter {
    fn default() -> Self {
        Quoter::new()
    }
}

impl Quoter {
    /// A quoter at the start of a line (after the `From ` line).
    pub fn new() -> Quoter {
        Quoter {
            pending: Vec::new(),
            decided: false,
            last: Some(b'\n'),
        }
    }

    pub fn feed<W: Write>(&mut self, out: &mut W, mut b: &[u8]) -> io::Result<()> {
        while !b.is_empty() {
            if self.decided {
                let n = memchr::memchr(b'\n', b).map_or(b.len(), |i| i + 1);
                out.write_all(&b[..n])?;
                self.last = Some(b[n - 1]);
                if b[n - 1] == b'\n' {
                    self.decided = false;
                }
                b = &b[n..];
                continue;
            }
            let c = b[0];
            b = &b[1..];
            self.pending.push(c);
            let gt = self.pending.iter().take_while(|&&x| x == b'>').count();
            let rest = &self.pending[gt..];
            if c == b'\n' {
                self.flush_pending(out, false)?;
            } else if rest == b"From " {
                self.flush_pending(out, true)?;
                self.decided = true;
            } else if !b"From ".starts_with(rest) {
                self.flush_pending(out, false)?;
                self.decided = true;
            }
        }
        Ok(())
    }

    fn flush_pending<W: Write>(&mut self, out: &mut W, quote: bool) -> io::Result<()> {
        if quote {
            out.write_all(b">")?;
        }
        out.write_all(&self.pending)?;
        if let Some(&l) = self.pending.last() {
            self.last = Some(l);
        }
        self.pending.clear();
        Ok(())
    }

    /// Ends the message: completes a partial last line, adds the blank line.
    pub fn finish<W: Write>(&mut self, out: &mut W) -> io::Result<()> {
        self.flush_pending(out, false)?;
        if self.last != Some(b'\n') {
            out.write_all(b"\n")?;
        }
        out.write_all(b"\n")
    }
}

/// Takes an fcntl write lock and an flock on `f`, retrying for at most
/// `timeout_ms`. Ok(false) on timeout.
pub fn lock(f: &File, timeout_ms: u64) -> io::Result<bool> {
    let fd = f.as_raw_fd();
    let deadline = crate::sys::now_ms() + timeout_ms;
    let mut fcntl_done = false;
    loop {
        if !fcntl_done {
            fcntl_done = crate::sys::locks::try_record_lock(fd)?;
        }
        if fcntl_done && crate::sys::locks::try_lock(fd)? {
            return Ok(true);
        }
        if crate::sys::now_ms() >= deadline {
            return Ok(false);
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// Appends the message read from `fd` to the mbox `path`: `from_line`,
/// `pre`, the quoted message, a blank line. Waits at most `lock_ms` for
/// the locks. Every failure is temporary (111).
pub fn deliver(
    path: &Path,
    from_line: &[u8],
    pre: &[u8],
    fd: i32,
    lock_ms: u64,
) -> Result<(), Fail> {
    crate::sys::signal_ignore(libc::SIGXFSZ, true);
    let name = crate::control::bytes(path).to_vec();
    let f = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .custom_flags(libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| Fail::sys(&[b"Unable to open ", &name[..]].concat(), &e))?;
    match lock(&f, lock_ms) {
        Ok(true) => {}
        Ok(false) => {
            let t = format!(
                "File has been locked for {} seconds straight. (#4.2.1)",
                lock_ms / 1000
            );
            return Err(Fail::temp(t.as_bytes()));
        }
        Err(e) => return Err(Fail::sys(&[b"Unable to lock ", &name[..]].concat(), &e)),
    }
    let old = f
        .metadata()
        .map_err(|e| Fail::sys(&[b"Unable to stat ", &name[..]].concat(), &e))?
        .len();
    match append(&f, from_line, pre, fd) {
        Ok(()) => Ok(()),
        Err((what, e)) => {
            let _ = f.set_len(old);
            let _ = f.sync_all();
            let mut t = what.to_vec();
            if what == b"Unable to write" {
                t.extend_from_slice(b" ");
                t.extend_from_slice(&name);
            }
            Err(Fail::sys(&t, &e))
        }
    }
}

fn append(
    f: &File,
    from_line: &[u8],
    pre: &[u8],
    fd: i32,
) -> Result<(), (&'static [u8], io::Error)> {
    let w = |e: io::Error| (&b"Unable to write"[..], e);
    let mut out = io::BufWriter::with_capacity(65536, f);
    out.write_all(from_line).map_err(w)?;
    out.write_all(pre).map_err(w)?;
    let mut q = Quoter::default();
    let mut buf = vec![0u8; 65536];
    loop {
        match crate::sys::read(fd, &mut buf) {
            Ok(0) => break,
            Ok(n) => q.feed(&mut out, &buf[..n]).map_err(w)?,
            Err(e) => return Err((b"Unable to read message", e)),
        }
    }
    q.finish(&mut out).map_err(w)?;
    out.flush().map_err(w)?;
    drop(out);
    f.sync_all().map_err(w)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quote(chunks: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut q = Quoter::default();
        for c in chunks {
            q.feed(&mut out, c).unwrap();
        }
        q.finish(&mut out).unwrap();
        out
    }

    #[test]
    fn mboxrd_quoting() {
        let m: &[u8] = b"From a\nx From b\n>From c\n>>From d\nFrom\nFro\n>\n\nFrom ";
        let want: &[u8] = b">From a\nx From b\n>>From c\n>>>From d\nFrom\nFro\n>\n\n>From \n\n";
        assert_eq!(quote(&[m]), want);
        // Byte by byte gives the same.
        let bytes: Vec<&[u8]> = m.chunks(1).collect();
        assert_eq!(quote(&bytes), want);
        assert_eq!(quote(&[b"a\n"]), b"a\n\n");
        assert_eq!(quote(&[b""]), b"\n");
        assert_eq!(quote(&[b"no newline"]), b"no newline\n\n");
    }

    #[test]
    fn lock_times_out_and_delivery_leaves_the_file_alone() {
        let d = std::env::temp_dir().join(format!("pipemail-mbox-unit-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&d);
        let p = d.join("mbox");
        std::fs::write(&p, b"old\n").unwrap();
        let holder = File::open(&p).unwrap();
        crate::sys::locks::lock(holder.as_raw_fd()).unwrap();
        let devnull = File::open("/dev/null").unwrap();
        let t0 = std::time::Instant::now();
        let r = deliver(&p, b"From x\n", b"", devnull.as_raw_fd(), 300);
        assert!(t0.elapsed() >= std::time::Duration::from_millis(300));
        let f = r.unwrap_err();
        assert_eq!(f.code, 111);
        assert!(f.text.starts_with(b"File has been locked"));
        drop(holder);
        deliver(&p, b"From x\n", b"", devnull.as_raw_fd(), 300).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"old\nFrom x\n\n");
        let _ = std::fs::remove_dir_all(&d);
    }
}

//! IDLE (RFC 2177): waiting on the client and on inotify for changes to report.

use std::io;
use std::path::Path;

use super::{bad, ok, Done, Session};

impl Session {
    pub(super) fn idle(&mut self, tag: &[u8]) -> Done {
        self.out.line(&[b"+ idling"]);
        self.sync_report();
        let _ = self.out.flush();
        let ino = self.sel.as_ref().map(|f| watch(&f.dir));
        let started = crate::sys::now();
        let poll_secs = crate::imap::env_number("IMAPIDLEPOLL", 30).max(1);
        loop {
            if !self.rd.buffered() {
                let mut fds = vec![crate::sys::pollfd(0, libc::POLLIN)];
                if let Some(Some(i)) = &ino {
                    fds.push(crate::sys::pollfd(i.fd(), libc::POLLIN));
                }
                match crate::sys::poll(&mut fds, (poll_secs * 1000) as i32) {
                    Err(e) if e.kind() != io::ErrorKind::Interrupted => return Done::Bye,
                    _ => {}
                }
                if fds[0].revents == 0 {
                    if let Some(Some(i)) = &ino {
                        i.drain();
                    }
                    if crate::sys::now().saturating_sub(started) > self.rd.timeout {
                        self.out.line(&[b"* BYE Disconnected for inactivity"]);
                        return Done::Bye;
                    }
                    self.sync_report();
                    if self.out.flush().is_err() {
                        return Done::Bye;
                    }
                    continue;
                }
            }
            let mut line = Vec::new();
            match self.rd.line(&mut line, 1000) {
                Ok(Some(true)) => {}
                _ => return Done::Bye,
            }
            let _ = tag;
            if line.eq_ignore_ascii_case(b"DONE") {
                return ok("Idle completed.");
            }
            return bad("Expected DONE.");
        }
    }
}

/// inotify on a folder's new/ and cur/, for IDLE.
fn watch(dir: &Path) -> Option<crate::sys::fs::Inotify> {
    let (new, cur) = (dir.join("new"), dir.join("cur"));
    let mask = libc::IN_CREATE | libc::IN_MOVED_TO | libc::IN_MOVED_FROM | libc::IN_DELETE;
    crate::sys::fs::Inotify::new(&[&new, &cur], mask)
}

//! Delivery processes and local-spawn(8)'s side of its protocol.
//!
//! queue-run → local-spawn: a SOCK_SEQPACKET socket (fd 6 under
//! local-spawn). One packet per delivery, at most [`REQUEST_MAX`] bytes,
//! NUL-terminated fields, with exactly one descriptor attached by
//! SCM_RIGHTS: the message, a regular file open read-only. local-spawn
//! never opens a path in the queue; a packet without such a descriptor is
//! refused with a Z reply.
//!
//! - `ID` NUL `L` NUL `SENDER` NUL `RECIPIENT` NUL: a local delivery;
//! - `ID` NUL `R` NUL `HOST` NUL `SENDER` NUL (`RECIPIENT` NUL)...: a remote
//!   delivery of at most [`REMOTE_RCPTS_MAX`] recipients.
//!
//! ID is a decimal delivery number. local-spawn → queue-run: a pipe (fd 7),
//! one reply per request, in any order:
//!
//! - `ID` NUL then `K`, `Z` or `D` and the report text, NUL (local);
//! - `ID` NUL `R` CODE SP LEN NUL, then LEN bytes: remote-send's exit code
//!   (`-` when it was killed) and its output (the qmail-remote report).
//!
//! Local: `deliver-local SENDER RECIPIENT` (or `$QMAILLOCAL`), fd 0 the
//! message, fds 1 and 2 a pipe whose first 3000 bytes are the report; as
//! root, run as the recipient's account (users::lookup), never uid 0.
//! Exit 0 → K, 100 → D, anything else or a crash → Z. Remote:
//! `remote-send HOST SENDER RECIPIENT...` (or `$QMAILREMOTE`), as root run
//! as `$PMAILR`, else the account pmailr, else 65534.

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// How much of a delivery's output becomes its report.
pub const REPORT_MAX: usize = 3000;

/// A running child whose stdout+stderr we collect.
pub struct Kid {
    pub pid: i32,
    pub fd: i32,
    pub out: Vec<u8>,
    pub limit: usize,
    pub tag: u64,
    /// A remote-send run (its reply carries the raw report).
    pub remote: bool,
    /// A linked delivery's socket for new/ descriptors to sync (group
    /// commit), or -1.
    pub sync: i32,
}

impl Kid {
    /// Reads what is there; true at end of file.
    pub fn read_some(&mut self) -> bool {
        let mut buf = [0u8; 8192];
        match crate::sys::read(self.fd, &mut buf) {
            Ok(0) => true,
            Ok(n) => {
                let room = self.limit.saturating_sub(self.out.len());
                self.out.extend_from_slice(&buf[..n.min(room)]);
                false
            }
            Err(e) => e.kind() != io::ErrorKind::WouldBlock,
        }
    }
    /// Closes the pipe and reaps the child: its exit code, None if killed.
    pub fn finish(self) -> Option<i32> {
        crate::sys::close(self.fd);
        if self.sync >= 0 {
            crate::sys::close(self.sync);
        }
        match crate::sys::waitpid(self.pid) {
            Ok(st) => crate::sys::exit_code(st),
            Err(_) => None,
        }
    }
}

/// Starts `prog args...` with fd 0 = `stdin`, fds 1 and 2 a pipe to us;
/// with `ids`, as that uid/gid (we must be root). If exec fails the child
/// prints why and exits 111.
pub fn start(
    prog: &Path,
    args: &[&[u8]],
    stdin: i32,
    ids: Option<(u32, u32)>,
    tag: u64,
) -> io::Result<Kid> {
    start_child(prog, args, stdin, ids, tag, None)
}

/// [`start`], or with `linked` = (sender, recipient) a forked child that
/// runs deliver-local's code without exec.
fn start_child(
    prog: &Path,
    args: &[&[u8]],
    stdin: i32,
    ids: Option<(u32, u32)>,
    tag: u64,
    linked: Option<(&[u8], &[u8])>,
) -> io::Result<Kid> {
    let cprog = crate::sys::cpath(prog)?;
    let mut argv: Vec<CString> = vec![cprog.clone()];
    for a in args {
        argv.push(crate::sys::cstr(a)?);
    }
    let (r, w) = crate::sys::pipe()?;
    let (sync_r, sync_w) = match linked {
        Some(_) => socketpair().unwrap_or((-1, -1)),
        None => (-1, -1),
    };
    let mut fail = b"unable to run ".to_vec();
    fail.extend_from_slice(prog.as_os_str().as_bytes());
    fail.extend_from_slice(b": ");
    use crate::sys::proc::{self, Fork};
    let pid = match proc::fork() {
        Ok(Fork::Parent(pid)) => pid,
        Err(e) => {
            for fd in [r, w, sync_r, sync_w] {
                if fd >= 0 {
                    crate::sys::close(fd);
                }
            }
            return Err(e);
        }
        Ok(Fork::Child) => {
            use crate::sys::signals::{self, Action};
            let dup = crate::sys::dup2;
            if dup(stdin, 0).is_err() || dup(w, 1).is_err() || dup(w, 2).is_err() {
                proc::exit_now(111);
            }
            let sigs = [
                libc::SIGPIPE,
                libc::SIGTERM,
                libc::SIGHUP,
                libc::SIGALRM,
                libc::SIGCHLD,
            ];
            signals::set(&sigs, Action::Default);
            signals::set_mask(&[]);
            if let Some((uid, gid)) = ids {
                if crate::sys::drop_privileges(uid, gid, &[gid]).is_err() {
                    let m = b"unable to switch to the recipient's uid (#4.3.0)\n";
                    crate::sys::write_ignored(1, m);
                    proc::exit_now(111);
                }
            }
            if let Some((sender, rcpt)) = linked {
                // deliver-local's code is linked in: no exec (DESIGN.md, "Speed").
                crate::exit::set_prog("deliver-local", false);
                if sync_w >= 0 {
                    crate::maildir::defer_dir_syncs(sync_w);
                }
                let (code, mut report) = crate::deliver::deliver_local(sender, rcpt);
                report.push(b'\n');
                let _ = crate::sys::write_all(1, &report);
                proc::exit_now(code);
            }
            let e = proc::execv(&cprog, &argv);
            let mut m = fail;
            m.extend_from_slice(crate::exit::errtext(&e).as_bytes());
            m.extend_from_slice(b" (#4.3.0)\n");
            crate::sys::write_ignored(1, &m);
            proc::exit_now(111);
        }
    };
    crate::sys::close(w);
    if sync_w >= 0 {
        crate::sys::close(sync_w);
    }
    Ok(Kid {
        pid,
        fd: r,
        out: Vec::new(),
        limit: REPORT_MAX,
        tag,
        remote: false,
        sync: sync_r,
    })
}

/// The report letter for deliver-local's exit code.
pub fn local_letter(code: Option<i32>) -> u8 {
    match code {
        Some(0) => b'K',
        Some(100) => b'D',
        _ => b'Z',
    }
}

/// Largest request packet.
pub const REQUEST_MAX: usize = 65536;
/// Most recipients in one remote request (so a packet stays under
/// [`REQUEST_MAX`]: addresses are at most 1002 bytes).
pub const REMOTE_RCPTS_MAX: usize = 50;

fn fields(v: &mut Vec<u8>, f: &[&[u8]]) {
    for x in f {
        v.extend_from_slice(x);
        v.push(0);
    }
}

/// A local request packet.
pub fn request(id: u64, sender: &[u8], rcpt: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    fields(&mut v, &[id.to_string().as_bytes(), b"L", sender, rcpt]);
    v
}

/// A remote request packet.
pub fn request_remote(id: u64, host: &[u8], sender: &[u8], rcpts: &[&[u8]]) -> Vec<u8> {
    let mut v = Vec::new();
    fields(&mut v, &[id.to_string().as_bytes(), b"R", host, sender]);
    fields(&mut v, rcpts);
    v
}

/// A local reply record; NULs in the text become spaces.
pub fn reply(id: u64, letter: u8, text: &[u8]) -> Vec<u8> {
    let mut v = format!("{}\0", id).into_bytes();
    v.push(letter);
    v.extend(text.iter().map(|&c| if c == 0 { b' ' } else { c }));
    v.push(0);
    v
}

/// A remote reply record: exit code (None: killed) and raw output.
pub fn reply_remote(id: u64, code: Option<i32>, out: &[u8]) -> Vec<u8> {
    let c = code.map_or("-".to_string(), |c| c.to_string());
    let mut v = format!("{}\0R{} {}\0", id, c, out.len()).into_bytes();
    v.extend_from_slice(out);
    v
}

/// A reply as queue-run reads it.
#[derive(Debug, PartialEq, Eq)]
pub enum Reply {
    /// Letter (or 0 when malformed) and text.
    Local(u8, Vec<u8>),
    Remote(Option<i32>, Vec<u8>),
}

/// Takes one whole reply off the front of `buf`, if it is all there.
pub fn take_reply(buf: &mut Vec<u8>) -> Option<(u64, Reply)> {
    let z1 = memchr::memchr(0, buf)?;
    let z2 = z1 + 1 + memchr::memchr(0, &buf[z1 + 1..])?;
    let id = crate::parse::number(&buf[..z1]).unwrap_or(0);
    let f = &buf[z1 + 1..z2];
    if let Some(r) = f.strip_prefix(b"R") {
        let sp = memchr::memchr(b' ', r).unwrap_or(r.len());
        let code = crate::parse::number(&r[..sp]).map(|c| c as i32);
        let len = crate::parse::number(r.get(sp + 1..).unwrap_or(b"")).unwrap_or(0) as usize;
        let end = z2 + 1 + len;
        if buf.len() < end {
            return None;
        }
        let out = buf[z2 + 1..end].to_vec();
        buf.drain(..end);
        return Some((id, Reply::Remote(code, out)));
    }
    let rep = match f.split_first() {
        Some((&l, t)) if matches!(l, b'K' | b'Z' | b'D') => Reply::Local(l, t.to_vec()),
        _ => Reply::Local(0, Vec::new()),
    };
    buf.drain(..=z2);
    Some((id, rep))
}

/// A SOCK_SEQPACKET socket pair, both ends close-on-exec.
pub fn socketpair() -> io::Result<(i32, i32)> {
    crate::sys::net::socketpair(libc::SOCK_SEQPACKET)
}

/// The message descriptor of a request: one regular file, open read-only
/// (so neither a FIFO nor a device can stall or feed a delivery).
fn message_fd(mut fds: Vec<OwnedFd>) -> Result<OwnedFd, &'static [u8]> {
    const NO: &[u8] = b"local-spawn got no message descriptor (#4.3.0)";
    if fds.len() != 1 {
        return Err(NO);
    }
    let fd = fds.pop().ok_or(NO)?;
    let raw = fd.as_raw_fd();
    if !crate::sys::fs::fstat(raw).is_ok_and(|st| crate::sys::fs::file_type(&st) == libc::S_IFREG) {
        return Err(b"local-spawn got a message that is not a regular file (#4.3.0)");
    }
    if !crate::sys::status_flags(raw).is_ok_and(|fl| fl & libc::O_ACCMODE == libc::O_RDONLY) {
        return Err(b"local-spawn got a message not open read-only (#4.3.0)");
    }
    if crate::sys::lseek(raw, 0, libc::SEEK_SET).ok() != Some(0) {
        return Err(b"local-spawn got a message it cannot rewind (#4.3.0)");
    }
    Ok(fd)
}

/// The uid/gid remote-send runs as when we are root: `$PMAILR` (a name
/// or a number), else the account `pmailr`, else 65534.
pub fn remote_ids() -> Option<(u32, u32)> {
    if crate::sys::geteuid() != 0 {
        return None;
    }
    let name = std::env::var_os("PMAILR")
        .map(std::os::unix::ffi::OsStringExt::into_vec)
        .unwrap_or(b"pmailr".to_vec());
    match super::run::account_ids(&name) {
        Some((0, _)) | None => Some((65534, 65534)),
        ids => ids,
    }
}

/// Starts one delivery for a request packet; Err is the reply when it
/// cannot start.
fn start_request(pkt: &[u8], fds: Vec<OwnedFd>) -> Result<Kid, Vec<u8>> {
    let f: Vec<&[u8]> = pkt
        .strip_suffix(b"\0")
        .unwrap_or(b"")
        .split(|&c| c == 0)
        .collect();
    let tag = f.first().and_then(|t| crate::parse::number(t)).unwrap_or(0);
    let z = |t: &[u8]| reply(tag, b'Z', t);
    let fd = message_fd(fds).map_err(z)?;
    match f.get(1).copied() {
        Some(b"L") if f.len() == 4 => {
            start_local(fd.as_raw_fd(), f[2], f[3], tag).map_err(|t| z(&t))
        }
        Some(b"R") if f.len() >= 5 && f.len() - 4 <= REMOTE_RCPTS_MAX => {
            let prog = crate::exec::program("QMAILREMOTE", "remote-send");
            let mut k = start(&prog, &f[2..], fd.as_raw_fd(), remote_ids(), tag).map_err(|e| {
                z(format!("unable to fork: {} (#4.3.0)", crate::exit::errtext(&e)).as_bytes())
            })?;
            k.remote = true;
            k.limit = 10000 + 1100 * (f.len() - 4);
            Ok(k)
        }
        _ => Err(z(b"local-spawn got a malformed request (#4.3.0)")),
    }
}

/// Starts one local delivery: Err is the reply text when it cannot start.
fn start_local(fd: i32, sender: &[u8], rcpt: &[u8], tag: u64) -> Result<Kid, Vec<u8>> {
    let ids = if crate::sys::geteuid() == 0 {
        let (local, _) = crate::parse::split_addr(rcpt);
        match crate::users::lookup(local) {
            Ok(Some(a)) if a.uid == 0 => {
                return Err(b"refusing to deliver as root (#4.3.0)".to_vec())
            }
            Ok(Some(a)) => Some((a.uid, a.gid)),
            Ok(None) => None, // deliver-local finds the account and switches itself
            Err(e) => return Err(format!("{} (#4.3.0)", e).into_bytes()),
        }
    } else {
        None
    };
    let prog = crate::exec::program("QMAILLOCAL", "deliver-local");
    let linked = match std::env::var_os("QMAILLOCAL") {
        Some(v) if !v.is_empty() => None,
        _ => Some((sender, rcpt)),
    };
    start_child(&prog, &[sender, rcpt], fd, ids, tag, linked)
        .map_err(|e| format!("unable to fork: {} (#4.3.0)", crate::exit::errtext(&e)).into_bytes())
}

use crate::sys::net::Packet;
use std::os::fd::{AsRawFd, OwnedFd};

fn nonblock(fd: i32) {
    let _ = crate::sys::set_nonblock(fd);
}

/// The directories (open descriptors) a finished linked delivery handed
/// over for syncing; Err when it sent something that is not one.
fn sync_dirs(sock: i32) -> Result<Vec<OwnedFd>, ()> {
    let mut v = Vec::new();
    let mut buf = [0u8; 16];
    loop {
        match crate::sys::net::recv_with_fds(sock, &mut buf) {
            Ok(Packet::Got(_, fds)) => {
                for fd in fds {
                    let dir = crate::sys::fs::fstat(fd.as_raw_fd())
                        .is_ok_and(|st| crate::sys::fs::file_type(&st) == libc::S_IFDIR);
                    if !dir || v.len() >= crate::maildir::DEFER_MAX {
                        return Err(());
                    }
                    v.push(fd);
                }
            }
            Ok(_) => return Ok(v),
            Err(_) => return Err(()),
        }
    }
}

/// The group commit of local-spawn: the new/ directories of every
/// delivery that finished in this round are made durable together, one
/// fsync when there is one directory, else one syncfs(2) per file system,
/// before any of them is reported. Returns the tags of the successful
/// deliveries whose directories could not be synced (to report Z).
type Done = (u64, bool, Vec<u8>, Option<i32>, Result<Vec<OwnedFd>, ()>);
fn group_sync(done: &mut [Done]) -> Vec<u64> {
    let mut bad = Vec::new();
    let ok = |d: &Done| d.3 == Some(0);
    let mut fds: Vec<(u64, i32)> = Vec::new();
    for d in done.iter().filter(|d| ok(d)) {
        match &d.4 {
            Ok(v) => fds.extend(v.iter().map(|f| (d.0, f.as_raw_fd()))),
            Err(()) => bad.push(d.0),
        }
    }
    if fds.len() == 1 {
        if crate::sys::fsync(fds[0].1).is_err() {
            bad.push(fds[0].0);
        }
        return bad;
    }
    let mut devs: Vec<(u64, bool)> = Vec::new();
    for &(_, fd) in &fds {
        let dev = crate::sys::fs::fstat(fd).map_or(0, |st| st.st_dev);
        if !devs.iter().any(|x| x.0 == dev) {
            let r = crate::sys::syncfs(&fd).is_ok();
            devs.push((dev, r));
        }
        if !devs.iter().any(|x| x.0 == dev && x.1) {
            bad.extend(fds.iter().filter(|x| x.1 == fd).map(|x| x.0));
        }
    }
    bad
}

/// local-spawn's loop: requests on the socket `req`, replies on `rep`.
/// Returns when `req` is closed (queue-run is gone) and every delivery
/// has ended. Replies are buffered so local-spawn never blocks on a busy
/// queue-run.
pub fn serve(req: i32, rep: i32) {
    nonblock(rep);
    let mut outbuf: Vec<u8> = Vec::new();
    let mut kids: Vec<Kid> = Vec::new();
    let mut req_open = true;
    let mut rep_open = true;
    let mut pkt_buf = vec![0u8; REQUEST_MAX];
    loop {
        if !req_open && kids.is_empty() && (outbuf.is_empty() || !rep_open) {
            return;
        }
        let mut pfds: Vec<libc::pollfd> = Vec::with_capacity(kids.len() + 2);
        pfds.push(libc::pollfd {
            fd: if req_open { req } else { -1 },
            events: libc::POLLIN,
            revents: 0,
        });
        pfds.push(libc::pollfd {
            fd: if rep_open && !outbuf.is_empty() {
                rep
            } else {
                -1
            },
            events: libc::POLLOUT,
            revents: 0,
        });
        for k in &kids {
            pfds.push(libc::pollfd {
                fd: k.fd,
                events: libc::POLLIN,
                revents: 0,
            });
        }
        if crate::sys::poll(&mut pfds, -1).is_err() {
            continue; // EINTR: a forwarded signal
        }
        if pfds[0].revents != 0 {
            // A burst of requests is read in one go (at most 64 a round).
            for _ in 0..64 {
                match crate::sys::net::recv_with_fds(req, &mut pkt_buf) {
                    Ok(Packet::None) => break,
                    Ok(Packet::End) | Err(_) => {
                        req_open = false;
                        break;
                    }
                    Ok(Packet::Got(pkt, fds)) => {
                        let pkt = pkt.unwrap_or_default();
                        match start_request(&pkt, fds) {
                            Ok(k) => kids.push(k),
                            Err(rep) => outbuf.extend_from_slice(&rep),
                        }
                    }
                }
            }
        }
        if pfds[1].revents != 0 {
            match crate::sys::write_nb(rep, &outbuf) {
                Ok(Some(n)) => drop(outbuf.drain(..n)),
                Ok(None) => {}
                Err(_) => {
                    rep_open = false;
                    outbuf.clear();
                }
            }
        }
        let ready: Vec<usize> = (0..pfds.len() - 2)
            .filter(|&i| pfds[i + 2].revents != 0)
            .collect();
        let mut ended = Vec::new();
        for i in ready {
            if kids[i].read_some() {
                ended.push(i);
            }
        }
        let mut done = Vec::new();
        for i in ended.into_iter().rev() {
            let k = kids.remove(i);
            let dirs = if k.sync >= 0 {
                sync_dirs(k.sync)
            } else {
                Ok(Vec::new())
            };
            let (tag, remote) = (k.tag, k.remote);
            let out = k.out.clone();
            let code = k.finish();
            done.push((tag, remote, out, code, dirs));
        }
        let synced = group_sync(&mut done);
        for (tag, remote, out, code, _) in done {
            if !rep_open {
                continue;
            }
            if remote {
                outbuf.extend_from_slice(&reply_remote(tag, code, &out));
                continue;
            }
            let mut text = crate::parse::trim(&out).to_vec();
            let mut letter = local_letter(code);
            if text.is_empty() && code.is_none() {
                text = b"deliver-local crashed (#4.3.0)".to_vec();
            }
            if letter == b'K' && synced.contains(&tag) {
                letter = b'Z';
                text = b"Unable to sync new/ (#4.3.0)".to_vec();
            }
            outbuf.extend_from_slice(&reply(tag, letter, &text));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn fields_and_records() {
        assert_eq!(request(7, b"", b"u@x"), b"7\0L\0\0u@x\0");
        assert_eq!(
            request_remote(8, b"h", b"s", &[b"a@h", b"b@h"]),
            b"8\0R\0h\0s\0a@h\0b@h\0"
        );
        let mut b = reply(3, b'K', b"ok\0x");
        assert_eq!(b, b"3\0Kok x\0");
        b.extend_from_slice(&reply_remote(4, Some(0), b"r\0Kfine\0"));
        b.extend_from_slice(&reply_remote(5, None, b""));
        b.extend_from_slice(b"6\0R0 10\0r\0");
        assert_eq!(
            take_reply(&mut b),
            Some((3, Reply::Local(b'K', b"ok x".to_vec())))
        );
        assert_eq!(
            take_reply(&mut b),
            Some((4, Reply::Remote(Some(0), b"r\0Kfine\0".to_vec())))
        );
        assert_eq!(
            take_reply(&mut b),
            Some((5, Reply::Remote(None, Vec::new())))
        );
        assert_eq!(take_reply(&mut b), None, "incomplete");
        assert_eq!(b, b"6\0R0 10\0r\0");
        assert_eq!(local_letter(Some(0)), b'K');
        assert_eq!(local_letter(Some(100)), b'D');
        assert_eq!(local_letter(Some(99)), b'Z');
        assert_eq!(local_letter(None), b'Z');
    }
}

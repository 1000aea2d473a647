//! Delivery processes and local-spawn(8)'s side of the pipe protocol.
//!
//! queue-run → local-spawn, one request per local delivery:
//! `ID` NUL `MSGID` NUL `SENDER` NUL `RECIPIENT` NUL, where ID is a decimal
//! delivery number and MSGID names `queue/mess/MSGID`.
//! local-spawn → queue-run, one reply per request, in any order:
//! `ID` NUL then `K`, `Z` or `D` and the delivery's report text, NUL.
//!
//! local-spawn starts `deliver-local SENDER RECIPIENT` (or `$QMAILLOCAL`)
//! with fd 0 the message (opened read-only, seekable) and fds 1 and 2 a
//! pipe whose first 3000 bytes are the report. Started as root it runs the
//! delivery as the recipient's account (users::lookup), never as uid 0.
//! Exit 0 → K, 100 → D, anything else or a crash → Z.

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
    let mut ptrs: Vec<*const libc::c_char> = argv.iter().map(|c| c.as_ptr()).collect();
    ptrs.push(std::ptr::null());
    let (r, w) = crate::sys::pipe()?;
    let mut fail = b"unable to run ".to_vec();
    fail.extend_from_slice(prog.as_os_str().as_bytes());
    fail.extend_from_slice(b": ");
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        let e = io::Error::last_os_error();
        crate::sys::close(r);
        crate::sys::close(w);
        return Err(e);
    }
    if pid == 0 {
        unsafe {
            if libc::dup2(stdin, 0) < 0 || libc::dup2(w, 1) < 0 || libc::dup2(w, 2) < 0 {
                libc::_exit(111);
            }
            for s in [
                libc::SIGPIPE,
                libc::SIGTERM,
                libc::SIGHUP,
                libc::SIGALRM,
                libc::SIGCHLD,
            ] {
                libc::signal(s, libc::SIG_DFL);
            }
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
            if let Some((uid, gid)) = ids {
                if crate::sys::drop_privileges(uid, gid, &[gid]).is_err() {
                    let m = b"unable to switch to the recipient's uid (#4.3.0)\n";
                    libc::write(1, m.as_ptr() as *const libc::c_void, m.len());
                    libc::_exit(111);
                }
            }
            if let Some((sender, rcpt)) = linked {
                // deliver-local's code is linked in: no exec (DESIGN.md, "Speed").
                crate::exit::set_prog("deliver-local", false);
                let (code, mut report) = crate::deliver::deliver_local(sender, rcpt);
                report.push(b'\n');
                let _ = crate::sys::write_all(1, &report);
                libc::_exit(code);
            }
            libc::execv(cprog.as_ptr(), ptrs.as_ptr());
            let e = io::Error::last_os_error();
            let mut m = fail;
            m.extend_from_slice(crate::exit::errtext(&e).as_bytes());
            m.extend_from_slice(b" (#4.3.0)\n");
            libc::write(1, m.as_ptr() as *const libc::c_void, m.len());
            libc::_exit(111);
        }
    }
    crate::sys::close(w);
    Ok(Kid {
        pid,
        fd: r,
        out: Vec::new(),
        limit: REPORT_MAX,
        tag,
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

/// A request record.
pub fn request(id: u64, msgid: &str, sender: &[u8], rcpt: &[u8]) -> Vec<u8> {
    let mut v = format!("{}\0{}\0", id, msgid).into_bytes();
    v.extend_from_slice(sender);
    v.push(0);
    v.extend_from_slice(rcpt);
    v.push(0);
    v
}

/// A reply record; NULs in the text become spaces.
pub fn reply(id: u64, letter: u8, text: &[u8]) -> Vec<u8> {
    let mut v = format!("{}\0", id).into_bytes();
    v.push(letter);
    v.extend(text.iter().map(|&c| if c == 0 { b' ' } else { c }));
    v.push(0);
    v
}

/// Takes `n` NUL-terminated fields off the front of `buf`, if all are there.
pub fn take_fields(buf: &mut Vec<u8>, n: usize) -> Option<Vec<Vec<u8>>> {
    let mut out = Vec::with_capacity(n);
    let mut i = 0;
    for _ in 0..n {
        let z = memchr::memchr(0, &buf[i..])?;
        out.push(buf[i..i + z].to_vec());
        i += z + 1;
    }
    buf.drain(..i);
    Some(out)
}

/// Starts one local delivery for local-spawn: Err is the (letter, text)
/// reply when it cannot start.
fn start_local(msgid: &[u8], sender: &[u8], rcpt: &[u8], tag: u64) -> Result<Kid, (u8, Vec<u8>)> {
    if !super::valid_id(msgid) {
        return Err((
            b'Z',
            b"local-spawn got a bad message name (#4.3.0)".to_vec(),
        ));
    }
    let path = super::store::Dirs::new().mess(std::str::from_utf8(msgid).unwrap_or("-"));
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&path)
        .map_err(|e| {
            (
                b'Z',
                format!(
                    "unable to open the message: {} (#4.3.0)",
                    crate::exit::errtext(&e)
                )
                .into_bytes(),
            )
        })?;
    let ids = if crate::sys::geteuid() == 0 {
        let (local, _) = crate::parse::split_addr(rcpt);
        match crate::users::lookup(local) {
            Ok(Some(a)) if a.uid == 0 => {
                return Err((b'Z', b"refusing to deliver as root (#4.3.0)".to_vec()))
            }
            Ok(Some(a)) => Some((a.uid, a.gid)),
            Ok(None) => None, // deliver-local finds the account and switches itself
            Err(e) => return Err((b'Z', format!("{} (#4.3.0)", e).into_bytes())),
        }
    } else {
        None
    };
    let prog = crate::exec::program("QMAILLOCAL", "deliver-local");
    let linked = match std::env::var_os("QMAILLOCAL") {
        Some(v) if !v.is_empty() => None,
        _ => Some((sender, rcpt)),
    };
    use std::os::fd::AsRawFd;
    let r = start_child(&prog, &[sender, rcpt], f.as_raw_fd(), ids, tag, linked);
    drop(f);
    r.map_err(|e| {
        (
            b'Z',
            format!("unable to fork: {} (#4.3.0)", crate::exit::errtext(&e)).into_bytes(),
        )
    })
}

use std::os::unix::fs::OpenOptionsExt;

fn nonblock(fd: i32) {
    unsafe {
        let fl = libc::fcntl(fd, libc::F_GETFL);
        libc::fcntl(fd, libc::F_SETFL, fl | libc::O_NONBLOCK);
    }
}

/// local-spawn's loop: requests on `req`, replies on `rep`. Returns when
/// `req` is closed (queue-run is gone) and every delivery has ended.
/// Replies are buffered so local-spawn never blocks on a busy queue-run.
pub fn serve(req: i32, rep: i32) {
    nonblock(rep);
    let mut inbuf: Vec<u8> = Vec::new();
    let mut outbuf: Vec<u8> = Vec::new();
    let mut kids: Vec<Kid> = Vec::new();
    let mut req_open = true;
    let mut rep_open = true;
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
        let r = unsafe { libc::poll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, -1) };
        if r < 0 {
            continue; // EINTR: a forwarded signal
        }
        if pfds[0].revents != 0 {
            let mut buf = [0u8; 8192];
            match crate::sys::read(req, &mut buf) {
                Ok(0) => req_open = false,
                Ok(n) => inbuf.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(_) => req_open = false,
            }
            while let Some(f) = take_fields(&mut inbuf, 4) {
                let tag = crate::parse::number(&f[0]).unwrap_or(0);
                match start_local(&f[1], &f[2], &f[3], tag) {
                    Ok(k) => kids.push(k),
                    Err((l, t)) => outbuf.extend_from_slice(&reply(tag, l, &t)),
                }
            }
        }
        if pfds[1].revents != 0 {
            let n =
                unsafe { libc::write(rep, outbuf.as_ptr() as *const libc::c_void, outbuf.len()) };
            if n > 0 {
                outbuf.drain(..n as usize);
            } else if n < 0 {
                let e = io::Error::last_os_error();
                if !matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                ) {
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
        for i in ended.into_iter().rev() {
            let k = kids.remove(i);
            let tag = k.tag;
            let out = k.out.clone();
            let code = k.finish();
            let mut text = crate::parse::trim(&out).to_vec();
            if text.is_empty() && code.is_none() {
                text = b"deliver-local crashed (#4.3.0)".to_vec();
            }
            if rep_open {
                outbuf.extend_from_slice(&reply(tag, local_letter(code), &text));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn fields_and_records() {
        let mut b = request(7, "1.2.ab", b"", b"u@x");
        b.extend_from_slice(b"9\0partial");
        let f = take_fields(&mut b, 4).unwrap();
        assert_eq!(
            f,
            vec![
                b"7".to_vec(),
                b"1.2.ab".to_vec(),
                b"".to_vec(),
                b"u@x".to_vec()
            ]
        );
        assert_eq!(take_fields(&mut b, 4), None);
        assert_eq!(b, b"9\0partial");
        assert_eq!(reply(3, b'K', b"ok\0x"), b"3\0Kok x\0");
        assert_eq!(local_letter(Some(0)), b'K');
        assert_eq!(local_letter(Some(100)), b'D');
        assert_eq!(local_letter(Some(99)), b'Z');
        assert_eq!(local_letter(None), b'Z');
    }
}

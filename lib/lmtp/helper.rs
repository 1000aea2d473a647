//! lmtp-recv's root helper (`lmtp-recv -u USER`, lmtp-recv(8)): started as
//! root, lmtp-recv splits in two. The child drops to USER at once and
//! speaks LMTP; the parent keeps root and does one thing: for each request
//! on a SOCK_SEQPACKET socketpair, a message descriptor (SCM_RIGHTS) with
//! `SENDER` NUL `RECIPIENT` NUL, it starts deliver-local (or `$QMAILLOCAL`)
//! as the recipient's account, never uid 0, with that descriptor as fd 0,
//! and answers `CODE` NUL `REPORT`. It opens no path the child names: the
//! message arrives as a descriptor, and must be a regular file.

use std::io;

/// Largest request or reply datagram.
const MAX_MSG: usize = 4096;

/// Sends `data` and, when given, the descriptor `fd` in one datagram.
pub fn send(sock: i32, data: &[u8], fd: Option<i32>) -> io::Result<()> {
    let mut iov = libc::iovec {
        iov_base: data.as_ptr() as *mut libc::c_void,
        iov_len: data.len(),
    };
    let space = unsafe { libc::CMSG_SPACE(std::mem::size_of::<i32>() as u32) } as usize;
    let mut cbuf = vec![0u8; space];
    let mut m: libc::msghdr = unsafe { std::mem::zeroed() };
    m.msg_iov = &mut iov;
    m.msg_iovlen = 1;
    if let Some(fd) = fd {
        m.msg_control = cbuf.as_mut_ptr() as *mut libc::c_void;
        m.msg_controllen = space as _;
        unsafe {
            let c = libc::CMSG_FIRSTHDR(&m);
            (*c).cmsg_level = libc::SOL_SOCKET;
            (*c).cmsg_type = libc::SCM_RIGHTS;
            (*c).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<i32>() as u32) as _;
            std::ptr::write_unaligned(libc::CMSG_DATA(c) as *mut i32, fd);
        }
    }
    loop {
        let n = unsafe { libc::sendmsg(sock, &m, libc::MSG_NOSIGNAL) };
        if n >= 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// Receives one datagram: its bytes and the descriptor it carried. Ok(None)
/// when the other side closed. Truncated datagrams are refused.
pub fn recv(sock: i32) -> io::Result<Option<(Vec<u8>, Option<i32>)>> {
    let mut buf = vec![0u8; MAX_MSG];
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr() as *mut libc::c_void,
        iov_len: buf.len(),
    };
    let space = unsafe { libc::CMSG_SPACE(std::mem::size_of::<i32>() as u32) } as usize;
    let mut cbuf = vec![0u8; space];
    let mut m: libc::msghdr = unsafe { std::mem::zeroed() };
    m.msg_iov = &mut iov;
    m.msg_iovlen = 1;
    m.msg_control = cbuf.as_mut_ptr() as *mut libc::c_void;
    m.msg_controllen = space as _;
    let n = loop {
        let n = unsafe { libc::recvmsg(sock, &mut m, libc::MSG_CMSG_CLOEXEC) };
        if n >= 0 {
            break n as usize;
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    };
    let mut fd = None;
    unsafe {
        let c = libc::CMSG_FIRSTHDR(&m);
        if !c.is_null() && (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_RIGHTS
        {
            fd = Some(std::ptr::read_unaligned(libc::CMSG_DATA(c) as *const i32));
        }
    }
    if m.msg_flags & (libc::MSG_TRUNC | libc::MSG_CTRUNC) != 0 {
        if let Some(f) = fd {
            crate::sys::close(f);
        }
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "truncated request",
        ));
    }
    if n == 0 && fd.is_none() {
        return Ok(None);
    }
    buf.truncate(n);
    Ok(Some((buf, fd)))
}

/// A seqpacket socketpair (close-on-exec).
pub fn pair() -> io::Result<(i32, i32)> {
    let mut fds = [0i32; 2];
    crate::sys::cvt(unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    })?;
    Ok((fds[0], fds[1]))
}

/// The unprivileged side: asks the helper to deliver the message on `fd`.
/// Returns deliver-local's exit code (None: it crashed) and report.
pub fn ask(sock: i32, fd: i32, sender: &[u8], rcpt: &[u8]) -> io::Result<(Option<i32>, Vec<u8>)> {
    send(sock, &[sender, b"\0", rcpt, b"\0"].concat(), Some(fd))?;
    let (b, extra) =
        recv(sock)?.ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "helper gone"))?;
    if let Some(f) = extra {
        crate::sys::close(f);
    }
    let i = memchr::memchr(0, &b)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "bad reply"))?;
    let code = crate::parse::number(&b[..i]).map(|c| c as i32);
    Ok((code, b[i + 1..].to_vec()))
}

fn is_regular(fd: i32) -> bool {
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    unsafe { libc::fstat(fd, &mut st) == 0 && st.st_mode & libc::S_IFMT == libc::S_IFREG }
}

/// One request, as root: the reply datagram.
fn serve_one(b: &[u8], fd: Option<i32>) -> Vec<u8> {
    let reply = |code: i32, t: &[u8]| [code.to_string().as_bytes(), b"\0", t].concat();
    let mut parts = b.split(|&c| c == 0);
    let (Some(sender), Some(rcpt), Some(fd)) = (parts.next(), parts.next(), fd) else {
        return reply(111, b"Malformed request to the lmtp-recv helper. (#4.3.0)");
    };
    if !is_regular(fd) {
        return reply(111, b"The message is not a regular file. (#4.3.0)");
    }
    let (local, _) = crate::parse::split_addr(rcpt);
    let ids = match crate::users::lookup(local) {
        Ok(Some(a)) if a.uid != 0 => (a.uid, a.gid),
        Ok(Some(_)) => return reply(111, b"Refusing to deliver as root. (#4.3.0)"),
        Ok(None) => return reply(100, b"Sorry, no mailbox here by that name. (#5.1.1)"),
        Err(e) => {
            return reply(
                111,
                &[&b"Unable to read controls: "[..], &e.text(), b" (#4.3.0)"].concat(),
            )
        }
    };
    let prog = crate::exec::program("QMAILLOCAL", "deliver-local");
    let args: [&[u8]; 2] = [sender, rcpt];
    match crate::queuerun::spawn::start(&prog, &args, fd, Some(ids), 0) {
        Ok(mut kid) => {
            kid.limit = crate::queuerun::spawn::REPORT_MAX;
            while !kid.read_some() {}
            let report = std::mem::take(&mut kid.out);
            match kid.finish() {
                Some(c) => reply(c, &report),
                None => reply(111, b"deliver-local crashed. (#4.3.0)"),
            }
        }
        Err(e) => reply(
            111,
            format!(
                "Unable to run deliver-local: {} (#4.3.0)",
                crate::exit::errtext(&e)
            )
            .as_bytes(),
        ),
    }
}

/// Root's loop until the child closes its end; returns when it does.
pub fn serve(sock: i32) {
    loop {
        let (b, fd) = match recv(sock) {
            Ok(Some(r)) => r,
            Ok(None) => return,
            Err(e) if e.kind() == io::ErrorKind::InvalidData => (Vec::new(), None),
            Err(_) => return,
        };
        let out = serve_one(&b, fd);
        if let Some(f) = fd {
            crate::sys::close(f);
        }
        if send(sock, &out, None).is_err() {
            return;
        }
    }
}

/// Splits the process (we are root): the parent stays root, serves
/// requests and exits with the child's code; the child, running as `ids`,
/// gets the socket to the parent. Descriptors 0 and 1 (the client) stay
/// with the child only.
pub fn split(ids: (u32, u32)) -> io::Result<i32> {
    let (parent, child) = pair()?;
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(io::Error::last_os_error());
    }
    if pid == 0 {
        crate::sys::close(parent);
        crate::sys::drop_privileges(ids.0, ids.1, &[ids.1])?;
        return Ok(child);
    }
    crate::sys::close(child);
    let null = unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDWR) };
    if null >= 0 {
        let _ = crate::sys::dup2(null, 0);
        let _ = crate::sys::dup2(null, 1);
        crate::sys::close(null);
    }
    serve(parent);
    let code = crate::sys::waitpid(pid)
        .ok()
        .and_then(crate::sys::exit_code)
        .unwrap_or(crate::exit::TEMP);
    std::process::exit(code)
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn passes_a_descriptor_and_sees_the_end() {
        let (a, b) = pair().unwrap();
        let (r, w) = crate::sys::pipe().unwrap();
        send(a, b"s\0r\0", Some(w)).unwrap();
        let (data, fd) = recv(b).unwrap().unwrap();
        assert_eq!(data, b"s\0r\0");
        let fd = fd.unwrap();
        assert_ne!(fd, w);
        crate::sys::write_all(fd, b"x").unwrap();
        let mut buf = [0u8; 1];
        assert_eq!(crate::sys::read(r, &mut buf).unwrap(), 1);
        // a request that is not a regular file is refused, not delivered
        assert!(
            serve_one(b"s\0r\0", Some(fd)).starts_with(b"111\0The message is not a regular file.")
        );
        assert!(serve_one(b"s\0", None).starts_with(b"111\0Malformed request"));
        // too big for one datagram
        send(a, &vec![b'x'; MAX_MSG + 1], None).unwrap();
        assert_eq!(recv(b).unwrap_err().kind(), io::ErrorKind::InvalidData);
        crate::sys::close(a);
        assert!(recv(b).unwrap().is_none());
        for f in [b, r, w, fd] {
            crate::sys::close(f);
        }
    }
}

//! Sockets: socket-address conversion (written once), TCP and unix
//! stream sockets, socket names, options, descriptor passing over unix
//! sockets (SCM_RIGHTS), the host's interface addresses, service names.

use super::{cstr, cvt, cvt_size, fdio};
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::OwnedFd;

/// A socket address as the kernel takes it.
enum Raw {
    V4(libc::sockaddr_in),
    V6(libc::sockaddr_in6),
}

impl Raw {
    fn new(a: SocketAddr) -> Raw {
        match a {
            SocketAddr::V4(v) => Raw::V4(libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: v.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from(*v.ip()).to_be(),
                },
                sin_zero: [0; 8],
            }),
            SocketAddr::V6(v) => Raw::V6(libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: v.port().to_be(),
                sin6_flowinfo: 0,
                sin6_addr: libc::in6_addr {
                    s6_addr: v.ip().octets(),
                },
                sin6_scope_id: 0,
            }),
        }
    }

    /// The pointer and length for bind/connect (valid while self lives).
    fn ptr(&self) -> (*const libc::sockaddr, libc::socklen_t) {
        match self {
            Raw::V4(s) => (
                s as *const _ as *const libc::sockaddr,
                std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
            ),
            Raw::V6(s) => (
                s as *const _ as *const libc::sockaddr,
                std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t,
            ),
        }
    }
}

/// An AF_INET or AF_INET6 address the kernel wrote at `sa`, an
/// IPv4-mapped IPv6 address shown as IPv4.
///
/// # Safety
/// `sa` points to a socket address of its family's full size.
unsafe fn from_raw(sa: *const libc::sockaddr) -> Option<(IpAddr, u16)> {
    // SAFETY: the caller's promise: sa points to a sockaddr of its family.
    unsafe {
        match (*sa).sa_family as i32 {
            libc::AF_INET => {
                let s = &*(sa as *const libc::sockaddr_in);
                let ip = Ipv4Addr::from(u32::from_be(s.sin_addr.s_addr));
                Some((IpAddr::V4(ip), u16::from_be(s.sin_port)))
            }
            libc::AF_INET6 => {
                let s = &*(sa as *const libc::sockaddr_in6);
                let ip = crate::rules::canonical(IpAddr::V6(Ipv6Addr::from(s.sin6_addr.s6_addr)));
                Some((ip, u16::from_be(s.sin6_port)))
            }
            _ => None,
        }
    }
}

/// The address family of `ip` (AF_INET, AF_INET6).
pub fn family(ip: IpAddr) -> i32 {
    if ip.is_ipv4() {
        libc::AF_INET
    } else {
        libc::AF_INET6
    }
}

/// A non-blocking, close-on-exec stream socket of family `fam`.
pub fn stream_socket(fam: i32) -> io::Result<i32> {
    let ty = libc::SOCK_STREAM | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK;
    // SAFETY: socket takes no pointers.
    cvt(unsafe { libc::socket(fam, ty, 0) })
}

/// bind(2) to `a`.
pub fn bind(fd: i32, a: SocketAddr) -> io::Result<()> {
    let raw = Raw::new(a);
    let (p, len) = raw.ptr();
    // SAFETY: p points to a socket address of len bytes that outlives the call.
    cvt(unsafe { libc::bind(fd, p, len) }).map(|_| ())
}

/// listen(2).
pub fn listen(fd: i32, backlog: i32) -> io::Result<()> {
    // SAFETY: listen takes no pointers.
    cvt(unsafe { libc::listen(fd, backlog) }).map(|_| ())
}

/// connect(2) to `a`; on a non-blocking socket Err(EINPROGRESS) means
/// "wait for writability, then ask [`socket_error`]".
pub fn connect(fd: i32, a: SocketAddr) -> io::Result<()> {
    let raw = Raw::new(a);
    let (p, len) = raw.ptr();
    // SAFETY: p points to a socket address of len bytes that outlives the call.
    cvt(unsafe { libc::connect(fd, p, len) }).map(|_| ())
}

/// connect(2) to the unix socket `path` (ENAMETOOLONG when it does not fit).
pub fn connect_unix(fd: i32, path: &[u8]) -> io::Result<()> {
    // SAFETY: sockaddr_un is plain data; all zeroes is a valid value.
    let mut sa: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    if path.is_empty() || path.len() >= sa.sun_path.len() || path.contains(&0) {
        return Err(io::Error::from_raw_os_error(libc::ENAMETOOLONG));
    }
    sa.sun_family = libc::AF_UNIX as libc::sa_family_t;
    for (d, &s) in sa.sun_path.iter_mut().zip(path) {
        *d = s as libc::c_char;
    }
    let len = std::mem::size_of::<libc::sockaddr_un>() as libc::socklen_t;
    // SAFETY: sa is a sockaddr_un of len bytes that outlives the call.
    cvt(unsafe { libc::connect(fd, &sa as *const _ as *const libc::sockaddr, len) }).map(|_| ())
}

/// The pending error of a socket (SO_ERROR): 0 when none.
pub fn socket_error(fd: i32) -> io::Result<i32> {
    let mut err: libc::c_int = 0;
    let mut l = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most l bytes into err.
    cvt(unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_ERROR,
            &mut err as *mut _ as *mut libc::c_void,
            &mut l,
        )
    })?;
    Ok(err)
}

/// Sets an int socket option to `v`.
fn setsockopt<T>(fd: i32, level: i32, name: i32, v: &T) -> io::Result<()> {
    let sz = std::mem::size_of::<T>() as libc::socklen_t;
    // SAFETY: setsockopt reads sz bytes from v.
    cvt(unsafe { libc::setsockopt(fd, level, name, v as *const T as *const libc::c_void, sz) })
        .map(|_| ())
}

/// Turns a boolean socket option (SO_REUSEADDR...) on or off.
pub fn set_flag(fd: i32, level: i32, name: i32, on: bool) -> io::Result<()> {
    setsockopt(fd, level, name, &(on as libc::c_int))
}

/// SO_SNDTIMEO: a blocking write gives up after `secs` seconds.
pub fn set_send_timeout(fd: i32, secs: u64) -> io::Result<()> {
    let tv = libc::timeval {
        tv_sec: secs.min(i32::MAX as u64) as libc::time_t,
        tv_usec: 0,
    };
    setsockopt(fd, libc::SOL_SOCKET, libc::SO_SNDTIMEO, &tv)
}

/// The address of a socket's peer (`peer`) or its own end, IPv4-mapped
/// shown as IPv4.
pub fn sock_name(fd: i32, peer: bool) -> io::Result<(IpAddr, u16)> {
    // SAFETY: sockaddr_storage is plain data; all zeroes is a valid value.
    let mut ss: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    let p = &mut ss as *mut _ as *mut libc::sockaddr;
    // SAFETY: both calls write at most len bytes at p (ss).
    cvt(unsafe {
        if peer {
            libc::getpeername(fd, p, &mut len)
        } else {
            libc::getsockname(fd, p, &mut len)
        }
    })?;
    // SAFETY: ss is large enough for any address and the kernel wrote one.
    unsafe { from_raw(p) }.ok_or_else(|| io::Error::from_raw_os_error(libc::EAFNOSUPPORT))
}

/// accept4(2), the connection close-on-exec (and blocking).
pub fn accept(lfd: i32) -> io::Result<i32> {
    // SAFETY: null address pointers: the peer's address is not asked for.
    cvt(unsafe {
        libc::accept4(
            lfd,
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            libc::SOCK_CLOEXEC,
        )
    })
}

/// shutdown(2) of the writing side: the peer reads end of file.
pub fn shutdown_write(fd: i32) {
    // SAFETY: shutdown takes no pointers.
    unsafe { libc::shutdown(fd, libc::SHUT_WR) };
}

/// A unix socket pair of type `ty` (SOCK_STREAM, SOCK_SEQPACKET), both
/// ends close-on-exec.
pub fn socketpair(ty: i32) -> io::Result<(i32, i32)> {
    let mut fds = [0i32; 2];
    // SAFETY: socketpair writes two ints into fds.
    cvt(unsafe { libc::socketpair(libc::AF_UNIX, ty | libc::SOCK_CLOEXEC, 0, fds.as_mut_ptr()) })?;
    Ok((fds[0], fds[1]))
}

/// Sends one packet `rec` with descriptor `fd` attached (SCM_RIGHTS).
pub fn send_with_fd(sock: i32, rec: &[u8], fd: i32) -> io::Result<()> {
    let mut iov = libc::iovec {
        iov_base: rec.as_ptr() as *mut libc::c_void,
        iov_len: rec.len(),
    };
    // SAFETY: CMSG_SPACE only computes a size.
    let space = unsafe { libc::CMSG_SPACE(std::mem::size_of::<i32>() as u32) } as usize;
    let mut cbuf = vec![0u64; space.div_ceil(8)];
    // SAFETY: msghdr is plain data; all zeroes is a valid value.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cbuf.as_mut_ptr() as *mut libc::c_void;
    msg.msg_controllen = space as _;
    // SAFETY: msg_control points to cbuf, aligned and CMSG_SPACE(int)
    // bytes long, so the first header and its int of data fit in it.
    unsafe {
        let c = libc::CMSG_FIRSTHDR(&msg);
        (*c).cmsg_level = libc::SOL_SOCKET;
        (*c).cmsg_type = libc::SCM_RIGHTS;
        (*c).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<i32>() as u32) as _;
        std::ptr::write_unaligned(libc::CMSG_DATA(c) as *mut i32, fd);
    }
    loop {
        // SAFETY: msg points to iov (rec) and cbuf, which outlive the call.
        let n = unsafe { libc::sendmsg(sock, &msg, libc::MSG_NOSIGNAL) };
        match cvt_size(n) {
            Ok(_) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// What [`recv_with_fds`] got.
pub enum Packet {
    /// The socket is closed.
    End,
    /// Nothing to read now.
    None,
    /// A packet (None: too long) and the descriptors that came with it.
    Got(Option<Vec<u8>>, Vec<OwnedFd>),
}

/// Receives one packet (into `buf`, at most its length) and the
/// descriptors that came with it (close-on-exec), without waiting.
pub fn recv_with_fds(sock: i32, buf: &mut [u8]) -> io::Result<Packet> {
    let mut cbuf = [0u64; 64];
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr() as *mut libc::c_void,
        iov_len: buf.len(),
    };
    // SAFETY: msghdr is plain data; all zeroes is a valid value.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cbuf.as_mut_ptr() as *mut libc::c_void;
    msg.msg_controllen = std::mem::size_of_val(&cbuf) as _;
    // SAFETY: msg points to iov (buf) and cbuf, which outlive the call;
    // recvmsg writes at most their lengths.
    let n = unsafe { libc::recvmsg(sock, &mut msg, libc::MSG_CMSG_CLOEXEC | libc::MSG_DONTWAIT) };
    let n = match cvt_size(n) {
        Ok(n) => n,
        Err(e) => {
            return match e.kind() {
                io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => Ok(Packet::None),
                _ => Err(e),
            }
        }
    };
    let mut fds = Vec::new();
    // SAFETY: the kernel filled msg_control with msg_controllen bytes of
    // well-formed headers; CMSG_FIRSTHDR/NXTHDR stay inside them, and an
    // SCM_RIGHTS header's data is that many descriptors, now ours.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_RIGHTS {
                let data = libc::CMSG_DATA(c) as *const i32;
                let k = ((*c).cmsg_len as usize - libc::CMSG_LEN(0) as usize) / 4;
                for i in 0..k {
                    fds.push(fdio::own(std::ptr::read_unaligned(data.add(i))));
                }
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
    }
    if n == 0 && fds.is_empty() {
        return Ok(Packet::End);
    }
    if msg.msg_flags & (libc::MSG_TRUNC | libc::MSG_CTRUNC) != 0 {
        return Ok(Packet::Got(None, fds));
    }
    Ok(Packet::Got(Some(buf[..n].to_vec()), fds))
}

/// The addresses of every interface (getifaddrs); empty when it fails.
pub fn interface_addrs() -> Vec<IpAddr> {
    let mut out = Vec::new();
    let mut ifa: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs writes one pointer into ifa.
    if unsafe { libc::getifaddrs(&mut ifa) } != 0 {
        return out;
    }
    let mut p = ifa;
    while !p.is_null() {
        // SAFETY: p is a node of the list getifaddrs made, freed below;
        // a non-null ifa_addr points to an address of its family.
        unsafe {
            let a = (*p).ifa_addr;
            if !a.is_null() {
                if let Some((ip, _)) = from_raw(a) {
                    out.push(ip);
                }
            }
            p = (*p).ifa_next;
        }
    }
    // SAFETY: ifa came from getifaddrs and is not used after this.
    unsafe { libc::freeifaddrs(ifa) };
    out
}

/// The port of a TCP service name in /etc/services (getservbyname).
pub fn service_port(name: &[u8]) -> Option<u16> {
    let name = cstr(name).ok()?;
    // SAFETY: both strings are NUL-terminated; the result is static data
    // read at once (the programs that call this are single-threaded).
    let s = unsafe { libc::getservbyname(name.as_ptr(), c"tcp".as_ptr()) };
    if s.is_null() {
        return None;
    }
    // SAFETY: a non-null result points to a servent.
    Some(u16::from_be(unsafe { (*s).s_port } as u16))
}

//! tcp-serve: a tcpserver work-alike (tcp-serve(1)).
//!
//! The parent binds and listens, drops to -u/-g, then loops: accept, fork,
//! count. SIGCHLD and SIGTERM are blocked and read from a signalfd, so no
//! signal is lost and no handler runs at a bad moment; every wakeup reaps
//! with waitpid(-1, WNOHANG) until nothing is left. When `limit` children
//! run, the listening socket is not polled: new clients wait in the
//! kernel's backlog. The child looks up the rules file, sets the UCSPI
//! variables, puts the socket on fd 0 and 1 and execs the program.

use std::ffi::{CString, OsString};
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::PathBuf;

use crate::{exec, exit, rules, sys};

pub const USAGE: &str =
    "tcp-serve [-1eqQvdDHRrhpPoO] [-c limit] [-x rules] [-X] [-u uid] [-g gid] \
[-b backlog] [-l localname] [-B banner] [-t secs] host port prog...";

/// Everything the command line says.
#[derive(Debug, Clone)]
pub struct Config {
    pub host: IpAddr,
    pub port: u16,
    pub prog: Vec<OsString>,
    pub limit: usize,
    pub backlog: i32,
    pub rules: Option<PathBuf>,
    pub rules_optional: bool,
    pub print_port: bool,
    /// 0 = -q (nothing but startup failures), 1 = -Q (errors), 2 = -v (every connection).
    pub verbosity: u8,
    pub user: Option<OsString>,
    pub group: Option<OsString>,
    pub nodelay: bool,
    pub localname: Option<Vec<u8>>,
    pub banner: Option<Vec<u8>>,
    /// -e: always exec prog, never run a linked program's code in the child.
    pub exec_always: bool,
}

fn num<T: TryFrom<u64>>(v: &OsString, what: &str) -> Result<T, String> {
    crate::parse::number(v.as_bytes())
        .and_then(|n| T::try_from(n).ok())
        .ok_or_else(|| format!("{} is not a number: {}", what, v.to_string_lossy()))
}

/// The host operand: an IP address, `0` (any IPv4) or `::` (any IPv6).
pub fn parse_host(h: &[u8]) -> Option<IpAddr> {
    if h == b"0" {
        return Some(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    }
    std::str::from_utf8(h).ok()?.parse().ok()
}

/// The port operand: a number or a service name from /etc/services.
pub fn parse_port(p: &[u8]) -> Option<u16> {
    if let Some(n) = crate::parse::number(p) {
        return u16::try_from(n).ok();
    }
    let name = CString::new(p).ok()?;
    let s = unsafe { libc::getservbyname(name.as_ptr(), c"tcp".as_ptr()) };
    if s.is_null() {
        return None;
    }
    Some(u16::from_be(unsafe { (*s).s_port } as u16))
}

/// Parses the command line (without the program name).
pub fn parse_args(mut p: lexopt::Parser) -> Result<Config, String> {
    use lexopt::Arg::*;
    let mut c = Config {
        host: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        port: 0,
        prog: Vec::new(),
        limit: 40,
        backlog: 128,
        rules: None,
        rules_optional: false,
        print_port: false,
        verbosity: 1,
        user: None,
        group: None,
        nodelay: true,
        localname: None,
        banner: None,
        exec_always: false,
    };
    let mut operands = Vec::new();
    while let Some(arg) = p.next().map_err(|e| e.to_string())? {
        match arg {
            Short('c') => {
                c.limit = num(&p.value().map_err(|e| e.to_string())?, "limit")?;
                if c.limit == 0 {
                    return Err("limit must be at least 1".into());
                }
            }
            Short('b') => c.backlog = num(&p.value().map_err(|e| e.to_string())?, "backlog")?,
            Short('x') => c.rules = Some(PathBuf::from(p.value().map_err(|e| e.to_string())?)),
            Short('X') => c.rules_optional = true,
            Short('1') => c.print_port = true,
            Short('e') => c.exec_always = true,
            Short('q') => c.verbosity = 0,
            Short('Q') => c.verbosity = 1,
            Short('v') => c.verbosity = 2,
            Short('u') => c.user = Some(p.value().map_err(|e| e.to_string())?),
            Short('g') => c.group = Some(p.value().map_err(|e| e.to_string())?),
            Short('d') => c.nodelay = false,
            Short('D') => c.nodelay = true,
            Short('l') => c.localname = Some(p.value().map_err(|e| e.to_string())?.into_vec()),
            Short('B') => c.banner = Some(p.value().map_err(|e| e.to_string())?.into_vec()),
            Short('t') => {
                num::<u64>(&p.value().map_err(|e| e.to_string())?, "timeout")?;
            }
            // No PTR, paranoia or ident lookups: -h -p -r are accepted and ignored.
            Short('H' | 'R' | 'h' | 'p' | 'P' | 'r' | 'o' | 'O') => {}
            Value(v) => {
                operands.push(v);
                if operands.len() == 2 {
                    operands.extend(p.raw_args().map_err(|e| e.to_string())?);
                    break;
                }
            }
            a => return Err(a.unexpected().to_string()),
        }
    }
    if operands.len() < 3 {
        return Err("need host, port and prog".into());
    }
    c.host = parse_host(operands[0].as_bytes()).ok_or("host is not an IP address")?;
    c.port = parse_port(operands[1].as_bytes()).ok_or("port is not a number or service")?;
    c.prog = operands.split_off(2);
    Ok(c)
}

/// Resolves -u and -g: (uid, gid) to switch to, or None to stay.
/// `-u name` without -g takes the user's group; `-u N` needs -g or an
/// entry for N in the user database.
pub fn resolve_ids(c: &Config) -> Result<(Option<u32>, Option<u32>), String> {
    let mut gid = None;
    if let Some(g) = &c.group {
        gid = Some(
            sys::getgrnam(g.as_bytes())
                .map_err(|e| format!("unable to look up group: {}", exit::errtext(&e)))?
                .ok_or_else(|| format!("unknown group: {}", g.to_string_lossy()))?,
        );
    }
    let mut uid = None;
    if let Some(u) = &c.user {
        let pw = match crate::parse::number(u.as_bytes()) {
            Some(n) => sys::getpwuid(n as u32),
            None => sys::getpwnam(u.as_bytes()),
        }
        .map_err(|e| format!("unable to look up user: {}", exit::errtext(&e)))?;
        uid = Some(match (&pw, crate::parse::number(u.as_bytes())) {
            (_, Some(n)) => u32::try_from(n).map_err(|_| "uid out of range".to_string())?,
            (Some(p), None) => p.uid,
            (None, None) => return Err(format!("unknown user: {}", u.to_string_lossy())),
        });
        if gid.is_none() {
            gid = Some(
                pw.map(|p| p.gid)
                    .ok_or("-u with a uid that has no account needs -g")?,
            );
        }
    }
    Ok((uid, gid))
}

// ---- sockets ----

fn to_sockaddr(ip: IpAddr, port: u16) -> (libc::sockaddr_storage, libc::socklen_t) {
    let mut ss: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let len = match ip {
        IpAddr::V4(v4) => {
            let sin = unsafe { &mut *(&mut ss as *mut _ as *mut libc::sockaddr_in) };
            sin.sin_family = libc::AF_INET as libc::sa_family_t;
            sin.sin_port = port.to_be();
            sin.sin_addr.s_addr = u32::from(v4).to_be();
            std::mem::size_of::<libc::sockaddr_in>()
        }
        IpAddr::V6(v6) => {
            let sin6 = unsafe { &mut *(&mut ss as *mut _ as *mut libc::sockaddr_in6) };
            sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            sin6.sin6_port = port.to_be();
            sin6.sin6_addr.s6_addr = v6.octets();
            std::mem::size_of::<libc::sockaddr_in6>()
        }
    };
    (ss, len as libc::socklen_t)
}

fn from_sockaddr(ss: &libc::sockaddr_storage) -> Option<(IpAddr, u16)> {
    match ss.ss_family as i32 {
        libc::AF_INET => {
            let sin = unsafe { &*(ss as *const _ as *const libc::sockaddr_in) };
            Some((
                IpAddr::V4(Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr))),
                u16::from_be(sin.sin_port),
            ))
        }
        libc::AF_INET6 => {
            let sin6 = unsafe { &*(ss as *const _ as *const libc::sockaddr_in6) };
            let ip = rules::canonical(IpAddr::V6(Ipv6Addr::from(sin6.sin6_addr.s6_addr)));
            Some((ip, u16::from_be(sin6.sin6_port)))
        }
        _ => None,
    }
}

/// The address of a socket's peer (`peer`) or its own end, IPv4-mapped shown as IPv4.
pub fn sock_name(fd: i32, peer: bool) -> io::Result<(IpAddr, u16)> {
    let mut ss: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    let p = &mut ss as *mut _ as *mut libc::sockaddr;
    sys::cvt(unsafe {
        if peer {
            libc::getpeername(fd, p, &mut len)
        } else {
            libc::getsockname(fd, p, &mut len)
        }
    })?;
    from_sockaddr(&ss).ok_or_else(|| io::Error::from_raw_os_error(libc::EAFNOSUPPORT))
}

fn setopt(fd: i32, level: i32, name: i32, on: bool) -> io::Result<()> {
    let v: libc::c_int = on as libc::c_int;
    let sz = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    sys::cvt(unsafe {
        libc::setsockopt(fd, level, name, &v as *const _ as *const libc::c_void, sz)
    })
    .map(|_| ())
}

/// A listening socket on ip:port, close-on-exec and non-blocking.
pub fn listen(ip: IpAddr, port: u16, backlog: i32) -> io::Result<i32> {
    let fam = if ip.is_ipv4() {
        libc::AF_INET
    } else {
        libc::AF_INET6
    };
    let fd = sys::cvt(unsafe {
        libc::socket(
            fam,
            libc::SOCK_STREAM | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
            0,
        )
    })?;
    let r = (|| {
        setopt(fd, libc::SOL_SOCKET, libc::SO_REUSEADDR, true)?;
        let (ss, len) = to_sockaddr(ip, port);
        sys::cvt(unsafe { libc::bind(fd, &ss as *const _ as *const libc::sockaddr, len) })?;
        sys::cvt(unsafe { libc::listen(fd, backlog) })?;
        Ok(fd)
    })();
    if r.is_err() {
        sys::close(fd);
    }
    r
}

/// `IP:PORT`, with brackets around an IPv6 address.
pub fn fmt_addr(ip: IpAddr, port: u16) -> Vec<u8> {
    match ip {
        IpAddr::V4(v) => format!("{}:{}", v, port).into_bytes(),
        IpAddr::V6(v) => format!("[{}]:{}", v, port).into_bytes(),
    }
}

// ---- the server loop ----

fn sigset(sigs: &[i32]) -> libc::sigset_t {
    let mut s: libc::sigset_t = unsafe { std::mem::zeroed() };
    unsafe {
        libc::sigemptyset(&mut s);
        for &g in sigs {
            libc::sigaddset(&mut s, g);
        }
    }
    s
}

struct Log(u8);

impl Log {
    fn info(&self, parts: &[&[u8]]) {
        if self.0 >= 2 {
            exit::info(parts);
        }
    }
    fn warn(&self, parts: &[&[u8]]) {
        if self.0 >= 1 {
            exit::warn(parts);
        }
    }
}

/// Binds, drops privileges and serves until SIGTERM and the last child.
/// Returns Err((exit code, message)) on a startup failure.
pub fn serve(c: &Config) -> Result<(), (i32, Vec<u8>)> {
    let fail = |what: &str, e: io::Error| {
        (
            exit::TEMP,
            format!("unable to {}: {}", what, exit::errtext(&e)).into_bytes(),
        )
    };
    let (uid, gid) = resolve_ids(c).map_err(|m| (exit::TEMP, m.into_bytes()))?;
    // tls-wrap as the program: its certificates load once, as root.
    crate::tls::wrap::preload(&c.prog).map_err(|m| {
        let code = if m.starts_with("tls-wrap:") {
            exit::PERM
        } else {
            exit::TEMP
        };
        (code, format!("unable to set up TLS: {m}").into_bytes())
    })?;
    let lfd = listen(c.host, c.port, c.backlog).map_err(|e| {
        fail(
            &format!(
                "bind {}",
                String::from_utf8_lossy(&fmt_addr(c.host, c.port))
            ),
            e,
        )
    })?;
    let (_, port) = sock_name(lfd, false).map_err(|e| fail("get socket name", e))?;
    if let Some(g) = gid {
        let r = match uid {
            Some(u) => sys::drop_privileges(u, g, &[g]),
            None => sys::cvt(unsafe { libc::setgroups(1, &g) })
                .and_then(|_| sys::cvt(unsafe { libc::setgid(g) }))
                .map(|_| ()),
        };
        r.map_err(|e| fail("drop privileges", e))?;
    }
    let log = Log(c.verbosity);
    if !c.exec_always {
        exec::probe_linked();
        // Load the time zone once: children that run linked code inherit
        // it instead of reading /etc/localtime per session.
        crate::date::local(sys::now() as i64);
    }
    let mask = sigset(&[libc::SIGCHLD, libc::SIGTERM]);
    unsafe { libc::sigprocmask(libc::SIG_BLOCK, &mask, std::ptr::null_mut()) };
    let sfd =
        sys::cvt(unsafe { libc::signalfd(-1, &mask, libc::SFD_CLOEXEC | libc::SFD_NONBLOCK) })
            .map_err(|e| fail("create signalfd", e))?;
    if c.print_port {
        if let Err(e) = sys::write_all(1, format!("{}\n", port).as_bytes()) {
            log.warn(&[b"unable to print port: ", exit::errtext(&e).as_bytes()]);
        }
    }
    let limit = c.limit;
    let status = |n: usize| format!("status: {}/{}", n, limit).into_bytes();
    log.info(&[&status(0)]);
    let mut lfd = Some(lfd);
    let mut running = 0usize;
    loop {
        reap(&mut running, &log, &status);
        if lfd.is_none() && running == 0 {
            return Ok(());
        }
        let mut fds = vec![libc::pollfd {
            fd: sfd,
            events: libc::POLLIN,
            revents: 0,
        }];
        if let (Some(l), true) = (lfd, running < limit) {
            fds.push(libc::pollfd {
                fd: l,
                events: libc::POLLIN,
                revents: 0,
            });
        }
        let r = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, -1) };
        if r < 0 {
            continue;
        }
        if fds[0].revents != 0 && drain_signals(sfd) {
            if let Some(l) = lfd.take() {
                sys::close(l);
                log.info(&[
                    b"stop: SIGTERM, waiting for ",
                    running.to_string().as_bytes(),
                    b" children",
                ]);
            }
        }
        if fds.len() == 2 && fds[1].revents != 0 {
            if let Some(l) = lfd {
                accept_one(l, sfd, c, &log, &mut running, &status);
            }
        }
    }
}

/// Reads every pending signal; true when SIGTERM was among them.
fn drain_signals(sfd: i32) -> bool {
    let mut term = false;
    let mut si: libc::signalfd_siginfo = unsafe { std::mem::zeroed() };
    let sz = std::mem::size_of::<libc::signalfd_siginfo>();
    loop {
        let r = unsafe { libc::read(sfd, &mut si as *mut _ as *mut libc::c_void, sz) };
        if r != sz as isize {
            return term;
        }
        if si.ssi_signo == libc::SIGTERM as u32 {
            term = true;
        }
    }
}

fn reap(running: &mut usize, log: &Log, status: &dyn Fn(usize) -> Vec<u8>) {
    loop {
        let mut st = 0;
        let pid = unsafe { libc::waitpid(-1, &mut st, libc::WNOHANG) };
        if pid <= 0 {
            return;
        }
        *running = running.saturating_sub(1);
        let how = match sys::exit_code(st) {
            Some(n) => format!("status {}", n),
            None => format!("signal {}", libc::WTERMSIG(st)),
        };
        log.info(&[format!("end pid {} {}", pid, how).as_bytes()]);
        log.info(&[&status(*running)]);
    }
}

fn accept_one(
    lfd: i32,
    sfd: i32,
    c: &Config,
    log: &Log,
    running: &mut usize,
    status: &dyn Fn(usize) -> Vec<u8>,
) {
    let conn = unsafe {
        libc::accept4(
            lfd,
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            libc::SOCK_CLOEXEC,
        )
    };
    if conn < 0 {
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EAGAIN | libc::EINTR | libc::ECONNABORTED | libc::EPROTO) => {}
            _ => {
                log.warn(&[b"unable to accept: ", exit::errtext(&e).as_bytes()]);
                // Out of descriptors or memory: do not spin.
                std::thread::sleep(std::time::Duration::from_millis(200));
            }
        }
        return;
    }
    match unsafe { libc::fork() } {
        -1 => {
            let e = io::Error::last_os_error();
            log.warn(&[b"unable to fork: ", exit::errtext(&e).as_bytes()]);
            sys::close(conn);
        }
        0 => child(conn, lfd, sfd, c, log),
        _ => {
            sys::close(conn);
            *running += 1;
            log.info(&[&status(*running)]);
        }
    }
}

// ---- the child ----

fn child(conn: i32, lfd: i32, sfd: i32, c: &Config, log: &Log) -> ! {
    sys::close(lfd);
    sys::close(sfd);
    let empty = sigset(&[]);
    unsafe { libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut()) };
    sys::signal_ignore(libc::SIGPIPE, false);
    let pid = std::process::id().to_string();
    let pid = pid.as_bytes();
    let die = |code: i32, parts: &[&[u8]]| -> ! {
        let mut v: Vec<&[u8]> = vec![b"pid ", pid, b": "];
        v.extend_from_slice(parts);
        log.warn(&v);
        unsafe { libc::_exit(code) }
    };
    let (rip, rport) = match sock_name(conn, true) {
        Ok(a) => a,
        Err(e) => die(
            exit::TEMP,
            &[b"unable to get peer name: ", exit::errtext(&e).as_bytes()],
        ),
    };
    let (lip, lport) = match sock_name(conn, false) {
        Ok(a) => a,
        Err(e) => die(
            exit::TEMP,
            &[b"unable to get socket name: ", exit::errtext(&e).as_bytes()],
        ),
    };
    let remote = fmt_addr(rip, rport);
    log.info(&[b"pid ", pid, b" from ", &remote]);
    let mut vars: Vec<(Vec<u8>, Option<Vec<u8>>)> = Vec::new();
    if let Some(path) = &c.rules {
        let pb = path.as_os_str().as_bytes();
        match std::fs::read(path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound && c.rules_optional => {}
            Err(e) => die(
                exit::TEMP,
                &[
                    b"unable to read rules ",
                    pb,
                    b": ",
                    exit::errtext(&e).as_bytes(),
                ],
            ),
            Ok(text) => match rules::parse(&text) {
                Err(e) => die(
                    exit::TEMP,
                    &[
                        b"unable to parse rules ",
                        pb,
                        format!(" line {}: {}", e.line, e.what).as_bytes(),
                    ],
                ),
                Ok(r) => {
                    if let Some(rule) = r.lookup(rip) {
                        if !rule.allow {
                            log.info(&[b"deny pid ", pid, b" remote ", &remote]);
                            unsafe { libc::_exit(exit::PERM) };
                        }
                        vars = rule.vars.clone();
                    }
                }
            },
        }
    }
    let set = |k: &str, v: &[u8]| std::env::set_var(k, std::ffi::OsStr::from_bytes(v));
    set("PROTO", b"TCP");
    set("TCPLOCALIP", lip.to_string().as_bytes());
    set("TCPLOCALPORT", lport.to_string().as_bytes());
    match &c.localname {
        Some(n) => set("TCPLOCALHOST", n),
        None => std::env::remove_var("TCPLOCALHOST"),
    }
    set("TCPREMOTEIP", rip.to_string().as_bytes());
    set("TCPREMOTEPORT", rport.to_string().as_bytes());
    std::env::remove_var("TCPREMOTEHOST");
    std::env::remove_var("TCPREMOTEINFO");
    for (k, v) in &vars {
        let k = std::ffi::OsStr::from_bytes(k);
        match v {
            Some(v) => std::env::set_var(k, std::ffi::OsStr::from_bytes(v)),
            None => std::env::remove_var(k),
        }
    }
    if c.nodelay {
        let _ = setopt(conn, libc::IPPROTO_TCP, libc::TCP_NODELAY, true);
    }
    if let Err(e) = sys::dup2(conn, 0).and_then(|_| sys::dup2(conn, 1)) {
        die(
            exit::TEMP,
            &[b"unable to dup socket: ", exit::errtext(&e).as_bytes()],
        );
    }
    if conn > 1 {
        sys::close(conn);
    }
    if let Some(b) = &c.banner {
        let _ = sys::write_all(1, b);
    }
    log.info(&[
        b"ok pid ",
        pid,
        b" local ",
        &fmt_addr(lip, lport),
        b" remote ",
        &remote,
    ]);
    if let Some(code) = crate::tls::wrap::run_preloaded() {
        unsafe { libc::_exit(code) }
    }
    if let Some(l) = exec::linked(&c.prog[0]).filter(|_| !c.exec_always) {
        exec::run_linked(l, &c.prog[1..]);
    }
    let e = exec::exec(&c.prog);
    let code = if e.kind() == io::ErrorKind::NotFound {
        exit::EXEC_NOENT
    } else {
        exit::EXEC_FAIL
    };
    let name = c.prog[0].as_bytes();
    let mut line: Vec<&[u8]> = vec![b"pid ", pid, b": unable to run ", name, b": "];
    let t = exit::errtext(&e);
    line.push(t.as_bytes());
    if c.verbosity >= 1 {
        exit::log("fatal", &line);
    }
    unsafe { libc::_exit(code) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(v: &[&str]) -> Result<Config, String> {
        parse_args(lexopt::Parser::from_args(v.iter().map(|s| s.to_string())))
    }

    #[test]
    fn parses_options_and_prog() {
        let c = args(&[
            "-1",
            "-v",
            "-c",
            "5",
            "-x",
            "r",
            "-u",
            "65534",
            "-g",
            "65534",
            "127.0.0.1",
            "0",
            "sh",
            "-c",
            "x",
        ])
        .unwrap();
        assert!(c.print_port);
        assert_eq!(c.verbosity, 2);
        assert_eq!(c.limit, 5);
        assert_eq!(c.port, 0);
        assert_eq!(c.prog, vec![OsString::from("sh"), "-c".into(), "x".into()]);
        let c = args(&["0", "25", "prog", "-v"]).unwrap();
        assert_eq!(c.host, IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        assert_eq!(c.verbosity, 1);
        assert_eq!(c.prog, vec![OsString::from("prog"), "-v".into()]);
        assert!(args(&["::", "25", "p"]).unwrap().host.is_ipv6());
    }

    #[test]
    fn rejects_bad_usage() {
        assert!(args(&["0", "25"]).is_err());
        assert!(args(&["-c", "0", "0", "25", "p"]).is_err());
        assert!(args(&["-c", "x", "0", "25", "p"]).is_err());
        assert!(args(&["host.example", "25", "p"]).is_err());
        assert!(args(&["0", "70000", "p"]).is_err());
        assert!(args(&["-Z", "0", "25", "p"]).is_err());
    }

    #[test]
    fn formats_addresses() {
        assert_eq!(fmt_addr("127.0.0.1".parse().unwrap(), 25), b"127.0.0.1:25");
        assert_eq!(fmt_addr("::1".parse().unwrap(), 25), b"[::1]:25");
    }
}

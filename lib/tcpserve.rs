//! tcp-serve: a tcpserver work-alike (tcp-serve(1)).
//!
//! The parent binds and listens, drops to -u/-g, then loops: accept, fork,
//! count. SIGCHLD and SIGTERM are blocked and read from a signalfd, so no
//! signal is lost and no handler runs at a bad moment; every wakeup reaps
//! with waitpid(-1, WNOHANG) until nothing is left. When `limit` children
//! run, the listening socket is not polled: new clients wait in the
//! kernel's backlog. The child looks up the rules file, sets the UCSPI
//! variables, puts the socket on fd 0 and 1 and execs the program.

use std::ffi::OsString;
use std::io;
use std::net::{IpAddr, Ipv4Addr};
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
    sys::net::service_port(p)
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

use crate::sys::net::sock_name;

/// A listening socket on ip:port, close-on-exec and non-blocking.
pub fn listen(ip: IpAddr, port: u16, backlog: i32) -> io::Result<i32> {
    let fd = sys::net::stream_socket(sys::net::family(ip))?;
    let r = (|| {
        sys::net::set_flag(fd, libc::SOL_SOCKET, libc::SO_REUSEADDR, true)?;
        sys::net::bind(fd, std::net::SocketAddr::new(ip, port))?;
        sys::net::listen(fd, backlog)?;
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
            None => sys::proc::set_groups(g, &[g]),
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
    let sig = sys::signals::SignalFd::new(&[libc::SIGCHLD, libc::SIGTERM])
        .map_err(|e| fail("create signalfd", e))?;
    let sfd = sig.fd();
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
        let mut fds = vec![sys::pollfd(sfd, libc::POLLIN)];
        if let (Some(l), true) = (lfd, running < limit) {
            fds.push(sys::pollfd(l, libc::POLLIN));
        }
        if sys::poll(&mut fds, -1).is_err() {
            continue;
        }
        if fds[0].revents != 0 && drain_signals(&sig) {
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
fn drain_signals(sig: &sys::signals::SignalFd) -> bool {
    let mut term = false;
    while let Some(s) = sig.next() {
        term |= s == libc::SIGTERM;
    }
    term
}

fn reap(running: &mut usize, log: &Log, status: &dyn Fn(usize) -> Vec<u8>) {
    while let Some((pid, st)) = sys::proc::reap_any() {
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
    let conn = match sys::net::accept(lfd) {
        Ok(fd) => fd,
        Err(e) => {
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
    };
    match sys::proc::fork() {
        Err(e) => {
            log.warn(&[b"unable to fork: ", exit::errtext(&e).as_bytes()]);
            sys::close(conn);
        }
        Ok(sys::proc::Fork::Child) => child(conn, lfd, sfd, c, log),
        Ok(sys::proc::Fork::Parent(_)) => {
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
    sys::signals::set_mask(&[]);
    sys::signal_ignore(libc::SIGPIPE, false);
    let pid = std::process::id().to_string();
    let pid = pid.as_bytes();
    let die = |code: i32, parts: &[&[u8]]| -> ! {
        let mut v: Vec<&[u8]> = vec![b"pid ", pid, b": "];
        v.extend_from_slice(parts);
        log.warn(&v);
        sys::proc::exit_now(code)
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
                            sys::proc::exit_now(exit::PERM);
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
        let _ = sys::net::set_flag(conn, libc::IPPROTO_TCP, libc::TCP_NODELAY, true);
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
        sys::proc::exit_now(code)
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
    sys::proc::exit_now(code)
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

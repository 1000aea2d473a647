//! tls-wrap(8): TLS between the network (fds 0/1) and a protocol program.
//!
//! Implicit mode: the handshake first, then the program runs with fds 0/1
//! on a socket pair whose other end this process relays to and from TLS.
//! Delayed mode (UCSPI-TLS, `-d`): the program runs at once on the clear
//! connection with `SSLCTLFD`, `SSLREADFD` and `SSLWRITEFD`; when it
//! writes `y` or `Y` on the control descriptor, this process does the
//! handshake and relays between TLS and the data descriptor (for `Y` it
//! first answers with `SSL_PROTOCOL=...\0SSL_CIPHER=...\0\0`).
//!
//! This process (the parent) relays; the program is its child, and the
//! exit code is the program's. Memory is bounded: two 16 KiB buffers and
//! OpenSSL's own per-connection state (its buffers released when idle).

use super::{Ctx, Step, Tls};
use std::ffi::OsString;
use std::io;
use std::os::unix::ffi::{OsStrExt, OsStringExt};

/// Bytes buffered in each direction.
pub const BUF: usize = 16384;
/// Longest SSL_* block sent back for `Y`.
pub const MAX_INFO: usize = 4096;

pub const USAGE: &str = "tls-wrap [-d] [-t secs] prog...";

pub struct Opts {
    pub delayed: bool,
    /// Handshake deadline, seconds.
    pub timeout: u64,
    pub prog: Vec<OsString>,
}

/// CERTFILE/KEYFILE, and `CERTFILE:name`/`KEYFILE:name` pairs for SNI.
pub fn contexts() -> Result<Ctx, String> {
    let get = |k: &[u8]| std::env::var_os(std::ffi::OsStr::from_bytes(k)).map(|v| v.into_vec());
    let cert = get(b"CERTFILE").ok_or("$CERTFILE is not set")?;
    let key = get(b"KEYFILE").unwrap_or_else(|| cert.clone());
    let main = Ctx::server(&cert, &key)?;
    let mut names = Vec::new();
    for (k, v) in std::env::vars_os() {
        let k = k.into_vec();
        if let Some(name) = k.strip_prefix(b"CERTFILE:") {
            let key =
                get(&[&b"KEYFILE:"[..], name].concat()).unwrap_or_else(|| v.clone().into_vec());
            names.push((name.to_ascii_lowercase(), Ctx::server(v.as_bytes(), &key)?));
        }
    }
    if !names.is_empty() {
        // Kept until the process exits: the callback refers to them.
        main.sni(Box::leak(Box::new(names)));
    }
    Ok(main)
}

/// The environment the program gets besides ours: the key files removed,
/// TCP addresses filled in from the socket when no super-server set them.
fn prepare_env() {
    let keys: Vec<OsString> = std::env::vars_os()
        .map(|(k, _)| k)
        .filter(|k| {
            let b = k.as_bytes();
            b == b"CERTFILE"
                || b == b"KEYFILE"
                || b.starts_with(b"CERTFILE:")
                || b.starts_with(b"KEYFILE:")
                || b == b"TLS_UID"
                || b == b"TLS_GID"
        })
        .collect();
    for k in keys {
        std::env::remove_var(k);
    }
    for (peer, ip, port) in [
        (true, "TCPREMOTEIP", "TCPREMOTEPORT"),
        (false, "TCPLOCALIP", "TCPLOCALPORT"),
    ] {
        if std::env::var_os(ip).is_none() {
            if let Ok((a, p)) = crate::sys::net::sock_name(0, peer) {
                std::env::set_var(ip, a.to_string());
                std::env::set_var(port, p.to_string());
            }
        }
    }
}

fn remote() -> Vec<u8> {
    std::env::var_os("TCPREMOTEIP")
        .map(|v| v.into_vec())
        .unwrap_or_else(|| b"unknown".to_vec())
}

/// Forks; the child sets up its descriptors with `fds` and runs the
/// program (never returns). The parent gets the child's pid.
fn spawn(prog: &[OsString], fds: impl FnOnce() -> io::Result<()>) -> io::Result<i32> {
    match crate::sys::proc::fork()? {
        crate::sys::proc::Fork::Parent(pid) => Ok(pid),
        crate::sys::proc::Fork::Child => {
            if let Err(e) = fds() {
                crate::exit::die_sys(crate::exit::TEMP, &[b"unable to set up descriptors"], &e);
            }
            crate::exec::chain(prog);
        }
    }
}

/// The program's exit code (111 when it died by a signal).
fn reap(pid: i32) -> i32 {
    match crate::sys::waitpid(pid) {
        Ok(st) => crate::sys::exit_code(st).unwrap_or(crate::exit::TEMP),
        Err(_) => crate::exit::TEMP,
    }
}

/// After the fork: the relay needs no more privilege than TLS_UID/TLS_GID.
fn drop_to(uid: Option<u32>, gid: Option<u32>) -> io::Result<()> {
    if crate::sys::geteuid() != 0 || uid.is_none() {
        return Ok(());
    }
    let u = uid.unwrap_or(0);
    let g = gid.unwrap_or(u);
    crate::sys::drop_privileges(u, g, &[g])
}

fn num_env(k: &str) -> Option<u32> {
    std::env::var(k).ok().and_then(|v| v.parse().ok())
}

/// tls-wrap's options and program; Err(text) on wrong usage.
pub fn parse_args(mut p: lexopt::Parser) -> Result<Opts, String> {
    let mut o = Opts {
        delayed: false,
        timeout: 60,
        prog: Vec::new(),
    };
    loop {
        match p.next().map_err(|e| e.to_string())? {
            None => break,
            Some(lexopt::Arg::Short('d')) => o.delayed = true,
            Some(lexopt::Arg::Short('t')) => {
                let v = p.value().map_err(|e| e.to_string())?;
                o.timeout = v
                    .to_str()
                    .and_then(|v| v.parse().ok())
                    .filter(|&n: &u64| n > 0)
                    .ok_or("-t wants a number of seconds")?;
            }
            Some(lexopt::Arg::Value(v)) => {
                o.prog.push(v);
                o.prog.extend(p.raw_args().map_err(|e| e.to_string())?);
                break;
            }
            Some(a) => return Err(a.unexpected().to_string()),
        }
    }
    if o.prog.is_empty() {
        return Err("no program".into());
    }
    Ok(o)
}

/// The options and contexts tcp-serve loaded before accepting.
static PRELOADED: std::sync::OnceLock<(Opts, Ctx)> = std::sync::OnceLock::new();

/// tcp-serve links tls-wrap when its program is `tls-wrap` (the bare name
/// or tcp-serve's sibling): the certificates are loaded once, here, before
/// tcp-serve drops privileges, and each connection's child runs
/// [`run_preloaded`] instead of exec'ing tls-wrap, which saves loading
/// OpenSSL and parsing the key per connection. Err: wrong usage or an
/// unusable certificate.
pub fn preload(prog: &[OsString]) -> Result<(), String> {
    let Some(first) = prog.first() else {
        return Ok(());
    };
    let ours = crate::exec::sibling("tls-wrap").canonicalize().ok();
    let same = std::path::Path::new(first).canonicalize().ok();
    if first != "tls-wrap" && (same.is_none() || same != ours) {
        return Ok(());
    }
    let o = parse_args(lexopt::Parser::from_args(&prog[1..]))
        .map_err(|e| format!("tls-wrap: {e}; usage: {USAGE}"))?;
    let ctx = contexts()?;
    let _ = PRELOADED.set((o, ctx));
    Ok(())
}

/// In tcp-serve's child: tls-wrap's job with the preloaded contexts, its
/// exit code; None when nothing was preloaded (then tcp-serve execs).
pub fn run_preloaded() -> Option<i32> {
    let (o, ctx) = PRELOADED.get()?;
    crate::exit::rename_child("tls-wrap");
    Some(run_with(o, ctx))
}

pub fn run(o: &Opts) -> i32 {
    let ctx = match contexts() {
        Ok(c) => c,
        Err(e) => crate::exit::die(
            crate::exit::TEMP,
            &[b"unable to set up TLS: ", e.as_bytes()],
        ),
    };
    run_with(o, &ctx)
}

fn run_with(o: &Opts, ctx: &Ctx) -> i32 {
    // The key is in this process's memory: a program of the same uid may
    // not ptrace it or read a core of it (the exec'd program is dumpable
    // again).
    crate::sys::proc::set_undumpable();
    let (uid, gid) = (num_env("TLS_UID"), num_env("TLS_GID"));
    prepare_env();
    let r = if o.delayed {
        delayed(o, ctx, uid, gid)
    } else {
        implicit(o, ctx, uid, gid)
    };
    match r {
        Ok(code) => code,
        Err(e) => crate::exit::die_sys(crate::exit::TEMP, &[b"unable to start"], &e),
    }
}

fn handshake(ctx: &Ctx, secs: u64) -> Option<Tls> {
    let hs = Tls::new(ctx, 0, 1).and_then(|mut t| {
        for fd in [0, 1] {
            crate::sys::set_nonblock(fd).map_err(|e| crate::exit::errtext(&e))?;
        }
        t.handshake(true, secs)?;
        Ok(t)
    });
    match hs {
        Ok(t) => {
            crate::exit::info(&[
                b"tls protocol=",
                &t.version(),
                b" cipher=",
                &t.cipher(),
                b" sni=",
                &crate::log::field(&t.servername().unwrap_or_else(|| b"-".to_vec())),
                b" remote=",
                &remote(),
            ]);
            Some(t)
        }
        Err(e) => {
            crate::exit::info(&[b"handshake failed remote=", &remote(), b": ", e.as_bytes()]);
            None
        }
    }
}

/// The SSL_* variables of a finished handshake.
fn info(t: &Tls) -> Vec<(&'static str, Vec<u8>)> {
    let mut v = vec![("SSL_PROTOCOL", t.version()), ("SSL_CIPHER", t.cipher())];
    if let Some(n) = t.servername() {
        v.push(("SSL_TLS_SNI_SERVERNAME", n));
    }
    v
}

fn implicit(o: &Opts, ctx: &Ctx, uid: Option<u32>, gid: Option<u32>) -> io::Result<i32> {
    let Some(mut t) = handshake(ctx, o.timeout) else {
        return Ok(crate::exit::TEMP);
    };
    for (k, v) in info(&t) {
        std::env::set_var(k, std::ffi::OsStr::from_bytes(&v));
    }
    let (mine, theirs) = crate::sys::net::socketpair(libc::SOCK_STREAM)?;
    let pid = spawn(&o.prog, || {
        crate::sys::dup2(theirs, 0)?;
        crate::sys::dup2(theirs, 1)
    })?;
    crate::sys::close(theirs);
    drop_to(uid, gid)?;
    relay(&mut t, mine, o.timeout);
    crate::sys::close(mine);
    Ok(reap(pid))
}

fn delayed(o: &Opts, ctx: &Ctx, uid: Option<u32>, gid: Option<u32>) -> io::Result<i32> {
    let (ctl, ctl_app) = crate::sys::net::socketpair(libc::SOCK_STREAM)?;
    let (data, data_app) = crate::sys::net::socketpair(libc::SOCK_STREAM)?;
    std::env::set_var("SSLCTLFD", ctl_app.to_string());
    std::env::set_var("SSLREADFD", data_app.to_string());
    std::env::set_var("SSLWRITEFD", data_app.to_string());
    std::env::set_var("UCSPITLS", "");
    let pid = spawn(&o.prog, || {
        crate::sys::set_cloexec(ctl_app, false)?;
        crate::sys::set_cloexec(data_app, false)
    })?;
    crate::sys::close(ctl_app);
    crate::sys::close(data_app);
    drop_to(uid, gid)?;
    let mut cmd = [0u8; 1];
    let n = crate::sys::read(ctl, &mut cmd).unwrap_or(0);
    if n == 1 && (cmd[0] == b'y' || cmd[0] == b'Y') {
        if let Some(mut t) = handshake(ctx, o.timeout) {
            let ok = cmd[0] == b'y' || {
                let mut block = Vec::new();
                for (k, v) in info(&t) {
                    block.extend_from_slice(k.as_bytes());
                    block.push(b'=');
                    block.extend_from_slice(&v);
                    block.push(0);
                }
                block.truncate(MAX_INFO - 1);
                block.push(0);
                crate::sys::write_all(ctl, &block).is_ok()
            };
            if ok {
                relay(&mut t, data, o.timeout);
            }
        }
    } else if n == 1 {
        crate::exit::warn(&[b"unknown control command from the program"]);
    }
    crate::sys::close(ctl);
    crate::sys::close(data);
    Ok(reap(pid))
}

/// Copies between TLS and the program's descriptor `app` until the
/// program closes it (then close_notify) or the connection fails. What
/// the program wrote before it exited gets `linger` seconds to reach a
/// client that stopped reading; then the connection is dropped.
fn relay(t: &mut Tls, app: i32, linger: u64) {
    crate::sys::signal_ignore(libc::SIGPIPE, true);
    if crate::sys::set_nonblock(app).is_err() {
        return;
    }
    let mut down = vec![0u8; BUF]; // network to program
    let (mut d0, mut d1) = (0usize, 0usize);
    let mut up = vec![0u8; BUF]; // program to network
    let (mut u0, mut u1) = (0usize, 0usize);
    let (mut net_eof, mut app_eof, mut app_shut) = (false, false, false);
    let mut gone: Option<u64> = None;
    loop {
        let mut progress = false;
        let (mut net_r, mut net_w, mut app_r, mut app_w) = (false, false, false, false);
        if !net_eof && d0 == d1 {
            match t.read(&mut down) {
                Step::Done(n) => {
                    (d0, d1) = (0, n);
                    progress = true;
                }
                Step::WantRead => net_r = true,
                Step::WantWrite => net_w = true,
                Step::Eof => net_eof = true,
                Step::Fail(e) => {
                    crate::exit::info(&[b"tls error remote=", &remote(), b": ", e.as_bytes()]);
                    return;
                }
            }
        }
        if d0 < d1 {
            match crate::sys::write_nb(app, &down[d0..d1]) {
                Ok(None | Some(0)) => app_w = true,
                Ok(Some(n)) => {
                    d0 += n;
                    progress = true;
                }
                // The program is gone: what the client still sends is dropped.
                Err(_) => d0 = d1,
            }
        }
        if net_eof && d0 == d1 && !app_shut {
            crate::sys::net::shutdown_write(app);
            app_shut = true;
        }
        if !app_eof && u0 == u1 {
            match crate::sys::read(app, &mut up) {
                Ok(0) => app_eof = true,
                Ok(n) => {
                    (u0, u1) = (0, n);
                    progress = true;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => app_r = true,
                Err(_) => app_eof = true,
            }
        }
        if u0 < u1 {
            match t.write(&up[u0..u1]) {
                Step::Done(n) => {
                    u0 += n;
                    progress = true;
                }
                Step::WantRead => net_r = true,
                Step::WantWrite => net_w = true,
                Step::Eof | Step::Fail(_) => return,
            }
        }
        if app_eof && u0 == u1 {
            t.close();
            return;
        }
        if progress {
            continue;
        }
        // A descriptor with nothing to wait for is left out (-1): a hung-up
        // one would wake poll at once, for ever.
        let pfd = |fd: i32, r: bool, w: bool| libc::pollfd {
            fd: if r || w { fd } else { -1 },
            events: (if r { libc::POLLIN } else { 0 }) | (if w { libc::POLLOUT } else { 0 }),
            revents: 0,
        };
        let mut p = [
            pfd(t.rfd, net_r, false),
            pfd(t.wfd, false, net_w),
            pfd(app, app_r, app_w),
        ];
        let wait = if app_eof {
            let end = *gone.get_or_insert(crate::sys::now_ms() + linger.saturating_mul(1000));
            let left = end.saturating_sub(crate::sys::now_ms());
            if left == 0 {
                return;
            }
            left.min(i32::MAX as u64) as i32
        } else {
            -1
        };
        if let Err(e) = crate::sys::poll(&mut p, wait) {
            if e.kind() != io::ErrorKind::Interrupted {
                return;
            }
        }
    }
}

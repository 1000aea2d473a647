//! TLS through the system's OpenSSL (ffi.rs, loaded at run time): server
//! and client contexts (TLS 1.2 and 1.3 only, no compression, no
//! renegotiation), one connection over a pair of non-blocking descriptors,
//! handshakes with a deadline. Used by tls-wrap (wrap.rs) and by
//! remote-send's STARTTLS; protocol programs never come here.

pub mod ffi;
#[deny(unsafe_code)]
pub mod wrap;

use ffi::{Lib, Ssl, SslCtx};
use std::ffi::{c_int, c_void};
use std::io;

/// An SSL_CTX: the settings shared by connections.
pub struct Ctx {
    p: *mut SslCtx,
    l: &'static Lib,
}

// SAFETY: an SSL_CTX may be shared once set up (OpenSSL's threading
// rules) and nothing changes it after; tls-wrap keeps one in a static for
// tcp-serve's forked children.
unsafe impl Send for Ctx {}
// SAFETY: as for Send.
unsafe impl Sync for Ctx {}

impl Drop for Ctx {
    fn drop(&mut self) {
        // SAFETY: self.p is the live SSL_CTX this struct owns, freed once.
        unsafe { (self.l.SSL_CTX_free)(self.p) };
    }
}

fn fail(l: &Lib, what: &str) -> String {
    match ffi::last_error(l) {
        Some(e) => format!("{what}: {e}"),
        None => what.to_string(),
    }
}

impl Ctx {
    fn new(server: bool) -> Result<Ctx, String> {
        let l = ffi::lib()?;
        // SAFETY: the method getters take nothing and return static data.
        let m = unsafe {
            if server {
                (l.TLS_server_method)()
            } else {
                (l.TLS_client_method)()
            }
        };
        // SAFETY: m is a method from the library; a null result is checked.
        let p = unsafe { (l.SSL_CTX_new)(m) };
        if p.is_null() {
            return Err(fail(l, "unable to make a TLS context"));
        }
        let c = Ctx { p, l };
        // SAFETY: p is a live SSL_CTX; this ctrl takes no pointer.
        let min = unsafe {
            (l.SSL_CTX_ctrl)(
                p,
                ffi::SSL_CTRL_SET_MIN_PROTO_VERSION,
                ffi::TLS1_2_VERSION,
                std::ptr::null_mut(),
            )
        };
        if min != 1 {
            return Err(fail(l, "unable to require TLS 1.2"));
        }
        // SAFETY: p is a live SSL_CTX; these calls take flags only.
        unsafe {
            (l.SSL_CTX_set_options)(
                p,
                // A peer that closes without close_notify has ended the
                // session: the protocols inside are self-delimiting.
                ffi::SSL_OP_IGNORE_UNEXPECTED_EOF
                    | ffi::SSL_OP_NO_COMPRESSION
                    | ffi::SSL_OP_NO_RENEGOTIATION
                    | ffi::SSL_OP_CIPHER_SERVER_PREFERENCE,
            );
            (l.SSL_CTX_ctrl)(
                p,
                ffi::SSL_CTRL_MODE,
                ffi::SSL_MODE_ENABLE_PARTIAL_WRITE
                    | ffi::SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER
                    | ffi::SSL_MODE_RELEASE_BUFFERS,
                std::ptr::null_mut(),
            );
        }
        Ok(c)
    }

    /// A server context with the certificate chain and key in PEM files.
    pub fn server(cert: &[u8], key: &[u8]) -> Result<Ctx, String> {
        let c = Ctx::new(true)?;
        let l = c.l;
        let cf = crate::sys::cstr(cert).map_err(|e| e.to_string())?;
        let kf = crate::sys::cstr(key).map_err(|e| e.to_string())?;
        let show = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        // SAFETY: c.p is a live SSL_CTX, cf a NUL-terminated path.
        if unsafe { (l.SSL_CTX_use_certificate_chain_file)(c.p, cf.as_ptr()) } != 1 {
            return Err(fail(
                l,
                &format!("unable to load certificate {}", show(cert)),
            ));
        }
        // SAFETY: c.p is a live SSL_CTX, kf a NUL-terminated path.
        if unsafe { (l.SSL_CTX_use_PrivateKey_file)(c.p, kf.as_ptr(), ffi::SSL_FILETYPE_PEM) } != 1
        {
            return Err(fail(l, &format!("unable to load key {}", show(key))));
        }
        // SAFETY: c.p is a live SSL_CTX.
        if unsafe { (l.SSL_CTX_check_private_key)(c.p) } != 1 {
            return Err(fail(l, "key does not match certificate"));
        }
        Ok(c)
    }

    /// A client context; with `trust`, it trusts the system's CAs (or
    /// $SSL_CERT_FILE, $SSL_CERT_DIR), loaded only then: opportunistic
    /// TLS verifies nothing and need not read the CA bundle.
    pub fn client(trust: bool) -> Result<Ctx, String> {
        let c = Ctx::new(false)?;
        // SAFETY: c.p is a live SSL_CTX.
        if trust && unsafe { (c.l.SSL_CTX_set_default_verify_paths)(c.p) } != 1 {
            return Err(fail(c.l, "unable to load trusted certificates"));
        }
        Ok(c)
    }

    /// Serves other certificates by SNI name: `names` pairs a lower-case
    /// host name (`*.example.org` matches one label) with its context.
    /// The contexts must live as long as this one (tls-wrap keeps them
    /// until it exits).
    pub fn sni(&self, names: &'static Vec<(Vec<u8>, Ctx)>) {
        // SAFETY: self.p is live; pick_cert has the callback's C signature
        // and names lives for ever ('static), as its argument must.
        unsafe {
            (self.l.SSL_CTX_callback_ctrl)(
                self.p,
                ffi::SSL_CTRL_SET_TLSEXT_SERVERNAME_CB,
                Some(pick_cert),
            );
            // SSL_CTX_set_tlsext_servername_arg
            (self.l.SSL_CTX_ctrl)(self.p, 54, 0, names as *const _ as *mut c_void);
        }
    }
}

/// Whether `pattern` (lower case; `*.` matches one label) names `host`.
pub fn name_matches(pattern: &[u8], host: &[u8]) -> bool {
    let h = host.to_ascii_lowercase();
    match pattern.strip_prefix(b"*.") {
        Some(rest) => match memchr::memchr(b'.', &h) {
            Some(i) => i > 0 && &h[i + 1..] == rest,
            None => false,
        },
        None => h == pattern,
    }
}

extern "C" fn pick_cert(ssl: *mut Ssl, _al: *mut c_int, arg: *mut c_void) -> c_int {
    let Ok(l) = ffi::lib() else {
        return ffi::SSL_TLSEXT_ERR_OK;
    };
    // SAFETY: arg is the &'static Vec that Ctx::sni registered.
    let names = unsafe { &*(arg as *const Vec<(Vec<u8>, Ctx)>) };
    // SAFETY: ssl is the connection OpenSSL called us for.
    let host = ffi::text(unsafe { (l.SSL_get_servername)(ssl, ffi::TLSEXT_NAMETYPE_HOST_NAME) });
    if let Some((_, c)) = names.iter().find(|(n, _)| name_matches(n, &host)) {
        // SAFETY: ssl is live; c.p lives as long as the program (see sni).
        unsafe { (l.SSL_set_SSL_CTX)(ssl, c.p) };
    }
    ffi::SSL_TLSEXT_ERR_OK
}

/// What one read, write or handshake step did.
#[derive(Debug)]
pub enum Step {
    Done(usize),
    WantRead,
    WantWrite,
    /// The peer closed (close_notify or end of file).
    Eof,
    Fail(String),
}

/// One TLS connection over descriptors `rfd`/`wfd` (non-blocking).
pub struct Tls {
    ssl: *mut Ssl,
    l: &'static Lib,
    rfd: i32,
    wfd: i32,
    closed: bool,
}

impl Drop for Tls {
    fn drop(&mut self) {
        // SAFETY: self.ssl is the live SSL this struct owns, freed once.
        unsafe { (self.l.SSL_free)(self.ssl) };
    }
}

impl Tls {
    pub fn new(ctx: &Ctx, rfd: i32, wfd: i32) -> Result<Tls, String> {
        let l = ctx.l;
        // SAFETY: ctx.p is a live SSL_CTX; a null result is checked.
        let ssl = unsafe { (l.SSL_new)(ctx.p) };
        if ssl.is_null() {
            return Err(fail(l, "unable to make a TLS connection"));
        }
        let t = Tls {
            ssl,
            l,
            rfd,
            wfd,
            closed: false,
        };
        // SAFETY: ssl is live; descriptors are plain ints to OpenSSL.
        let ok = unsafe { (l.SSL_set_rfd)(ssl, rfd) == 1 && (l.SSL_set_wfd)(ssl, wfd) == 1 };
        if !ok {
            return Err(fail(l, "unable to attach the connection"));
        }
        Ok(t)
    }

    /// Client side: send `name` as SNI and, with `verify`, refuse a peer
    /// whose certificate is not valid for it.
    pub fn client_name(&mut self, name: &[u8], verify: bool) -> Result<(), String> {
        let c = crate::sys::cstr(name).map_err(|e| e.to_string())?;
        // SAFETY: self.ssl is live; OpenSSL copies the NUL-terminated name c.
        unsafe {
            (self.l.SSL_ctrl)(
                self.ssl,
                ffi::SSL_CTRL_SET_TLSEXT_HOSTNAME,
                ffi::TLSEXT_NAMETYPE_HOST_NAME as _,
                c.as_ptr() as *mut c_void,
            );
            if verify {
                (self.l.SSL_set_verify)(self.ssl, ffi::SSL_VERIFY_PEER, std::ptr::null());
                if (self.l.SSL_set1_host)(self.ssl, c.as_ptr()) != 1 {
                    return Err(fail(self.l, "unable to set the name to verify"));
                }
            }
        }
        Ok(())
    }

    fn step(&mut self, r: c_int) -> Step {
        if r > 0 {
            return Step::Done(r as usize);
        }
        // SAFETY: self.ssl is live.
        match unsafe { (self.l.SSL_get_error)(self.ssl, r) } {
            ffi::SSL_ERROR_WANT_READ => Step::WantRead,
            ffi::SSL_ERROR_WANT_WRITE => Step::WantWrite,
            ffi::SSL_ERROR_ZERO_RETURN => Step::Eof,
            ffi::SSL_ERROR_SYSCALL => {
                let e = io::Error::last_os_error();
                match ffi::last_error(self.l) {
                    Some(t) => Step::Fail(t),
                    None if r == 0 || e.raw_os_error() == Some(0) => Step::Eof,
                    None => Step::Fail(crate::exit::errtext(&e)),
                }
            }
            _ => {
                let t = ffi::last_error(self.l).unwrap_or_else(|| "TLS error".into());
                // SAFETY: self.ssl is live.
                let v = unsafe { (self.l.SSL_get_verify_result)(self.ssl) };
                if v != 0 {
                    // SAFETY: takes a number, returns a static string.
                    let why = ffi::text(unsafe { (self.l.X509_verify_cert_error_string)(v) });
                    return Step::Fail(format!(
                        "certificate verification failed: {}",
                        String::from_utf8_lossy(&why)
                    ));
                }
                Step::Fail(t)
            }
        }
    }

    /// Waits for the descriptor a step asked for; false at the deadline.
    fn wait(&self, s: &Step, deadline_ms: u64) -> io::Result<bool> {
        let left = deadline_ms.saturating_sub(crate::sys::now_ms());
        if left == 0 {
            return Ok(false);
        }
        let (fd, w) = match s {
            Step::WantWrite => (self.wfd, true),
            _ => (self.rfd, false),
        };
        crate::sys::wait_fd_ms(fd, w, left)
    }

    /// The handshake (server side with `server`), at most `secs` seconds.
    pub fn handshake(&mut self, server: bool, secs: u64) -> Result<(), String> {
        let deadline = crate::sys::now_ms() + secs.saturating_mul(1000);
        loop {
            // SAFETY: self.ssl is live, its descriptors attached.
            let r = unsafe {
                if server {
                    (self.l.SSL_accept)(self.ssl)
                } else {
                    (self.l.SSL_connect)(self.ssl)
                }
            };
            match self.step(r) {
                Step::Done(_) => return Ok(()),
                Step::Eof => return Err("connection closed during the handshake".into()),
                Step::Fail(e) => return Err(e),
                s => match self.wait(&s, deadline) {
                    Ok(true) => {}
                    Ok(false) => return Err("handshake timed out".into()),
                    Err(e) => return Err(crate::exit::errtext(&e)),
                },
            }
        }
    }

    pub fn read(&mut self, buf: &mut [u8]) -> Step {
        let n = buf.len().min(c_int::MAX as usize) as c_int;
        // SAFETY: self.ssl is live; OpenSSL writes at most n bytes into buf.
        let r = unsafe { (self.l.SSL_read)(self.ssl, buf.as_mut_ptr() as *mut c_void, n) };
        self.step(r)
    }

    pub fn write(&mut self, buf: &[u8]) -> Step {
        let n = buf.len().min(c_int::MAX as usize) as c_int;
        // SAFETY: self.ssl is live; OpenSSL reads at most n bytes of buf.
        let r = unsafe { (self.l.SSL_write)(self.ssl, buf.as_ptr() as *const c_void, n) };
        self.step(r)
    }

    /// Reads some bytes, waiting at most `secs` (Ok(0) at the peer's end).
    pub fn read_timeout(&mut self, buf: &mut [u8], secs: u64) -> io::Result<usize> {
        let deadline = crate::sys::now_ms() + secs.saturating_mul(1000);
        loop {
            match self.read(buf) {
                Step::Done(n) => return Ok(n),
                Step::Eof => return Ok(0),
                Step::Fail(e) => return Err(io::Error::other(e)),
                s => {
                    if !self.wait(&s, deadline)? {
                        return Err(io::Error::from(io::ErrorKind::TimedOut));
                    }
                }
            }
        }
    }

    /// Writes all of `buf`, at most `secs` seconds per wait.
    pub fn write_timeout(&mut self, mut buf: &[u8], secs: u64) -> io::Result<()> {
        while !buf.is_empty() {
            let deadline = crate::sys::now_ms() + secs.saturating_mul(1000);
            match self.write(buf) {
                Step::Done(n) => buf = &buf[n..],
                Step::Eof => return Err(io::Error::from(io::ErrorKind::BrokenPipe)),
                Step::Fail(e) => return Err(io::Error::other(e)),
                s => {
                    if !self.wait(&s, deadline)? {
                        return Err(io::Error::from(io::ErrorKind::TimedOut));
                    }
                }
            }
        }
        Ok(())
    }

    /// Sends close_notify once (without waiting for the peer's).
    pub fn close(&mut self) {
        if !self.closed {
            self.closed = true;
            // SAFETY: self.ssl is live.
            unsafe { (self.l.SSL_shutdown)(self.ssl) };
        }
    }

    /// `TLSv1.3`, as mod_ssl's SSL_PROTOCOL.
    pub fn version(&self) -> Vec<u8> {
        // SAFETY: self.ssl is live; the result is a static string.
        ffi::text(unsafe { (self.l.SSL_get_version)(self.ssl) })
    }

    /// The OpenSSL cipher name, as mod_ssl's SSL_CIPHER.
    pub fn cipher(&self) -> Vec<u8> {
        // SAFETY: self.ssl is live; a null result is checked.
        let c = unsafe { (self.l.SSL_get_current_cipher)(self.ssl) };
        if c.is_null() {
            return Vec::new();
        }
        // SAFETY: c is the connection's cipher, non-null.
        ffi::text(unsafe { (self.l.SSL_CIPHER_get_name)(c) })
    }

    /// The SNI name the client asked for.
    pub fn servername(&self) -> Option<Vec<u8>> {
        // SAFETY: self.ssl is live; the name is owned by it and copied at once.
        let t = ffi::text(unsafe {
            (self.l.SSL_get_servername)(self.ssl, ffi::TLSEXT_NAMETYPE_HOST_NAME)
        });
        (!t.is_empty()).then_some(t)
    }

    /// Whether the peer showed a certificate that verified (client side).
    pub fn verified(&self) -> bool {
        // SAFETY: self.ssl is live; the reference taken is freed below.
        let c = unsafe { (self.l.SSL_get1_peer_certificate)(self.ssl) };
        if c.is_null() {
            return false;
        }
        // SAFETY: c is the reference SSL_get1_peer_certificate gave us.
        unsafe { (self.l.X509_free)(c) };
        // SAFETY: self.ssl is live.
        unsafe { (self.l.SSL_get_verify_result)(self.ssl) == 0 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sni_names() {
        assert!(name_matches(b"mail.example.org", b"Mail.Example.ORG"));
        assert!(!name_matches(b"mail.example.org", b"example.org"));
        assert!(name_matches(b"*.example.org", b"imap.example.org"));
        assert!(!name_matches(b"*.example.org", b"a.b.example.org"));
        assert!(!name_matches(b"*.example.org", b"example.org"));
        assert!(!name_matches(b"*.example.org", b".example.org"));
    }
}

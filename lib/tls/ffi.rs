//! The system's OpenSSL 3 (libssl.so.3, libcrypto.so.3), loaded at run
//! time with dlopen: the only FFI to OpenSSL in pipemail. Nothing links
//! against it, so the build needs no libssl-dev and only the programs that
//! speak TLS (tls-wrap, remote-send when a peer offers STARTTLS) load it.
//! No cryptography of ours: these are the library's own entry points.

use std::ffi::{c_char, c_int, c_long, c_ulong, c_void, CStr};
use std::sync::OnceLock;

pub enum SslCtx {}
pub enum Ssl {}
pub enum SslMethod {}
pub enum SslCipher {}
pub enum X509 {}

pub const SSL_FILETYPE_PEM: c_int = 1;
pub const SSL_ERROR_SSL: c_int = 1;
pub const SSL_ERROR_WANT_READ: c_int = 2;
pub const SSL_ERROR_WANT_WRITE: c_int = 3;
pub const SSL_ERROR_SYSCALL: c_int = 5;
pub const SSL_ERROR_ZERO_RETURN: c_int = 6;
pub const SSL_VERIFY_NONE: c_int = 0;
pub const SSL_VERIFY_PEER: c_int = 1;
pub const SSL_CTRL_MODE: c_int = 33;
pub const SSL_CTRL_SET_TLSEXT_SERVERNAME_CB: c_int = 53;
pub const SSL_CTRL_SET_TLSEXT_HOSTNAME: c_int = 55;
pub const SSL_CTRL_SET_MIN_PROTO_VERSION: c_int = 123;
pub const TLS1_2_VERSION: c_long = 0x0303;
pub const TLSEXT_NAMETYPE_HOST_NAME: c_int = 0;
pub const SSL_TLSEXT_ERR_OK: c_int = 0;
pub const SSL_MODE_ENABLE_PARTIAL_WRITE: c_long = 0x1;
pub const SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER: c_long = 0x2;
pub const SSL_MODE_RELEASE_BUFFERS: c_long = 0x10;
pub const SSL_OP_IGNORE_UNEXPECTED_EOF: u64 = 1 << 7;
pub const SSL_OP_NO_COMPRESSION: u64 = 1 << 17;
pub const SSL_OP_NO_RENEGOTIATION: u64 = 1 << 30;
pub const SSL_OP_CIPHER_SERVER_PREFERENCE: u64 = 1 << 22;

pub type ServernameCb = extern "C" fn(*mut Ssl, *mut c_int, *mut c_void) -> c_int;

macro_rules! openssl {
    ($($name:ident : fn($($a:ty),*) -> $r:ty;)*) => {
        /// The entry points, resolved once.
        #[allow(non_snake_case)]
        pub struct Lib { $(pub $name: unsafe extern "C" fn($($a),*) -> $r,)* }

        fn resolve(h: *mut c_void) -> Result<Lib, String> {
            // SAFETY: h is an open handle; each symbol found is OpenSSL's
            // function of that name, whose C signature the table states.
            Ok(Lib { $($name: unsafe {
                let p = libc::dlsym(h, concat!(stringify!($name), "\0").as_ptr() as *const c_char);
                if p.is_null() {
                    return Err(format!("libssl.so.3 has no {}", stringify!($name)));
                }
                std::mem::transmute::<*mut c_void, unsafe extern "C" fn($($a),*) -> $r>(p)
            },)* })
        }
    };
}

openssl! {
    TLS_server_method: fn() -> *const SslMethod;
    TLS_client_method: fn() -> *const SslMethod;
    SSL_CTX_new: fn(*const SslMethod) -> *mut SslCtx;
    SSL_CTX_free: fn(*mut SslCtx) -> ();
    SSL_CTX_ctrl: fn(*mut SslCtx, c_int, c_long, *mut c_void) -> c_long;
    SSL_CTX_callback_ctrl: fn(*mut SslCtx, c_int, Option<ServernameCb>) -> c_long;
    SSL_CTX_set_options: fn(*mut SslCtx, u64) -> u64;
    SSL_CTX_use_certificate_chain_file: fn(*mut SslCtx, *const c_char) -> c_int;
    SSL_CTX_use_PrivateKey_file: fn(*mut SslCtx, *const c_char, c_int) -> c_int;
    SSL_CTX_check_private_key: fn(*const SslCtx) -> c_int;
    SSL_CTX_set_default_verify_paths: fn(*mut SslCtx) -> c_int;
    SSL_new: fn(*mut SslCtx) -> *mut Ssl;
    SSL_free: fn(*mut Ssl) -> ();
    SSL_set_rfd: fn(*mut Ssl, c_int) -> c_int;
    SSL_set_wfd: fn(*mut Ssl, c_int) -> c_int;
    SSL_accept: fn(*mut Ssl) -> c_int;
    SSL_connect: fn(*mut Ssl) -> c_int;
    SSL_read: fn(*mut Ssl, *mut c_void, c_int) -> c_int;
    SSL_write: fn(*mut Ssl, *const c_void, c_int) -> c_int;
    SSL_pending: fn(*const Ssl) -> c_int;
    SSL_get_error: fn(*const Ssl, c_int) -> c_int;
    SSL_shutdown: fn(*mut Ssl) -> c_int;
    SSL_ctrl: fn(*mut Ssl, c_int, c_long, *mut c_void) -> c_long;
    SSL_get_version: fn(*const Ssl) -> *const c_char;
    SSL_get_current_cipher: fn(*const Ssl) -> *const SslCipher;
    SSL_CIPHER_get_name: fn(*const SslCipher) -> *const c_char;
    SSL_get_servername: fn(*const Ssl, c_int) -> *const c_char;
    SSL_set_SSL_CTX: fn(*mut Ssl, *mut SslCtx) -> *mut SslCtx;
    SSL_set_verify: fn(*mut Ssl, c_int, *const c_void) -> ();
    SSL_set1_host: fn(*mut Ssl, *const c_char) -> c_int;
    SSL_get_verify_result: fn(*const Ssl) -> c_long;
    SSL_get1_peer_certificate: fn(*const Ssl) -> *mut X509;
    X509_free: fn(*mut X509) -> ();
    X509_verify_cert_error_string: fn(c_long) -> *const c_char;
    ERR_get_error: fn() -> c_ulong;
    ERR_error_string_n: fn(c_ulong, *mut c_char, usize) -> ();
    ERR_clear_error: fn() -> ();
}

static LIB: OnceLock<Result<Lib, String>> = OnceLock::new();

/// The library, loaded at the first call; an error text when the system
/// has no OpenSSL 3 runtime.
pub fn lib() -> Result<&'static Lib, String> {
    LIB.get_or_init(|| {
        // SAFETY: a NUL-terminated name; loading libssl runs only its own
        // initialisers.
        let h = unsafe { libc::dlopen(c"libssl.so.3".as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
        if h.is_null() {
            // SAFETY: dlerror takes nothing; its text is read at once.
            let e = unsafe { libc::dlerror() };
            let why = if e.is_null() {
                "unknown error".to_string()
            } else {
                // SAFETY: a non-null dlerror result is a NUL-terminated string.
                unsafe { CStr::from_ptr(e) }.to_string_lossy().into_owned()
            };
            return Err(format!("unable to load libssl.so.3: {why}"));
        }
        resolve(h)
    })
    .as_ref()
    .map_err(|e| e.clone())
}

/// A C string from the library as bytes (empty for NULL). Only ever
/// called with a pointer OpenSSL just returned (or a local buffer).
#[allow(clippy::not_unsafe_ptr_arg_deref)]
pub fn text(p: *const c_char) -> Vec<u8> {
    if p.is_null() {
        return Vec::new();
    }
    // SAFETY: callers pass a NUL-terminated string OpenSSL just returned
    // (or a local buffer it filled), see above.
    unsafe { CStr::from_ptr(p) }.to_bytes().to_vec()
}

/// The oldest queued OpenSSL error as text, the queue emptied; `None`
/// when the queue is empty.
pub fn last_error(l: &Lib) -> Option<String> {
    // SAFETY: the error-queue calls take no pointers, except
    // ERR_error_string_n, which writes at most buf.len() bytes into buf.
    let e = unsafe { (l.ERR_get_error)() };
    let mut buf = [0 as c_char; 256];
    if e != 0 {
        // SAFETY: as above.
        unsafe { (l.ERR_error_string_n)(e, buf.as_mut_ptr(), buf.len()) };
    }
    // SAFETY: as above.
    unsafe { (l.ERR_clear_error)() };
    (e != 0).then(|| String::from_utf8_lossy(&text(buf.as_ptr())).into_owned())
}

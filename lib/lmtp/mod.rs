//! LMTP (RFC 2033): the client side that deliver-lmtp(8) uses to hand a
//! local delivery to an LMTP server (Dovecot, Cyrus), with remote-send's
//! reply reader and CRLF/dot-stuffing encoder; the server lmtp-recv(8) on
//! smtp-recv's connection and DATA code, delivering through local-spawn(8)
//! when it runs under it.

pub mod client;
pub mod server;

//! LMTP (RFC 2033): the client side that deliver-lmtp(8) uses to hand a
//! local delivery to an LMTP server (Dovecot, Cyrus), with remote-send's
//! reply reader and CRLF/dot-stuffing encoder; the server lmtp-recv(8) on
//! smtp-recv's connection and DATA code; and lmtp-recv's root helper.

pub mod client;
pub mod helper;
pub mod server;

//! LMTP (RFC 2033): the client side that deliver-lmtp(8) uses to hand a
//! local delivery to an LMTP server (Dovecot, Cyrus). Replies are read with
//! remote-send's reply reader and the message is sent with its CRLF and
//! dot-stuffing encoder.

pub mod client;
pub mod server;

//! Integration tests: they run the built programs (one crate, one module
//! per area, to keep the link step short on small machines).

mod common;
mod inject;
mod smtp;
mod tcpserve;
mod deliver;
mod queuerun;
mod remote;
mod pop3;
mod submit;
mod imap;

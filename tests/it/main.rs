//! Integration tests: they run the built programs (one crate, one module
//! per area, to keep the link step short on small machines). They may
//! call libc directly to set up odd conditions (closed descriptors...).
#![allow(unsafe_code)]

mod common;
mod deliver;
mod deploy;
mod e2e;
mod faults;
mod fuzzreg;
mod house;
mod imap;
mod imap_load;
mod inject;
mod lmtp;
mod maildir_clean;
mod pop3;
mod queuerun;
mod queuestat;
mod rbl;
mod remote;
mod smtp;
mod submit;
mod tcpserve;
mod tls;
mod usage;

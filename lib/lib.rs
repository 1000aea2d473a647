//! pipemail: the shared crate behind every program in bin/.
//!
//! Foundation: exit codes and diagnostics, system calls, control files,
//! dates, running programs, and the queue's submission side. Each protocol
//! or delivery area has its own module below.
//!
//! Unsafe code lives in `sys` (system calls, syslog, iconv) and in the
//! FFI modules `tls` (OpenSSL by dlopen) and `auth::crypt` (libcrypt);
//! everything else is safe Rust.

#![deny(unsafe_code)]

pub mod auth;
pub mod base64;
pub mod control;
pub mod date;
pub mod deliver;
pub mod dns;
pub mod enqueue;
pub mod exec;
pub mod exit;
pub mod header;
pub mod imap;
pub mod lmtp;
pub mod log;
pub mod maildir;
pub mod maildir_clean;
pub mod maildir_make;
pub mod mbox;
pub mod mime;
pub mod parse;
pub mod pop3;
pub mod queue;
pub mod queuerun;
pub mod rbl;
pub mod relay;
pub mod remote;
pub mod rules;
pub mod smtp;
pub mod submit;
#[allow(unsafe_code)]
pub mod sys;
pub mod tcpserve;
#[allow(unsafe_code)]
pub mod tls;
pub mod ucspitls;
pub mod users;

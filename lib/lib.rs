//! pipemail: the shared crate behind every program in bin/.
//!
//! Foundation: exit codes and diagnostics, system calls, control files,
//! dates, running programs, and the queue's submission side. Each protocol
//! or delivery area has its own module below.

pub mod control;
pub mod date;
pub mod exec;
pub mod exit;
pub mod imap;
pub mod log;
pub mod mime;
pub mod parse;
pub mod qq;
pub mod queue;
pub mod sys;
pub mod users;

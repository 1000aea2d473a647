//! Local submission: mail-inject's header completion and envelope
//! (inject), the sendmail command line (sendmail), queue-filter (filter),
//! and the line reader they share (input).

pub mod filter;
pub mod inject;
pub mod input;
pub mod sendmail;

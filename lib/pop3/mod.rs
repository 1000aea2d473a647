//! POP3 (RFC 1939, 2449, 5034): the authorization state (pop3-login) and
//! the transaction and update states on a Maildir (pop3d).

pub mod login;
pub mod maildir;
pub mod server;

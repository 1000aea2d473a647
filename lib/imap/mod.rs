//! IMAP4rev1 (RFC 3501) for imap-login and imapd: the command reader and
//! grammar ([`parse`]), the response writer ([`resp`]), the selected folder
//! ([`store`]) with persistent UIDs ([`uidlist`]) and keywords
//! ([`keywords`]), FETCH ([`fetch`]), SEARCH ([`search`]),
//! mod-sequences ([`modseq`]), the
//! authenticated/selected states ([`session`]) and the not-authenticated
//! state with the checkpassword call ([`login`]). Folder names, flags and
//! sizes are the Maildir module's ([`crate::maildir`]).

pub mod cache;
pub mod fetch;
pub mod keywords;
pub mod list;
pub mod login;
pub mod modseq;
pub mod parse;
pub mod resp;
pub mod search;
pub mod session;
pub mod sort;
pub mod store;
pub mod uidlist;

/// What imapd advertises once logged in.
pub const CAPS: &str =
    "IMAP4rev1 LITERAL+ ID ENABLE IDLE NAMESPACE UIDPLUS UNSELECT MOVE SPECIAL-USE CHILDREN LIST-EXTENDED LIST-STATUS ESEARCH WITHIN BINARY SORT THREAD=ORDEREDSUBJECT THREAD=REFERENCES CONDSTORE QRESYNC";

/// Longest line segment of a command (the text before the end of the line
/// or between two literals), bytes.
pub const MAX_LINE: usize = 65536;

/// After login, all line segments of one command together (bytes; literal
/// data not counted): `a {0+}` segments cannot grow a command without end.
pub const MAX_TEXT: usize = 65536;

/// The answer to a command over its [`parse::Limits`]; the connection ends.
pub const TOO_MUCH: &[u8] = b" BAD [TOOBIG] Command too long.\r\n* BYE Command too long.";

/// Default largest literal (APPEND message size), `IMAPMAXLITERAL` overrides.
pub const MAX_LITERAL: usize = 64 << 20;

/// Idle timeout for a client, seconds (RFC 3501 asks for at least 30 minutes).
pub const TIMEOUT: u64 = 1800;

/// A number from the environment, else `dflt`.
pub fn env_number(name: &str, dflt: u64) -> u64 {
    std::env::var_os(name)
        .and_then(|v| crate::parse::number(std::os::unix::ffi::OsStrExt::as_bytes(v.as_os_str())))
        .unwrap_or(dflt)
}

/// `t`, or `*` when the client sent no tag.
pub fn tag_or_star(t: &[u8]) -> &[u8] {
    if t.is_empty() {
        b"*"
    } else {
        t
    }
}

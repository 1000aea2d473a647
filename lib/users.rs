//! Where a recipient address goes: local or remote (control/locals,
//! control/virtualdomains), and which account receives a local address
//! (users/assign, the system accounts, the alias user).
//!
//! OWNER: the delivery area (deliver-local). queue-run, local-spawn and
//! smtp-recv (RCPT validation) call these functions; their signatures are
//! the contract between those areas.

use crate::control::ControlError;

/// Where an address is delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// Delivered here, to `local` (after virtualdomains rewriting) @ `domain`.
    Local { local: Vec<u8>, domain: Vec<u8> },
    /// Sent to another host by the remote channel.
    Remote,
}

/// The account a local part is delivered to (qmail-getpw's six fields).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub user: Vec<u8>,
    pub uid: u32,
    pub gid: u32,
    pub home: Vec<u8>,
    /// `-` when the address has an extension part, else empty.
    pub dash: Vec<u8>,
    pub ext: Vec<u8>,
}

/// Routes `addr` (`local@domain`, domain compared without case):
/// domains in control/locals are local as they are; a control/virtualdomains
/// match (`user@dom:prepend`, `dom:prepend`, `.dom:prepend`, `:prepend`;
/// empty prepend = exception) rewrites the local part to `prepend-local`.
pub fn route(addr: &[u8]) -> Result<Route, ControlError> {
    let (local, domain) = crate::parse::split_addr(addr);
    let dom = domain.to_ascii_lowercase();
    if crate::control::locals()?.iter().any(|l| *l == dom) {
        return Ok(Route::Local {
            local: local.to_vec(),
            domain: domain.to_vec(),
        });
    }
    let vd = crate::control::lines("virtualdomains")?.unwrap_or_default();
    let lowaddr = addr.to_ascii_lowercase();
    let mut best: Option<(usize, Vec<u8>)> = None;
    for l in &vd {
        let Some(c) = memchr::memchr(b':', l) else {
            continue;
        };
        let (key, prepend) = (l[..c].to_ascii_lowercase(), l[c + 1..].to_vec());
        // Exact address beats exact domain beats the longest .suffix beats ":".
        let rank = if key.contains(&b'@') {
            if key == lowaddr {
                Some(usize::MAX)
            } else {
                None
            }
        } else if key == dom {
            Some(usize::MAX - 1)
        } else if key.is_empty() {
            Some(0)
        } else if key[0] == b'.' && dom.ends_with(&key) {
            Some(key.len())
        } else {
            None
        };
        if let Some(r) = rank {
            if best.as_ref().map_or(true, |(b, _)| r > *b) {
                best = Some((r, prepend));
            }
        }
    }
    match best {
        Some((_, p)) if !p.is_empty() => {
            let mut l = p;
            l.push(b'-');
            l.extend_from_slice(local);
            Ok(Route::Local {
                local: l,
                domain: domain.to_vec(),
            })
        }
        _ => Ok(Route::Remote),
    }
}

/// The account for a (rewritten) local part: users/assign, then the
/// system accounts, then the alias user. Ok(None): nobody takes it.
pub fn lookup(local: &[u8]) -> Result<Option<Account>, ControlError> {
    let _ = local;
    Ok(None) // written by the delivery area
}

/// Whether a local address would be accepted by deliver-local (an account,
/// its dot-file for the extension, or the alias user's -default files).
/// smtp-recv refuses unknown local recipients at RCPT with 550 5.1.1.
pub fn recipient_exists(local: &[u8], domain: &[u8]) -> Result<bool, ControlError> {
    let _ = (local, domain);
    Ok(true) // written by the delivery area
}

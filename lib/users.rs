//! Where a recipient address goes: local or remote (control/locals,
//! control/virtualdomains), and which account receives a local address
//! (users/assign, the system accounts, the alias user).
//!
//! OWNER: the delivery area (deliver-local). queue-run, local-spawn and
//! smtp-recv (RCPT validation) call these functions; their signatures are
//! the contract between those areas.

use crate::control::ControlError;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

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

/// control/locals (else control/me) and control/virtualdomains, parsed:
/// read once, then route any number of addresses without touching the
/// files again (smtp-recv holds one per session).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Routes {
    /// The local domains, lower case; the first is smtp-recv's default.
    pub locals: Vec<Vec<u8>>,
    /// virtualdomains lines: the key (lower case) and the prepend.
    virtual_domains: Vec<(Vec<u8>, Vec<u8>)>,
}

impl Routes {
    /// Reads control/locals and control/virtualdomains.
    pub fn load() -> Result<Routes, ControlError> {
        let vd = crate::control::lines("virtualdomains")?.unwrap_or_default();
        Ok(Routes {
            locals: crate::control::locals()?,
            virtual_domains: vd
                .iter()
                .filter_map(|l| {
                    let c = memchr::memchr(b':', l)?;
                    Some((l[..c].to_ascii_lowercase(), l[c + 1..].to_vec()))
                })
                .collect(),
        })
    }

    /// Routes `addr` (`local@domain`, domain compared without case):
    /// domains in control/locals are local as they are; a
    /// control/virtualdomains match (`user@dom:prepend`, `dom:prepend`,
    /// `.dom:prepend`, `:prepend`; empty prepend = exception) rewrites the
    /// local part to `prepend-local`.
    pub fn route(&self, addr: &[u8]) -> Route {
        let (local, domain) = crate::parse::split_addr(addr);
        let dom = domain.to_ascii_lowercase();
        if self.locals.contains(&dom) {
            return Route::Local {
                local: local.to_vec(),
                domain: domain.to_vec(),
            };
        }
        let lowaddr = addr.to_ascii_lowercase();
        let mut best: Option<(usize, &[u8])> = None;
        for (key, prepend) in &self.virtual_domains {
            // Exact address beats exact domain beats the longest .suffix beats ":".
            let rank = if key.contains(&b'@') {
                if *key == lowaddr {
                    Some(usize::MAX)
                } else {
                    None
                }
            } else if *key == dom {
                Some(usize::MAX - 1)
            } else if key.is_empty() {
                Some(0)
            } else if key[0] == b'.' && dom.ends_with(key) {
                Some(key.len())
            } else {
                None
            };
            if let Some(r) = rank {
                if best.as_ref().is_none_or(|(b, _)| r > *b) {
                    best = Some((r, prepend));
                }
            }
        }
        match best {
            Some((_, p)) if !p.is_empty() => {
                let mut l = p.to_vec();
                l.push(b'-');
                l.extend_from_slice(local);
                Route::Local {
                    local: l,
                    domain: domain.to_vec(),
                }
            }
            _ => Route::Remote,
        }
    }
}

/// Routes one address, reading the control files for it ([`Routes`]
/// reads them once for many).
pub fn route(addr: &[u8]) -> Result<Route, ControlError> {
    Ok(Routes::load()?.route(addr))
}

/// One line of users/assign.
#[derive(Debug, Clone, PartialEq, Eq)]
struct AssignEntry {
    /// `=` line (exact) or `+` line (prefix wildcard).
    exact: bool,
    /// The local part or prefix, lower case.
    key: Vec<u8>,
    account: Account,
}

/// users/assign, parsed (qmail-users(5) text format).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Assign {
    entries: Vec<AssignEntry>,
}

impl Assign {
    /// Parses the text of users/assign; `file` names it in errors.
    /// Lines: `=local:user:uid:gid:home:dash:ext:` and
    /// `+prefix:user:uid:gid:home:dash:pre:`; the last line is `.`;
    /// anything after it is ignored. An empty file assigns nothing.
    pub fn parse(text: &[u8], file: &Path) -> Result<Assign, ControlError> {
        let bad = |line: usize, what: &str| ControlError {
            file: file.to_path_buf(),
            line,
            what: what.to_string(),
        };
        let mut entries = Vec::new();
        if text.is_empty() {
            return Ok(Assign { entries });
        }
        let mut ended = false;
        for (n, raw) in text.split(|&c| c == b'\n').enumerate() {
            let n = n + 1;
            if raw == b"." {
                ended = true;
                break;
            }
            if raw.is_empty() {
                return Err(bad(n, "blank line before the final line with a dot"));
            }
            let exact = match raw[0] {
                b'=' => true,
                b'+' => false,
                _ => return Err(bad(n, "line does not start with = or +")),
            };
            let f: Vec<&[u8]> = raw[1..].split(|&c| c == b':').collect();
            // Seven fields and the empty one after the final colon.
            if f.len() != 8 || !f[7].is_empty() {
                return Err(bad(
                    n,
                    "wrong number of fields (want 7, each ending with a colon)",
                ));
            }
            let uid = crate::parse::number(f[2]).filter(|&u| u <= u32::MAX as u64);
            let gid = crate::parse::number(f[3]).filter(|&g| g <= u32::MAX as u64);
            let (Some(uid), Some(gid)) = (uid, gid) else {
                return Err(bad(n, "uid or gid is not a number"));
            };
            if f[1].is_empty() {
                return Err(bad(n, "empty user name"));
            }
            if f[4].first() != Some(&b'/') {
                return Err(bad(n, "home directory is not an absolute path"));
            }
            let account = Account {
                user: f[1].to_vec(),
                uid: uid as u32,
                gid: gid as u32,
                home: f[4].to_vec(),
                dash: f[5].to_vec(),
                ext: f[6].to_vec(),
            };
            entries.push(AssignEntry {
                exact,
                key: f[0].to_ascii_lowercase(),
                account,
            });
        }
        if !ended {
            return Err(bad(0, "missing final line with a dot"));
        }
        Ok(Assign { entries })
    }

    /// The account for `local`: an exact line beats a wildcard, a longer
    /// wildcard beats a shorter one; a wildcard appends the rest of the
    /// local part (as given) to its ext field.
    pub fn find(&self, local: &[u8]) -> Option<Account> {
        let low = local.to_ascii_lowercase();
        if let Some(e) = self.entries.iter().find(|e| e.exact && e.key == low) {
            return Some(e.account.clone());
        }
        let e = self
            .entries
            .iter()
            .filter(|e| !e.exact && low.starts_with(&e.key))
            .fold(None::<&AssignEntry>, |best, e| match best {
                Some(b) if b.key.len() >= e.key.len() => Some(b),
                _ => Some(e),
            })?;
        let mut a = e.account.clone();
        a.ext.extend_from_slice(&local[e.key.len()..]);
        Some(a)
    }
}

/// users/assign of the current home, read once per process.
/// The cached users/assign: its path, its identity when read (device,
/// inode, size, mtime in ns; None: it did not exist) and its contents.
type Cached = (PathBuf, Option<(u64, u64, u64, i128)>, Arc<Assign>);
static ASSIGN: Mutex<Option<Cached>> = Mutex::new(None);

fn identity(file: &Path) -> Option<(u64, u64, u64, i128)> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(file).ok()?;
    Some((
        m.dev(),
        m.ino(),
        m.size(),
        m.mtime() as i128 * 1_000_000_000 + m.mtime_nsec() as i128,
    ))
}

/// users/assign under `home`, cached: read again only when the file
/// changes (a stat per call), so a long-running local-spawn and the
/// deliveries it forks see an edited file at once.
pub fn assign(home: &Path) -> Result<Arc<Assign>, ControlError> {
    let file = home.join("users/assign");
    let id = identity(&file);
    let mut g = ASSIGN.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((f, i, a)) = g.as_ref() {
        if *f == file && *i == id {
            return Ok(a.clone());
        }
    }
    let a = match std::fs::read(&file) {
        Ok(t) => Assign::parse(&t, &file)?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Assign::default(),
        Err(e) => {
            return Err(ControlError {
                file,
                line: 0,
                what: format!("unable to read: {}", crate::exit::errtext(&e)),
            })
        }
    };
    let a = Arc::new(a);
    *g = Some((file, id, a.clone()));
    Ok(a)
}

fn stat_error(p: &[u8], e: &std::io::Error) -> ControlError {
    ControlError {
        file: PathBuf::from(OsStr::from_bytes(p)),
        line: 0,
        what: format!("unable to stat: {}", crate::exit::errtext(e)),
    }
}

/// qmail-getpw: the longest `user` (or `user-ext` split at a `-`) that is
/// a system account with uid ≠ 0 whose home exists and belongs to it.
pub fn system_account(local: &[u8]) -> Result<Option<Account>, ControlError> {
    let low = local.to_ascii_lowercase();
    let mut cut = low.len();
    loop {
        if cut == low.len() || low[cut] == b'-' {
            let name = &low[..cut];
            if !name.is_empty() && name.len() < 64 && !name.contains(&0) {
                if let Ok(Some(pw)) = crate::sys::getpwnam(name) {
                    if pw.uid != 0 {
                        match std::fs::metadata(OsStr::from_bytes(&pw.dir)) {
                            Ok(m) if m.uid() == pw.uid && pw.dir.first() == Some(&b'/') => {
                                let (dash, ext) = if cut < low.len() {
                                    (b"-".to_vec(), low[cut + 1..].to_vec())
                                } else {
                                    (Vec::new(), Vec::new())
                                };
                                return Ok(Some(Account {
                                    user: pw.name,
                                    uid: pw.uid,
                                    gid: pw.gid,
                                    home: pw.dir,
                                    dash,
                                    ext,
                                }));
                            }
                            Ok(_) => {}
                            Err(e) if crate::exit::is_temp(&e) => {
                                return Err(stat_error(&pw.dir, &e))
                            }
                            Err(_) => {}
                        }
                    }
                }
            }
        }
        if cut == 0 {
            return Ok(None);
        }
        cut -= 1;
    }
}

/// The alias user: home `$PIPEMAIL_HOME/alias`, the owner's uid and gid,
/// dash `-`, ext = the whole local part. Ok(None) without an alias/ dir.
pub fn alias_account(pmhome: &Path, local: &[u8]) -> Result<Option<Account>, ControlError> {
    let home = pmhome.join("alias");
    match std::fs::metadata(&home) {
        Ok(m) if m.is_dir() => Ok(Some(Account {
            user: b"alias".to_vec(),
            uid: m.uid(),
            gid: m.gid(),
            home: crate::control::bytes(&home).to_vec(),
            dash: b"-".to_vec(),
            ext: local.to_ascii_lowercase(),
        })),
        Ok(_) => Ok(None),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(stat_error(crate::control::bytes(&home), &e)),
    }
}

/// The account for a (rewritten) local part: users/assign, then the
/// system accounts, then the alias user. Ok(None): nobody takes it
/// (an empty local part, or no alias/ directory).
pub fn lookup(local: &[u8]) -> Result<Option<Account>, ControlError> {
    lookup_in(&crate::control::home(), local)
}

/// [`lookup`] under the pipemail home `home`.
pub fn lookup_in(home: &Path, local: &[u8]) -> Result<Option<Account>, ControlError> {
    if local.is_empty() {
        return Ok(None);
    }
    lookup_with(&*assign(home)?, home, local)
}

fn lookup_with(
    assign: &Assign,
    home: &Path,
    local: &[u8],
) -> Result<Option<Account>, ControlError> {
    if local.is_empty() {
        return Ok(None);
    }
    if let Some(a) = assign.find(local) {
        return Ok(Some(a));
    }
    if let Some(a) = system_account(local)? {
        return Ok(Some(a));
    }
    alias_account(home, local)
}

/// Whether a local address would be accepted by deliver-local (an account,
/// its dot-file for the extension, or the alias user's -default files).
/// smtp-recv refuses unknown local recipients at RCPT with 550 5.1.1.
///
/// `local` is the local part as [`route`] returned it. Costs users/assign
/// once per process and a few stat(2) calls per address. When the caller
/// may not look into the home (EACCES), the answer is yes: deliver-local
/// decides later.
pub fn recipient_exists(local: &[u8], domain: &[u8]) -> Result<bool, ControlError> {
    recipient_exists_in(&crate::control::home(), local, domain)
}

/// [`recipient_exists`] under the pipemail home `home`.
pub fn recipient_exists_in(home: &Path, local: &[u8], domain: &[u8]) -> Result<bool, ControlError> {
    let _ = domain;
    exists_with(&*assign(home)?, home, local)
}

fn exists_with(assign: &Assign, home: &Path, local: &[u8]) -> Result<bool, ControlError> {
    let Some(a) = lookup_with(assign, home, local)? else {
        return Ok(false);
    };
    if a.dash.is_empty() {
        return Ok(true); // the basic address: its .qmail or the default delivery
    }
    let home = OsStr::from_bytes(&a.home);
    for (name, _) in crate::deliver::dotqmail::candidates(&a.dash, &a.ext) {
        match std::fs::symlink_metadata(Path::new(home).join(OsStr::from_bytes(&name))) {
            Ok(_) => return Ok(true),
            Err(e) if e.raw_os_error() == Some(libc::EACCES) => return Ok(true),
            Err(_) => {}
        }
    }
    Ok(false)
}

/// Everything smtp-recv checks recipients against, read once per session:
/// the routes and users/assign. An edit takes effect for the next session.
#[derive(Debug, Clone)]
pub struct Recipients {
    home: PathBuf,
    pub routes: Routes,
    assign: Arc<Assign>,
}

impl Recipients {
    /// Reads control/locals, control/virtualdomains and users/assign.
    pub fn load() -> Result<Recipients, ControlError> {
        let home = crate::control::home();
        Ok(Recipients {
            routes: Routes::load()?,
            assign: assign(&home)?,
            home,
        })
    }

    /// Where `addr` goes ([`Routes::route`]).
    pub fn route(&self, addr: &[u8]) -> Route {
        self.routes.route(addr)
    }

    /// [`recipient_exists`] against what was read: only the system
    /// accounts, the alias directory and dot-files are looked up per call.
    pub fn exists(&self, local: &[u8]) -> Result<bool, ControlError> {
        exists_with(&self.assign, &self.home, local)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acct(user: &str, uid: u32, home: &str, dash: &str, ext: &str) -> Account {
        Account {
            user: user.into(),
            uid,
            gid: uid,
            home: home.into(),
            dash: dash.into(),
            ext: ext.into(),
        }
    }

    #[test]
    fn assign_exact_beats_wildcard_and_longer_wildcard_wins() {
        let t = b"=joe:joe:1001:1001:/h/joe:::\n+joe-:joe:1001:1001:/h/joe:-::\n+:catch:1002:1002:/h/c:-::\n+joe-list-:list:1003:1003:/h/l:-:x-:\n.\n";
        let a = Assign::parse(t, Path::new("users/assign")).unwrap();
        assert_eq!(a.find(b"JOE"), Some(acct("joe", 1001, "/h/joe", "", "")));
        assert_eq!(
            a.find(b"joe-Foo"),
            Some(acct("joe", 1001, "/h/joe", "-", "Foo"))
        );
        assert_eq!(
            a.find(b"joe-list-a"),
            Some(acct("list", 1003, "/h/l", "-", "x-a"))
        );
        assert_eq!(
            a.find(b"bob"),
            Some(acct("catch", 1002, "/h/c", "-", "bob"))
        );
        let a = Assign::parse(
            b"=joe:joe:1:1:/h:::\n.\n=after:the:dot:is:ignored\n",
            Path::new("f"),
        )
        .unwrap();
        assert_eq!(a.find(b"bob"), None);
        assert_eq!(Assign::parse(b"", Path::new("f")).unwrap().find(b"x"), None);
    }

    #[test]
    fn malformed_assign_names_file_and_line() {
        let p = Path::new("/h/users/assign");
        let e = Assign::parse(b"=joe:joe:1:1:/h:::\n=bob:bob:x:1:/h:::\n.\n", p).unwrap_err();
        assert_eq!(e.line, 2);
        assert!(
            e.to_string().starts_with("/h/users/assign line 2: "),
            "{}",
            e
        );
        assert_eq!(
            Assign::parse(b"=joe:joe:1:1:/h::\n.\n", p)
                .unwrap_err()
                .line,
            1
        );
        assert_eq!(
            Assign::parse(b"joe:joe:1:1:/h:::\n.\n", p)
                .unwrap_err()
                .line,
            1
        );
        assert_eq!(
            Assign::parse(b"=joe:joe:1:1:h:::\n.\n", p)
                .unwrap_err()
                .line,
            1
        );
        assert!(Assign::parse(b"=joe:joe:1:1:/h:::\n", p).is_err());
        assert!(Assign::parse(b"=joe:joe:1:1:/h:::", p).is_err());
    }
}

//! Messages into a folder: APPEND, COPY and MOVE, and the UIDs they get (UIDPLUS).

use std::io;
use std::path::Path;

use super::{bad, no, ok, sys_no, uid_set, Done, Session};
use crate::imap::parse::Cursor;
use crate::imap::store;

impl Session {
    pub(super) fn append(&mut self, c: &mut Cursor) -> Done {
        tryp!(c.sp());
        let (name, dir) = tryp!(self.mailbox(c));
        tryp!(c.sp());
        let flags = if c.peek() == Some(b'(') {
            let f = tryp!(c.flag_list(false));
            tryp!(c.sp());
            f
        } else {
            Vec::new()
        };
        let date = if c.peek() == Some(b'"') {
            let d = tryp!(c.date_time());
            tryp!(c.sp());
            Some(d)
        } else {
            None
        };
        // A literal8 (RFC 3516) may carry any byte, NUL too.
        c.eat(b'~');
        let msg = tryp!(c.literal());
        tryp!(c.end());
        let dir = match dir {
            Some(d) if d.join("cur").is_dir() => d,
            _ => return no("[TRYCREATE] Mailbox doesn't exist"),
        };
        let _ = name;
        if msg.is_empty() {
            return no("Can't save a zero byte message");
        }
        // The data is written and synced before the lock, the name and
        // its UID under it.
        let w = tryio!(store::write_tmp(&dir, msg, date), "write message");
        let _l = tryio!(store::lock(&dir), "lock folder");
        let mut kw = store::read_keywords(&dir);
        let bits = match Self::letters(&dir, &mut kw, &flags) {
            Ok(b) => b,
            Err(d) => return d,
        };
        let base = tryio!(store::deliver(&dir, w, bits), "write message");
        let (validity, uid) = tryio!(self.assign(&dir, &[base]), "update uidlist");
        drop(_l);
        Done::Ok(
            format!(
                "[APPENDUID {} {}] Append completed.",
                validity,
                uid.first().copied().unwrap_or(0)
            )
            .into_bytes(),
        )
    }

    /// UIDs for freshly written bases in `dir` (lock held by the caller).
    /// When `dir` is the selected folder the session syncs and reports.
    pub(super) fn assign(&mut self, dir: &Path, bases: &[Vec<u8>]) -> io::Result<(u32, Vec<u32>)> {
        let is_sel = self.sel.as_ref().map(|f| f.dir == dir).unwrap_or(false);
        let (validity, list): (u32, Vec<(u32, Vec<u8>)>) = if is_sel {
            let f = self.sel.as_mut().unwrap();
            let ch = f.sync_locked()?;
            let v = (
                f.validity,
                f.msgs.iter().map(|m| (m.uid, m.base.clone())).collect(),
            );
            self.report(ch);
            v
        } else {
            let s = store::scan(dir, false)?;
            (
                s.validity,
                s.list.into_iter().map(|e| (e.uid, e.base)).collect(),
            )
        };
        let map: std::collections::HashMap<&[u8], u32> =
            list.iter().map(|(u, b)| (&b[..], *u)).collect();
        Ok((
            validity,
            bases
                .iter()
                .map(|b| map.get(&b[..]).copied().unwrap_or(0))
                .collect(),
        ))
    }

    pub(super) fn copy(&mut self, c: &mut Cursor, uid: bool, mv: bool) -> Done {
        tryp!(c.sp());
        let set = tryp!(c.seqset());
        tryp!(c.sp());
        let (_name, dir) = tryp!(self.mailbox(c));
        tryp!(c.end());
        let idx = tryp!(self.resolve(&set, uid));
        let dir = match dir {
            Some(d) if d.join("cur").is_dir() => d,
            _ => return no("[TRYCREATE] Mailbox doesn't exist"),
        };
        if mv && self.sel.as_ref().unwrap().readonly {
            return no("Mailbox is read-only.");
        }
        if idx.is_empty() {
            return ok(if mv {
                "No messages moved."
            } else {
                "No messages copied."
            });
        }
        let same = self.sel.as_ref().unwrap().dir == dir;
        // Two folders are always locked in path order, so two sessions
        // copying in opposite directions cannot deadlock.
        let src = self.sel.as_ref().unwrap().dir.clone();
        let mut order = vec![src.clone()];
        if !same {
            order.push(dir.clone());
            order.sort();
        }
        let mut _locks = Vec::new();
        for d in &order {
            _locks.push(tryio!(store::lock(d), "lock folder"));
        }
        let mut kw = store::read_keywords(&dir);
        let mut bases = Vec::new();
        let mut src_uids = Vec::new();
        {
            let f = self.sel.as_mut().unwrap();
            for &i in &idx {
                let m = f.msgs[i].clone();
                // Keywords are per folder: map names to the target's letters.
                let mut bits = m.flags & !(((1u64 << 26) - 1) << 26);
                for (k, name) in f.keywords.iter().enumerate() {
                    if !name.is_empty() && m.flags & store::bit(b'a' + k as u8) != 0 {
                        if let Ok(Some(l)) = store::keyword_letter(&dir, &mut kw, name, true) {
                            bits |= store::bit(l);
                        }
                    }
                }
                bits &= !store::DELETED | if mv { 0 } else { store::DELETED };
                let mut r = store::copy_in(&dir, &f.path(i), &m.base, bits);
                if matches!(&r, Err(e) if e.kind() == io::ErrorKind::NotFound) {
                    let _ = f.refresh_names();
                    r = store::copy_in(&dir, &f.path(i), &m.base, bits);
                }
                match r {
                    Ok(b) => {
                        bases.push(b);
                        src_uids.push(m.uid);
                    }
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return sys_no("copy message", &e),
                }
            }
        }
        if let Err(e) = crate::sys::fsync_dir(&dir.join("new")) {
            return sys_no("sync folder", &e);
        }
        let (validity, uids) = if same {
            tryio!(self.assign_locked_same(&bases), "update uidlist")
        } else {
            tryio!(self.assign(&dir, &bases), "update uidlist")
        };
        let code = format!(
            "[COPYUID {} {} {}]",
            validity,
            uid_set(&src_uids),
            uid_set(&uids)
        );
        if !mv {
            return Done::Ok(format!("{} Copy completed.", code).into_bytes());
        }
        self.out.line(&[b"* OK ", code.as_bytes(), b" Moved."]);
        let f = self.sel.as_mut().unwrap();
        for &i in &idx {
            let p = f.path(i);
            match std::fs::remove_file(&p) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return sys_no("remove message", &e),
            }
        }
        let ch = tryio!(f.sync_locked(), "update uidlist");
        self.report(ch);
        ok("Move completed.")
    }

    /// COPY into the selected folder itself (its lock is held).
    pub(super) fn assign_locked_same(&mut self, bases: &[Vec<u8>]) -> io::Result<(u32, Vec<u32>)> {
        let f = self.sel.as_mut().unwrap();
        let ch = f.sync_locked()?;
        let validity = f.validity;
        let map: std::collections::HashMap<Vec<u8>, u32> =
            f.msgs.iter().map(|m| (m.base.clone(), m.uid)).collect();
        self.report(ch);
        Ok((
            validity,
            bases
                .iter()
                .map(|b| map.get(b).copied().unwrap_or(0))
                .collect(),
        ))
    }
}

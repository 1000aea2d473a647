//! Folder commands: CREATE, DELETE, RENAME, SUBSCRIBE, LIST/LSUB and STATUS.

use std::io;
use std::path::Path;

use super::{bad, no, ok, sys_no, Done, Session};
use crate::imap::parse::Cursor;
use crate::imap::resp;
use crate::imap::store;

impl Session {
    pub(super) fn create(&mut self, c: &mut Cursor) -> Done {
        tryp!(c.sp());
        let mut name = tryp!(c.astring());
        tryp!(c.end());
        while name.last() == Some(&b'.') {
            name.pop();
        }
        if store::is_inbox(&name) {
            return no("[ALREADYEXISTS] Mailbox already exists");
        }
        if !store::valid_name(&name) {
            return no("[CANNOT] Invalid mailbox name");
        }
        match store::create(&self.root, &name) {
            Ok(()) => ok("Create completed."),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                no("[ALREADYEXISTS] Mailbox already exists")
            }
            Err(e) => sys_no("create folder", &e),
        }
    }

    pub(super) fn delete(&mut self, c: &mut Cursor) -> Done {
        tryp!(c.sp());
        let (name, dir) = tryp!(self.mailbox(c));
        tryp!(c.end());
        if store::is_inbox(&name) {
            return no("[CANNOT] INBOX can't be deleted.");
        }
        match dir {
            Some(d) if d.join("cur").is_dir() => {
                if self.sel.as_ref().map(|f| f.dir == d).unwrap_or(false) {
                    self.sel = None;
                }
                tryio!(store::delete(&self.root, &name), "delete folder");
                let _ = store::set_subscribed(&self.root, &name, false);
                ok("Delete completed.")
            }
            _ => Done::No([&b"[NONEXISTENT] Mailbox doesn't exist: "[..], &name].concat()),
        }
    }

    pub(super) fn rename(&mut self, c: &mut Cursor) -> Done {
        tryp!(c.sp());
        let (old, od) = tryp!(self.mailbox(c));
        tryp!(c.sp());
        let mut new = tryp!(c.astring());
        tryp!(c.end());
        while new.last() == Some(&b'.') {
            new.pop();
        }
        if !store::is_inbox(&new) && !store::valid_name(&new) {
            return no("[CANNOT] Invalid mailbox name");
        }
        let exists = od.as_ref().map(|d| d.join("cur").is_dir()).unwrap_or(false);
        let has_children = store::folders(&self.root)
            .map(|v| {
                v.iter()
                    .any(|f| f.len() > old.len() && f.starts_with(&old) && f[old.len()] == b'.')
            })
            .unwrap_or(false);
        if !exists && !has_children {
            return Done::No([&b"[NONEXISTENT] Mailbox doesn't exist: "[..], &old].concat());
        }
        match store::rename(&self.root, &old, &new) {
            Ok(()) => {
                if !store::is_inbox(&old) {
                    if let (Some(f), Some(od)) = (&mut self.sel, &od) {
                        if &f.dir == od {
                            f.dir = store::folder_dir(&self.root, &new)
                                .unwrap_or_else(|| f.dir.clone());
                        }
                    }
                }
                ok("Rename completed.")
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                no("[ALREADYEXISTS] Target mailbox already exists")
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                Done::No([&b"[NONEXISTENT] Mailbox doesn't exist: "[..], &old].concat())
            }
            Err(e) => sys_no("rename folder", &e),
        }
    }

    pub(super) fn subscribe(&mut self, c: &mut Cursor, on: bool) -> Done {
        tryp!(c.sp());
        let (name, dir) = tryp!(self.mailbox(c));
        tryp!(c.end());
        if dir.is_none() {
            return no("[CANNOT] Invalid mailbox name");
        }
        tryio!(
            store::set_subscribed(&self.root, &name, on),
            "write subscriptions"
        );
        ok(if on {
            "Subscribe completed."
        } else {
            "Unsubscribe completed."
        })
    }

    pub(super) fn list(&mut self, c: &mut Cursor, lsub: bool) -> Done {
        let a = tryp!(crate::imap::list::parse(c, lsub));
        let what: &[u8] = if lsub { b"* LSUB " } else { b"* LIST " };
        if !lsub && !a.extended && a.patterns[0].is_empty() {
            self.out.line(&[what, b"(\\Noselect) \".\" \"\""]);
            return ok("List completed.");
        }
        let rows = tryio!(
            crate::imap::list::rows(&self.root, &a, lsub),
            "list folders"
        );
        for r in &rows {
            let mut v = Vec::new();
            resp::astring(&mut v, &r.name);
            let info: &[u8] = if r.childinfo {
                b" (\"CHILDINFO\" (\"SUBSCRIBED\"))"
            } else {
                b""
            };
            self.out
                .line(&[what, b"(", &r.attrs.join(&b' '), b") \".\" ", &v, info]);
            if let (Some(items), true) = (&a.status, r.selectable) {
                let dir = store::folder_dir(&self.root, &r.name);
                if let Some(d) = dir.filter(|d| d.join("cur").is_dir()) {
                    if let Err(e) = self.status_line(&r.name, &d, items) {
                        return e;
                    }
                }
            }
        }
        ok(if lsub {
            "Lsub completed."
        } else {
            "List completed."
        })
    }

    pub(super) fn status(&mut self, c: &mut Cursor) -> Done {
        tryp!(c.sp());
        let (name, dir) = tryp!(self.mailbox(c));
        tryp!(c.sp());
        let items = tryp!(crate::imap::list::status_items(c));
        tryp!(c.end());
        let dir = match dir {
            Some(d) if d.join("cur").is_dir() => d,
            _ => return Done::No([&b"[NONEXISTENT] Mailbox doesn't exist: "[..], &name].concat()),
        };
        match self.status_line(&name, &dir, &items) {
            Ok(()) => ok("Status completed."),
            Err(e) => e,
        }
    }

    /// Writes `* STATUS name (items)` for the folder in `dir`.
    pub(super) fn status_line(
        &mut self,
        name: &[u8],
        dir: &Path,
        items: &[Vec<u8>],
    ) -> Result<(), Done> {
        let s = {
            let _l = store::lock(dir).map_err(|e| sys_no("lock folder", &e))?;
            store::scan(dir, false).map_err(|e| sys_no("read folder", &e))?
        };
        let unseen = s
            .list
            .iter()
            .filter(|e| store::flags_of(&e.name) & store::SEEN == 0)
            .count();
        let mut v = Vec::new();
        for (i, w) in items.iter().enumerate() {
            if i > 0 {
                v.push(b' ');
            }
            let n = match &w[..] {
                b"MESSAGES" => s.list.len() as u64,
                b"RECENT" => s.list.iter().filter(|e| e.new).count() as u64,
                b"UIDNEXT" => s.next as u64,
                b"UIDVALIDITY" => s.validity as u64,
                b"HIGHESTMODSEQ" => s.highest.unwrap_or(0),
                _ => unseen as u64,
            };
            v.extend_from_slice(w);
            v.push(b' ');
            v.extend_from_slice(n.to_string().as_bytes());
        }
        let mut nm = Vec::new();
        resp::astring(&mut nm, name);
        self.out.line(&[b"* STATUS ", &nm, b" (", &v, b")"]);
        Ok(())
    }
}

//! Changing flags and removing messages: STORE (with UNCHANGEDSINCE) and EXPUNGE / UID EXPUNGE.

use super::{bad, no, ok, sys_no, uid_set, Done, Session, NOMODSEQ};
use crate::imap::fetch;
use crate::imap::parse::{Cursor, SeqSet};

impl Session {
    pub(super) fn store(&mut self, c: &mut Cursor, uid: bool) -> Done {
        tryp!(c.sp());
        let set = tryp!(c.seqset());
        tryp!(c.sp());
        // RFC 7162 §3.1.3: `(UNCHANGEDSINCE modseq)` before the item.
        let mut unchanged = None;
        if c.eat(b'(') {
            if tryp!(c.word()) != b"UNCHANGEDSINCE" {
                return bad("unknown STORE modifier");
            }
            tryp!(c.sp());
            unchanged = Some(tryp!(c.number64()));
            tryp!(c.expect(b')'));
            tryp!(c.sp());
        }
        let w = {
            let s = c.i;
            while c
                .peek()
                .map(|x| x.is_ascii_alphanumeric() || matches!(x, b'.' | b'+' | b'-'))
                .unwrap_or(false)
            {
                c.i += 1;
            }
            c.b[s..c.i].to_ascii_uppercase()
        };
        let (mode, silent) = match &w[..] {
            b"FLAGS" => (0, false),
            b"FLAGS.SILENT" => (0, true),
            b"+FLAGS" => (1, false),
            b"+FLAGS.SILENT" => (1, true),
            b"-FLAGS" => (2, false),
            b"-FLAGS.SILENT" => (2, true),
            _ => return bad("invalid STORE item"),
        };
        tryp!(c.sp());
        let flags = tryp!(c.flag_list(true));
        tryp!(c.end());
        let idx = tryp!(self.resolve(&set, uid));
        let f = self.sel.as_mut().unwrap();
        if f.readonly {
            return no("Mailbox is read-only.");
        }
        if unchanged.is_some() {
            if f.highest.is_none() {
                return bad(NOMODSEQ);
            }
            self.condstore = true;
        }
        let _l = tryio!(f.lock(), "lock folder");
        let dir = f.dir.clone();
        let known = f.keywords.iter().filter(|k| !k.is_empty()).count();
        let bits = match Self::letters(&dir, &mut f.keywords, &flags) {
            Ok(b) => b,
            Err(d) => return d,
        };
        let kws: Vec<&Vec<u8>> = f.keywords.iter().filter(|k| !k.is_empty()).collect();
        if kws.len() != known {
            // A new keyword: the client learns the new flag list first.
            let mut fl = b"\\Answered \\Flagged \\Deleted \\Seen \\Draft".to_vec();
            for k in &kws {
                fl.push(b' ');
                fl.extend_from_slice(k);
            }
            let star: &[u8] = if kws.len() < 26 { b" \\*" } else { b"" };
            self.out.line(&[b"* FLAGS (", &fl, b")"]);
            self.out
                .line(&[b"* OK [PERMANENTFLAGS (", &fl, star, b")] Flags permitted."]);
        }
        let op = |x: u64| match mode {
            0 => bits,
            1 => x | bits,
            _ => x & !bits,
        };
        let st = tryio!(f.store_flags(&idx, &op, unchanged), "store flags");
        let modseq = self.condstore && f.highest.is_some();
        for i in idx {
            let m = &f.msgs[i];
            let changed = st.changed.binary_search(&i).is_ok();
            // Refused ones are not answered; with .SILENT a CONDSTORE
            // client still learns the new MODSEQ of what changed.
            if st.modified.contains(&m.uid) || (silent && !(modseq && changed)) {
                continue;
            }
            let mut v = format!("* {} FETCH (", i + 1).into_bytes();
            if uid || self.qresync {
                v.extend_from_slice(format!("UID {} ", m.uid).as_bytes());
            }
            if modseq {
                v.extend_from_slice(format!("MODSEQ ({}) ", m.modseq).as_bytes());
            }
            if !silent {
                v.extend_from_slice(b"FLAGS ");
                fetch::flags_list(&mut v, m.flags, m.recent, &f.keywords);
            }
            if v.last() == Some(&b' ') {
                v.pop();
            }
            v.push(b')');
            self.out.line(&[&v]);
        }
        if !st.modified.is_empty() {
            return Done::Ok(
                format!(
                    "[MODIFIED {}] Conditional store failed.",
                    uid_set(&st.modified)
                )
                .into_bytes(),
            );
        }
        ok("Store completed.")
    }

    pub(super) fn expunge(&mut self, only: Option<SeqSet>) -> Done {
        let f = self.sel.as_mut().unwrap();
        if f.readonly {
            return no("Mailbox is read-only.");
        }
        let max = f.msgs.last().map(|m| m.uid).unwrap_or(0);
        let pick = |u: u32| only.as_ref().map(|s| s.contains(u, max)).unwrap_or(true);
        tryio!(f.expunge_files(&pick), "expunge");
        self.sync_report();
        match self.sel.as_ref().and_then(|f| f.highest) {
            Some(h) if self.qresync => {
                Done::Ok(format!("[HIGHESTMODSEQ {}] Expunge completed.", h).into_bytes())
            }
            _ => ok("Expunge completed."),
        }
    }
}

//! Finding messages: SEARCH (with ESEARCH's RETURN and CONDSTORE's MODSEQ), SORT and THREAD.

use super::{bad, no, ok, sys_no, uid_set, Done, Session, NOMODSEQ};
use crate::imap::parse::Cursor;
use crate::imap::resp;
use crate::imap::search;
use crate::imap::sort;

impl Session {
    pub(super) fn search(&mut self, tag: &[u8], c: &mut Cursor, uid: bool) -> Done {
        tryp!(c.sp());
        // ESEARCH (RFC 4731): `RETURN (MIN MAX ALL COUNT)` first.
        let save = c.i;
        let mut ret: Option<Vec<Vec<u8>>> = None;
        if c.word().map(|w| w == b"RETURN").unwrap_or(false) {
            tryp!(c.sp());
            tryp!(c.expect(b'('));
            let mut v = Vec::new();
            while !c.eat(b')') {
                if !v.is_empty() {
                    tryp!(c.sp());
                }
                let w = tryp!(c.word());
                if !matches!(&w[..], b"MIN" | b"MAX" | b"ALL" | b"COUNT") {
                    return bad("unknown search return option");
                }
                v.push(w);
            }
            if v.is_empty() {
                v.push(b"ALL".to_vec());
            }
            tryp!(c.sp());
            ret = Some(v);
        } else {
            c.i = save;
        }
        let key = match search::parse(c) {
            Ok(k) => k,
            Err(search::Error::Bad(m)) => return bad(m),
            Err(search::Error::Charset) => {
                return no("[BADCHARSET (UTF-8 US-ASCII)] Unsupported charset")
            }
        };
        let f = self.sel.as_mut().unwrap();
        let with_modseq = search::has_modseq(&key);
        if with_modseq {
            if f.highest.is_none() {
                return bad(NOMODSEQ);
            }
            self.condstore = true;
        }
        let found = search::run(f, &key);
        // RFC 7162 §3.1.5: the highest mod-sequence of what matched.
        let top = found
            .iter()
            .map(|&i| f.msgs[i].modseq)
            .max()
            .filter(|_| with_modseq);
        let hits: Vec<u32> = found
            .into_iter()
            .map(|i| if uid { f.msgs[i].uid } else { i as u32 + 1 })
            .collect();
        let mut v = b"* SEARCH".to_vec();
        match ret {
            None => {
                for n in hits {
                    v.push(b' ');
                    v.extend_from_slice(n.to_string().as_bytes());
                }
                if let Some(t) = top {
                    v.extend_from_slice(format!(" (MODSEQ {})", t).as_bytes());
                }
            }
            Some(opts) => {
                v = b"* ESEARCH (TAG ".to_vec();
                resp::string(&mut v, tag);
                v.push(b')');
                if uid {
                    v.extend_from_slice(b" UID");
                }
                let has = |o: &[u8]| opts.iter().any(|x| x == o);
                let mut put = |name: &str, val: String| {
                    v.extend_from_slice(format!(" {} {}", name, val).as_bytes());
                };
                if let (true, Some(m)) = (has(b"MIN"), hits.iter().min()) {
                    put("MIN", m.to_string());
                }
                if let (true, Some(m)) = (has(b"MAX"), hits.iter().max()) {
                    put("MAX", m.to_string());
                }
                if has(b"ALL") && !hits.is_empty() {
                    put("ALL", uid_set(&hits));
                }
                if has(b"COUNT") {
                    put("COUNT", hits.len().to_string());
                }
                if let Some(t) = top {
                    put("MODSEQ", t.to_string());
                }
            }
        }
        self.out.line(&[&v]);
        ok("Search completed.")
    }

    /// SORT (criteria) charset keys, THREAD algorithm charset keys.
    pub(super) fn sort(&mut self, c: &mut Cursor, uid: bool, thread: bool) -> Done {
        tryp!(c.sp());
        let (crit, algo) = if thread {
            let a = tryp!(c.word());
            if a != b"ORDEREDSUBJECT" && a != b"REFERENCES" {
                return bad("unknown threading algorithm");
            }
            (Vec::new(), a)
        } else {
            (tryp!(sort::criteria(c)), Vec::new())
        };
        tryp!(c.sp());
        let cs = tryp!(c.astring());
        tryp!(c.sp());
        let key = match search::keys(c, Some(&cs)) {
            Ok(k) => k,
            Err(search::Error::Bad(m)) => return bad(m),
            Err(search::Error::Charset) => {
                return no("[BADCHARSET (UTF-8 US-ASCII)] Unsupported charset")
            }
        };
        let f = self.sel.as_mut().unwrap();
        let mut msgs = Vec::new();
        for i in search::run(f, &key) {
            match sort::info(f, i) {
                Ok(Some(m)) => msgs.push((i, m)),
                Ok(None) => {}
                Err(e) => return sys_no("read message", &e),
            }
        }
        let uids: Vec<u32> = f.msgs.iter().map(|m| m.uid).collect();
        let seq = |i: usize| if uid { uids[i] } else { i as u32 + 1 };
        if thread {
            let t = if algo == b"REFERENCES" {
                sort::references(&msgs, &seq)
            } else {
                sort::ordered_subject(&msgs, &seq)
            };
            self.out.line(&[b"* THREAD ", &t]);
            return ok("Thread completed.");
        }
        sort::sort(&mut msgs, &crit);
        let mut v = b"* SORT".to_vec();
        for (i, _) in &msgs {
            v.push(b' ');
            v.extend_from_slice(seq(*i).to_string().as_bytes());
        }
        self.out.line(&[&v]);
        ok("Sort completed.")
    }
}

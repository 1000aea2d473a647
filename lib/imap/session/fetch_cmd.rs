//! The FETCH command: resolving items and modifiers (CHANGEDSINCE, VANISHED) and writing each message's FETCH response.

use super::{bad, no, ok, sys_no, uid_set, Done, Session, NOMODSEQ};
use crate::imap::fetch::{self, Item};
use crate::imap::parse::Cursor;
use crate::imap::resp;
use crate::imap::store;

impl Session {
    pub(super) fn fetch(&mut self, c: &mut Cursor, uid: bool) -> Done {
        tryp!(c.sp());
        let set = tryp!(c.seqset());
        tryp!(c.sp());
        let mut items = tryp!(fetch::parse_items(c));
        let (since, vanished) = tryp!(fetch_modifiers(c));
        tryp!(c.end());
        let mut idx = tryp!(self.resolve(&set, uid));
        if vanished && !(uid && self.qresync) {
            return bad("VANISHED needs UID FETCH and QRESYNC enabled");
        }
        if since.is_some() || items.contains(&Item::Modseq) {
            if self.sel.as_ref().unwrap().highest.is_none() {
                return bad(NOMODSEQ);
            }
            self.condstore = true;
            if !items.contains(&Item::Modseq) {
                items.push(Item::Modseq);
            }
        }
        if uid && !items.contains(&Item::Uid) {
            items.insert(0, Item::Uid);
        }
        let needs_data = items.iter().any(|i| i.needs_data());
        let f = self.sel.as_mut().unwrap();
        let sets_seen = !f.readonly && items.iter().any(|i| i.sets_seen());
        // ENVELOPE, BODY and BODYSTRUCTURE may come from the cache file.
        let kinds: Vec<u8> = items.iter().filter_map(cache_kind).collect();
        let only_cacheable = items
            .iter()
            .all(|i| !i.needs_data() || cache_kind(i).is_some());
        if !kinds.is_empty() && f.cache.is_none() {
            let (mut c, n) = crate::imap::cache::Cache::load(&f.dir, f.validity);
            if n > 2 * f.msgs.len() * kinds.len() + 100 {
                let live: std::collections::HashSet<u32> = f.msgs.iter().map(|m| m.uid).collect();
                let _ = c.compact(&f.dir, f.validity, &|u| live.contains(&u));
            }
            f.cache = Some(c);
        }
        if let Some(n) = since {
            idx.retain(|&i| f.msgs[i].modseq > n);
            let gone = if vanished {
                f.vanished(n, Some(&set))
            } else {
                Vec::new()
            };
            if !gone.is_empty() {
                self.out
                    .line(&[b"* VANISHED (EARLIER) ", uid_set(&gone).as_bytes()]);
            }
        }
        let mut seen_now = Vec::new();
        let unseen: Vec<usize> = idx
            .iter()
            .copied()
            .filter(|&i| sets_seen && f.msgs[i].flags & store::SEEN == 0)
            .collect();
        if !unseen.is_empty() {
            let r = f
                .lock()
                .and_then(|_l| f.store_flags(&unseen, &|x| x | store::SEEN, None));
            match r {
                Ok(st) => seen_now = st.changed,
                Err(e) => return sys_no("store flags", &e),
            }
        }
        let with_modseq = items.contains(&Item::Modseq);
        let by_uid = uid;
        let mut gone = false;
        for i in idx {
            let uid = f.msgs[i].uid;
            let flags_changed = seen_now.binary_search(&i).is_ok();
            let cached = only_cacheable
                && f.cache
                    .as_ref()
                    .map(|c| kinds.iter().all(|k| c.has(uid, *k)))
                    .unwrap_or(false);
            let data = if needs_data && !cached {
                match f.read(i) {
                    Ok(Some(d)) => Some(store::to_crlf(&d)),
                    Ok(None) => {
                        gone = true;
                        continue;
                    }
                    Err(e) => return sys_no("read message", &e),
                }
            } else {
                None
            };
            let tree = if items.iter().any(|x| {
                matches!(
                    x,
                    Item::Body
                        | Item::BodyStructure
                        | Item::Section { .. }
                        | Item::Envelope
                        | Item::Binary { .. }
                        | Item::BinarySize(_)
                )
            }) {
                data.as_ref().map(|d| crate::mime::parse(d))
            } else {
                None
            };
            let mut v = Vec::with_capacity(64);
            v.extend_from_slice(b"* ");
            v.extend_from_slice((i + 1).to_string().as_bytes());
            v.extend_from_slice(b" FETCH (");
            let mut first = true;
            let mut sep = |v: &mut Vec<u8>| {
                if !first {
                    v.push(b' ');
                }
                first = false;
            };
            let mut did_flags = false;
            for it in &items {
                sep(&mut v);
                match it {
                    Item::Flags => {
                        v.extend_from_slice(b"FLAGS ");
                        fetch::flags_list(&mut v, f.msgs[i].flags, f.msgs[i].recent, &f.keywords);
                        did_flags = true;
                    }
                    Item::Uid => {
                        v.extend_from_slice(b"UID ");
                        v.extend_from_slice(f.msgs[i].uid.to_string().as_bytes());
                    }
                    Item::Modseq => {
                        v.extend_from_slice(format!("MODSEQ ({})", f.msgs[i].modseq).as_bytes());
                    }
                    Item::InternalDate => {
                        v.extend_from_slice(b"INTERNALDATE ");
                        v.extend_from_slice(&resp::internal_date(f.date(i)));
                    }
                    Item::Size => {
                        let s = match f.size(i) {
                            Ok(s) => s,
                            Err(e) => return sys_no("read message", &e),
                        };
                        v.extend_from_slice(b"RFC822.SIZE ");
                        v.extend_from_slice(s.to_string().as_bytes());
                    }
                    Item::Envelope | Item::Body | Item::BodyStructure => {
                        let k = cache_kind(it).unwrap_or(b'E');
                        v.extend_from_slice(match k {
                            b'E' => b"ENVELOPE ",
                            b'B' => b"BODY ",
                            _ => b"BODYSTRUCTURE ",
                        });
                        if let Some(c) = f.cache.as_ref().and_then(|c| c.get(uid, k)) {
                            v.extend_from_slice(&c);
                            continue;
                        }
                        let (d, t) = match (data.as_ref(), tree.as_ref()) {
                            (Some(d), Some(t)) => (d, t),
                            _ => {
                                return sys_no(
                                    "read message",
                                    &std::io::Error::from_raw_os_error(libc::EIO),
                                )
                            }
                        };
                        let mut a = Vec::new();
                        match k {
                            b'E' => fetch::envelope(&mut a, t.header(d)),
                            _ => fetch::body_structure(&mut a, d, t, k == b'S'),
                        }
                        v.extend_from_slice(&a);
                        if f.cache.is_some() {
                            f.cache_new.push((uid, k, a));
                        }
                    }
                    Item::Section { sec, partial, .. } => {
                        let (d, t) = (data.as_ref().unwrap(), tree.as_ref().unwrap());
                        let bytes = fetch::section_bytes(d, t, sec);
                        let mut name = b"BODY[".to_vec();
                        name.extend_from_slice(&fetch::label(sec));
                        name.push(b']');
                        fetch::put_body(&mut v, &name, bytes.as_deref(), *partial);
                    }
                    Item::Binary { parts, .. } | Item::BinarySize(parts) => {
                        let (d, t) = (data.as_ref().unwrap(), tree.as_ref().unwrap());
                        let bytes = match fetch::binary_bytes(d, t, parts) {
                            Some(Err(())) => {
                                return no("[UNKNOWN-CTE] Unknown Content-Transfer-Encoding")
                            }
                            b => b.map(|b| b.unwrap_or_default()),
                        };
                        if let Item::Binary { partial, .. } = it {
                            let name = fetch::binary_label(b"BINARY", parts);
                            fetch::put_body(&mut v, &name, bytes.as_deref(), *partial);
                        } else {
                            v.extend_from_slice(&fetch::binary_label(b"BINARY.SIZE", parts));
                            v.push(b' ');
                            match bytes {
                                Some(b) => v.extend_from_slice(b.len().to_string().as_bytes()),
                                None => v.extend_from_slice(b"NIL"),
                            }
                        }
                    }
                    Item::Rfc822 => fetch::put_body(&mut v, b"RFC822", data.as_deref(), None),
                    Item::Rfc822Header | Item::Rfc822Text => {
                        let d = data.as_ref().unwrap();
                        let hend = crate::header::body_start(d, 0, d.len());
                        let (nm, part): (&[u8], &[u8]) = if matches!(it, Item::Rfc822Header) {
                            (b"RFC822.HEADER", &d[..hend])
                        } else {
                            (b"RFC822.TEXT", &d[hend..])
                        };
                        fetch::put_body(&mut v, nm, Some(part), None);
                    }
                }
            }
            if flags_changed && !did_flags {
                sep(&mut v);
                v.extend_from_slice(b"FLAGS ");
                fetch::flags_list(&mut v, f.msgs[i].flags, f.msgs[i].recent, &f.keywords);
            }
            v.extend_from_slice(b")\r\n");
            self.out.put(&v);
            // The \Seen this FETCH set gave a new mod-sequence (as Dovecot,
            // on a line of its own, with the UID once QRESYNC is on).
            if flags_changed && self.condstore && !with_modseq {
                let u = if self.qresync || by_uid {
                    format!("UID {} ", f.msgs[i].uid)
                } else {
                    String::new()
                };
                let l = format!("* {} FETCH ({}MODSEQ ({}))", i + 1, u, f.msgs[i].modseq);
                self.out.line(&[l.as_bytes()]);
            }
            if f.cache_new.len() >= 256 {
                crate::imap::cache::save(f);
            }
        }
        crate::imap::cache::save(f);
        if gone {
            return no("[EXPUNGEISSUED] Some of the requested messages no longer exist.");
        }
        ok("Fetch completed.")
    }
}

/// FETCH modifiers (RFC 4466): `(CHANGEDSINCE n [VANISHED])`.
fn fetch_modifiers(c: &mut Cursor) -> Result<(Option<u64>, bool), &'static str> {
    let (mut since, mut vanished) = (None, false);
    if c.at_end() {
        return Ok((since, vanished));
    }
    c.sp()?;
    c.expect(b'(')?;
    loop {
        match &c.word()?[..] {
            b"CHANGEDSINCE" => {
                c.sp()?;
                since = Some(c.number64()?);
            }
            b"VANISHED" => vanished = true,
            _ => return Err("unknown FETCH modifier"),
        }
        if c.eat(b')') {
            break;
        }
        c.sp()?;
    }
    if vanished && since.is_none() {
        return Err("VANISHED needs CHANGEDSINCE");
    }
    Ok((since, vanished))
}

/// The cache record kind of a FETCH item, if it has one.
fn cache_kind(i: &Item) -> Option<u8> {
    match i {
        Item::Envelope => Some(b'E'),
        Item::Body => Some(b'B'),
        Item::BodyStructure => Some(b'S'),
        _ => None,
    }
}

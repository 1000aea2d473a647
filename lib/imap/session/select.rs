//! SELECT and EXAMINE: the folder's state, CONDSTORE's HIGHESTMODSEQ and QRESYNC's resynchronisation (RFC 7162 §3.2.5).

use super::{bad, ok, sys_no, uid_set, Done, Session};
use crate::imap::fetch;
use crate::imap::parse::{Cursor, SeqSet, STAR};
use crate::imap::store::{self, Folder};

impl Session {
    pub(super) fn select(&mut self, c: &mut Cursor, readonly: bool) -> Done {
        tryp!(c.sp());
        let (name, dir) = tryp!(self.mailbox(c));
        let (cond, qr) = tryp!(select_params(c, self.qresync));
        tryp!(c.end());
        if self.sel.take().is_some() && self.qresync {
            self.out.line(&[b"* OK [CLOSED] Previous mailbox closed."]);
        }
        self.condstore |= cond;
        let dir = match dir {
            Some(d) if d.join("cur").is_dir() => d,
            _ => return Done::No([&b"[NONEXISTENT] Mailbox doesn't exist: "[..], &name].concat()),
        };
        let f = tryio!(Folder::open(dir, readonly), "open folder");
        let mut fl = b"\\Answered \\Flagged \\Deleted \\Seen \\Draft".to_vec();
        for k in f.keywords.iter().filter(|k| !k.is_empty()) {
            fl.push(b' ');
            fl.extend_from_slice(k);
        }
        self.out.line(&[b"* FLAGS (", &fl, b")"]);
        if readonly {
            self.out
                .line(&[b"* OK [PERMANENTFLAGS ()] Read-only mailbox."]);
        } else {
            let star: &[u8] = if f.keywords.iter().filter(|k| !k.is_empty()).count() < 26 {
                b" \\*"
            } else {
                b""
            };
            self.out
                .line(&[b"* OK [PERMANENTFLAGS (", &fl, star, b")] Flags permitted."]);
        }
        self.out
            .line(&[b"* ", f.msgs.len().to_string().as_bytes(), b" EXISTS"]);
        let r = f.msgs.iter().filter(|m| m.recent).count();
        self.out
            .line(&[b"* ", r.to_string().as_bytes(), b" RECENT"]);
        if let Some(i) = f.msgs.iter().position(|m| m.flags & store::SEEN == 0) {
            self.out.line(&[
                b"* OK [UNSEEN ",
                (i + 1).to_string().as_bytes(),
                b"] First unseen.",
            ]);
        }
        self.out.line(&[
            b"* OK [UIDVALIDITY ",
            f.validity.to_string().as_bytes(),
            b"] UIDs valid",
        ]);
        self.out.line(&[
            b"* OK [UIDNEXT ",
            f.next_uid.to_string().as_bytes(),
            b"] Predicted next UID",
        ]);
        if self.condstore {
            match f.highest {
                Some(h) => self.out.line(&[
                    b"* OK [HIGHESTMODSEQ ",
                    h.to_string().as_bytes(),
                    b"] Highest",
                ]),
                None => self
                    .out
                    .line(&[b"* OK [NOMODSEQ] No permanent modsequences"]),
            }
        }
        if let (Some((v, since, known)), Some(_)) = (qr, f.highest) {
            if v == f.validity {
                self.resync(&f, since, known.as_ref());
            }
        }
        self.sel = Some(f);
        if readonly {
            ok("[READ-ONLY] Examine completed.")
        } else {
            ok("[READ-WRITE] Select completed.")
        }
    }

    /// QRESYNC's answers at SELECT (RFC 7162 §3.2.5): what was expunged
    /// and what changed after mod-sequence `since`, within `known` UIDs.
    pub(super) fn resync(&mut self, f: &Folder, since: u64, known: Option<&SeqSet>) {
        let gone = f.vanished(since, known);
        if !gone.is_empty() {
            self.out
                .line(&[b"* VANISHED (EARLIER) ", uid_set(&gone).as_bytes()]);
        }
        let max = f.msgs.last().map(|m| m.uid).unwrap_or(0);
        for (i, m) in f.msgs.iter().enumerate() {
            if m.modseq > since && known.map(|k| k.contains(m.uid, max)).unwrap_or(true) {
                let mut v = format!("* {} FETCH (UID {} FLAGS ", i + 1, m.uid).into_bytes();
                fetch::flags_list(&mut v, m.flags, m.recent, &f.keywords);
                v.extend_from_slice(format!(" MODSEQ ({}))", m.modseq).as_bytes());
                self.out.line(&[&v]);
            }
        }
    }
}

/// SELECT's QRESYNC parameter: UIDVALIDITY, mod-sequence, known UIDs.
type Qresync = (u32, u64, Option<SeqSet>);

/// SELECT/EXAMINE parameters (RFC 4466): `(CONDSTORE)` and, once QRESYNC
/// is enabled, `(QRESYNC (uidvalidity modseq [known-uids [(seqs uids)]]))`;
/// the sequence match data is read and not needed.
fn select_params(
    c: &mut Cursor,
    qresync_on: bool,
) -> Result<(bool, Option<Qresync>), &'static str> {
    let (mut cond, mut qr) = (false, None);
    if c.at_end() {
        return Ok((cond, qr));
    }
    c.sp()?;
    c.expect(b'(')?;
    loop {
        match &c.word()?[..] {
            b"CONDSTORE" => cond = true,
            b"QRESYNC" if qresync_on => {
                c.sp()?;
                c.expect(b'(')?;
                let v = c.nz_number()?;
                c.sp()?;
                let since = c.number64()?;
                let mut known = None;
                if c.eat(b' ') {
                    if c.peek() != Some(b'(') {
                        known = Some(c.seqset()?);
                    }
                    if c.peek() == Some(b'(') || (known.is_some() && c.eat(b' ')) {
                        c.expect(b'(')?;
                        let seqs = c.seqset()?;
                        c.sp()?;
                        let uids = c.seqset()?;
                        c.expect(b')')?;
                        if set_len(&seqs) != set_len(&uids) {
                            return Err("Invalid QRESYNC sets");
                        }
                    }
                }
                c.expect(b')')?;
                qr = Some((v, since, known));
            }
            b"QRESYNC" => return Err("QRESYNC is not enabled"),
            _ => return Err("unknown SELECT parameter"),
        }
        if c.eat(b')') {
            return Ok((cond, qr));
        }
        c.sp()?;
    }
}

/// How many numbers a set without `*` names (None with `*`).
fn set_len(s: &SeqSet) -> Option<u64> {
    s.0.iter().try_fold(0u64, |n, &(a, b)| {
        (a != STAR && b != STAR).then(|| n + a.abs_diff(b) as u64 + 1)
    })
}

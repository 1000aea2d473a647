//! SEARCH: every RFC 3501 key, parsed into a tree and evaluated per
//! message, reading a message only when a key needs its text. Header
//! search undoes RFC 2047 words; body search undoes transfer encodings
//! and reads every charset the C library's iconv knows; matching is
//! case-insensitive substring matching in UTF-8.

use super::parse::{days_from_civil, Cursor, SeqSet, R};
use super::store::Folder;
use crate::maildir::flags::{bit, SEEN, SYSFLAGS};
use crate::maildir::lines::to_crlf;
use crate::mime;

#[derive(Clone, Debug)]
pub enum Key {
    All,
    Flag(u64, bool),
    Keyword(Vec<u8>, bool),
    New,
    Old,
    Recent(bool),
    Seq(SeqSet),
    Uid(SeqSet),
    Header(Vec<u8>, Vec<u8>),
    Body(Vec<u8>),
    Text(Vec<u8>),
    Date(Cmp, i64, bool),
    Larger(u64),
    Smaller(u64),
    /// WITHIN (RFC 5032): OLDER (true) or YOUNGER than this many seconds.
    Within(bool, u64),
    /// MODSEQ [entry type] n (RFC 7162): mod-sequence at least n.
    Modseq(u64),
    Not(Box<Key>),
    Or(Box<Key>, Box<Key>),
    And(Vec<Key>),
}

#[derive(Clone, Copy, Debug)]
pub enum Cmp {
    Before,
    On,
    Since,
}

/// Error from parsing: bad syntax, or an unknown charset.
pub enum Error {
    Bad(&'static str),
    Charset,
}

impl From<&'static str> for Error {
    fn from(s: &'static str) -> Error {
        Error::Bad(s)
    }
}

/// `[CHARSET x] key...` to the end of the command.
pub fn parse(c: &mut Cursor) -> Result<Key, Error> {
    let save = c.i;
    let mut cs = None;
    if c.word().map(|w| w == b"CHARSET").unwrap_or(false) {
        c.sp()?;
        cs = Some(c.astring()?);
        c.sp()?;
    } else {
        c.i = save;
    }
    keys(c, cs.as_deref())
}

/// `key...` to the end of the command, its strings in charset `cs`
/// (SEARCH's CHARSET, SORT's and THREAD's charset).
pub fn keys(c: &mut Cursor, cs: Option<&[u8]>) -> Result<Key, Error> {
    let mut charset = None;
    if let Some(cs) = cs.map(|x| x.to_ascii_uppercase()) {
        // Any charset the C library's iconv knows; the others are refused
        // with BADCHARSET (RFC 3501 §6.4.4).
        if cs != b"UTF-8" && cs != b"US-ASCII" {
            if crate::sys::iconv::to_utf8(b"", &cs).is_none() {
                return Err(Error::Charset);
            }
            charset = Some(cs);
        }
    }
    let mut v = Vec::new();
    loop {
        v.push(key(c, 0)?);
        if c.at_end() {
            break;
        }
        c.sp()?;
    }
    let mut k = Key::And(v);
    if let Some(cs) = charset {
        to_utf8_strings(&mut k, &cs);
    }
    Ok(k)
}

/// The search strings of `k`, given in `cs`, as UTF-8.
fn to_utf8_strings(k: &mut Key, cs: &[u8]) {
    match k {
        Key::Header(_, s) | Key::Body(s) | Key::Text(s) => *s = crate::header::to_utf8(s, cs),
        Key::Not(a) => to_utf8_strings(a, cs),
        Key::Or(a, b) => {
            to_utf8_strings(a, cs);
            to_utf8_strings(b, cs);
        }
        Key::And(v) => v.iter_mut().for_each(|x| to_utf8_strings(x, cs)),
        _ => {}
    }
}

fn day(c: &mut Cursor) -> R<i64> {
    let (y, m, d) = c.date()?;
    Ok(days_from_civil(y, m, d))
}

fn key(c: &mut Cursor, depth: usize) -> R<Key> {
    if depth > 50 {
        return Err("search nesting too deep");
    }
    if c.eat(b'(') {
        let mut v = Vec::new();
        loop {
            v.push(key(c, depth + 1)?);
            if c.eat(b')') {
                return Ok(Key::And(v));
            }
            c.sp()?;
        }
    }
    if matches!(c.peek(), Some(b'0'..=b'9') | Some(b'*')) {
        return Ok(Key::Seq(c.seqset()?));
    }
    let w = c.word()?;
    let sys = bit;
    let k = match &w[..] {
        b"ALL" => Key::All,
        b"ANSWERED" => Key::Flag(sys(b'R'), true),
        b"DELETED" => Key::Flag(sys(b'T'), true),
        b"DRAFT" => Key::Flag(sys(b'D'), true),
        b"FLAGGED" => Key::Flag(sys(b'F'), true),
        b"SEEN" => Key::Flag(sys(b'S'), true),
        b"UNANSWERED" => Key::Flag(sys(b'R'), false),
        b"UNDELETED" => Key::Flag(sys(b'T'), false),
        b"UNDRAFT" => Key::Flag(sys(b'D'), false),
        b"UNFLAGGED" => Key::Flag(sys(b'F'), false),
        b"UNSEEN" => Key::Flag(sys(b'S'), false),
        b"NEW" => Key::New,
        b"OLD" => Key::Old,
        b"RECENT" => Key::Recent(true),
        b"KEYWORD" | b"UNKEYWORD" => {
            c.sp()?;
            let f = c.flag()?;
            Key::Keyword(f, &w[..] == b"KEYWORD")
        }
        b"BCC" | b"CC" | b"FROM" | b"SUBJECT" | b"TO" => {
            c.sp()?;
            Key::Header(w.to_ascii_lowercase(), c.astring()?)
        }
        b"HEADER" => {
            c.sp()?;
            let n = c.astring()?;
            c.sp()?;
            Key::Header(n.to_ascii_lowercase(), c.astring()?)
        }
        b"BODY" => {
            c.sp()?;
            Key::Body(c.astring()?)
        }
        b"TEXT" => {
            c.sp()?;
            Key::Text(c.astring()?)
        }
        b"BEFORE" | b"ON" | b"SINCE" | b"SENTBEFORE" | b"SENTON" | b"SENTSINCE" => {
            c.sp()?;
            let d = day(c)?;
            let sent = w.starts_with(b"SENT");
            let cmp = match &w[if sent { 4 } else { 0 }..] {
                b"BEFORE" => Cmp::Before,
                b"ON" => Cmp::On,
                _ => Cmp::Since,
            };
            Key::Date(cmp, d, sent)
        }
        b"LARGER" => {
            c.sp()?;
            Key::Larger(c.number()? as u64)
        }
        b"SMALLER" => {
            c.sp()?;
            Key::Smaller(c.number()? as u64)
        }
        b"OLDER" | b"YOUNGER" => {
            c.sp()?;
            Key::Within(w == b"OLDER", c.nz_number()? as u64)
        }
        b"UID" => {
            c.sp()?;
            Key::Uid(c.seqset()?)
        }
        b"MODSEQ" => {
            c.sp()?;
            // The per-flag entry name and type are accepted and ignored:
            // one mod-sequence per message covers all its flags.
            if c.peek() == Some(b'"') {
                c.quoted()?;
                c.sp()?;
                let t = c.word()?;
                if !matches!(&t[..], b"PRIV" | b"SHARED" | b"ALL") {
                    return Err("invalid MODSEQ entry type");
                }
                c.sp()?;
            }
            Key::Modseq(c.number64()?)
        }
        b"NOT" => {
            c.sp()?;
            Key::Not(Box::new(key(c, depth + 1)?))
        }
        b"OR" => {
            c.sp()?;
            let a = key(c, depth + 1)?;
            c.sp()?;
            let b = key(c, depth + 1)?;
            Key::Or(Box::new(a), Box::new(b))
        }
        _ => return Err("unknown search key"),
    };
    Ok(k)
}

/// Case folding for matching: Unicode lower case when the bytes are UTF-8.
pub fn fold(b: &[u8]) -> Vec<u8> {
    match std::str::from_utf8(b) {
        Ok(s) => s.to_lowercase().into_bytes(),
        Err(_) => b.to_ascii_lowercase(),
    }
}

fn contains(hay: &[u8], needle_folded: &[u8]) -> bool {
    needle_folded.is_empty() || memchr::memmem::find(&fold(hay), needle_folded).is_some()
}

/// The message text a key looks at, loaded once.
struct Loaded {
    data: Vec<u8>,
    root: mime::Part,
}

struct Ctx<'a> {
    f: &'a mut Folder,
    i: usize,
    seq: u32,
    loaded: Option<Option<Loaded>>,
}

impl Ctx<'_> {
    fn load(&mut self) -> Option<&Loaded> {
        if self.loaded.is_none() {
            let l = match self.f.read(self.i) {
                Ok(Some(d)) => {
                    let data = to_crlf(&d);
                    let root = mime::parse(&data);
                    Some(Loaded { data, root })
                }
                _ => None,
            };
            self.loaded = Some(l);
        }
        self.loaded.as_ref().and_then(|l| l.as_ref())
    }
}

fn header_match(h: &[u8], name: &[u8], needle: &[u8]) -> bool {
    let addr = matches!(name, b"from" | b"to" | b"cc" | b"bcc");
    crate::header::unfolded(h).iter().any(|(n, v)| {
        n.eq_ignore_ascii_case(name)
            && (contains(&crate::header::decode(v), needle)
                || addr && contains(&address_text(v), needle))
    })
}

/// An address field as ENVELOPE reads it, `name <mailbox@host>` for each
/// address (comments and obsolete spacing gone): SEARCH FROM, TO, CC and
/// BCC look at this as well as at the text (RFC 3501 §6.4.4).
fn address_text(v: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for a in crate::header::address_list(v) {
        if let crate::header::Address::Mailbox {
            name,
            mailbox,
            host,
            ..
        } = a
        {
            if let Some(n) = name {
                out.extend_from_slice(&crate::header::decode(&n));
                out.push(b' ');
            }
            out.push(b'<');
            out.extend_from_slice(&mailbox);
            out.push(b'@');
            out.extend_from_slice(&host);
            out.extend_from_slice(b">, ");
        }
    }
    out
}

fn body_match(m: &[u8], p: &mime::Part, needle: &[u8]) -> bool {
    if p.is_multipart() {
        return p.parts.iter().any(|c| body_match(m, c, needle));
    }
    if p.is_message() {
        let e = &p.parts[0];
        return header_match_any(e.header(m), needle) || body_match(m, e, needle);
    }
    // Only text is searched, as in Dovecot: a decoded attachment (image,
    // application/octet-stream ...) gives false hits and costs time.
    if p.ctype != b"text" {
        return false;
    }
    let d = mime::decode_body(p.text(m), p.encoding.as_deref());
    let cs = p.param(b"charset").unwrap_or_else(|| b"us-ascii".to_vec());
    contains(&crate::header::to_utf8(&d, &cs), needle)
}

fn header_match_any(h: &[u8], needle: &[u8]) -> bool {
    contains(&crate::header::decode(h), needle)
}

fn eval(k: &Key, cx: &mut Ctx, max_seq: u32, max_uid: u32) -> bool {
    let m = &cx.f.msgs[cx.i];
    match k {
        Key::All => true,
        Key::Flag(b, on) => (m.flags & b != 0) == *on,
        Key::Modseq(n) => m.modseq >= *n,
        Key::Keyword(name, on) => {
            let has = match SYSFLAGS.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)) {
                Some((_, l)) => m.flags & bit(*l) != 0,
                None => match cx
                    .f
                    .keywords
                    .iter()
                    .position(|x| x.eq_ignore_ascii_case(name))
                {
                    Some(i) => m.flags & bit(b'a' + i as u8) != 0,
                    None => false,
                },
            };
            has == *on
        }
        Key::New => m.recent && m.flags & SEEN == 0,
        Key::Old => !m.recent,
        Key::Recent(on) => m.recent == *on,
        Key::Seq(s) => s.contains(cx.seq, max_seq),
        Key::Uid(s) => s.contains(m.uid, max_uid),
        Key::Larger(n) => cx.f.size(cx.i).unwrap_or(0) > *n,
        Key::Smaller(n) => cx.f.size(cx.i).unwrap_or(0) < *n,
        Key::Within(older, secs) => {
            let age = crate::sys::now() as i64 - cx.f.date(cx.i);
            if *older {
                age > *secs as i64
            } else {
                age <= *secs as i64
            }
        }
        Key::Date(cmp, d, sent) => {
            let msgday = if *sent {
                let dd = cx
                    .load()
                    .and_then(|l| crate::header::value(l.root.header(&l.data), b"date"))
                    .and_then(|v| crate::date::date_ymd(&v));
                match dd {
                    Some((y, mo, da)) => days_from_civil(y, mo, da),
                    None => local_day(cx.f.date(cx.i)),
                }
            } else {
                local_day(cx.f.date(cx.i))
            };
            match cmp {
                Cmp::Before => msgday < *d,
                Cmp::On => msgday == *d,
                Cmp::Since => msgday >= *d,
            }
        }
        Key::Header(name, s) => {
            let needle = fold(s);
            match cx.load() {
                Some(l) => {
                    let h = l.root.header(&l.data);
                    if needle.is_empty() {
                        crate::header::unfolded(h)
                            .iter()
                            .any(|(n, _)| n.eq_ignore_ascii_case(name))
                    } else {
                        header_match(h, name, &needle)
                    }
                }
                None => false,
            }
        }
        Key::Body(s) => {
            let needle = fold(s);
            match cx.load() {
                Some(l) => body_match(&l.data, &l.root, &needle),
                None => false,
            }
        }
        Key::Text(s) => {
            let needle = fold(s);
            match cx.load() {
                Some(l) => {
                    header_match_any(l.root.header(&l.data), &needle)
                        || body_match(&l.data, &l.root, &needle)
                }
                None => false,
            }
        }
        Key::Not(k) => !eval(k, cx, max_seq, max_uid),
        Key::Or(a, b) => eval(a, cx, max_seq, max_uid) || eval(b, cx, max_seq, max_uid),
        Key::And(v) => v.iter().all(|k| eval(k, cx, max_seq, max_uid)),
    }
}

fn local_day(t: i64) -> i64 {
    let (y, m, d) = super::resp::local_date(t);
    days_from_civil(y, m, d)
}

/// Whether `k` holds a MODSEQ key (its SEARCH answer then carries one).
pub fn has_modseq(k: &Key) -> bool {
    match k {
        Key::Modseq(_) => true,
        Key::Not(a) => has_modseq(a),
        Key::Or(a, b) => has_modseq(a) || has_modseq(b),
        Key::And(v) => v.iter().any(has_modseq),
        _ => false,
    }
}

/// Indexes of the messages that match.
pub fn run(f: &mut Folder, k: &Key) -> Vec<usize> {
    let max_seq = f.msgs.len() as u32;
    let max_uid = f.msgs.last().map(|m| m.uid).unwrap_or(0);
    let mut out = Vec::new();
    for i in 0..f.msgs.len() {
        let mut cx = Ctx {
            f,
            i,
            seq: i as u32 + 1,
            loaded: None,
        };
        if eval(k, &mut cx, max_seq, max_uid) {
            out.push(i);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn parses_nested_keys() {
        let mut c = Cursor::new(
            b"CHARSET UTF-8 OR (FROM \"x\" NOT SEEN) 2:4 UID 1,* SINCE 1-Feb-1994 HEADER X-A b",
        );
        assert!(parse(&mut c).is_ok());
        assert!(matches!(
            parse(&mut Cursor::new(b"CHARSET X-NO-SUCH ALL")),
            Err(Error::Charset)
        ));
        assert!(matches!(
            parse(&mut Cursor::new(b"FOO")),
            Err(Error::Bad(_))
        ));
        assert!(matches!(
            parse(&mut Cursor::new(b"OR SEEN")),
            Err(Error::Bad(_))
        ));
        assert!(matches!(
            parse(&mut Cursor::new(b"SINCE 31-Foo-2000")),
            Err(Error::Bad(_))
        ));
    }
    #[test]
    fn folding() {
        assert!(!contains(
            "Grüße AUS Köln".as_bytes(),
            &fold("grüsse".as_bytes())
        ));
        assert!(contains(
            "Grüße AUS KÖLN".as_bytes(),
            &fold("köln".as_bytes())
        ));
    }
}

//! FETCH: the attribute grammar and the data items (FLAGS, INTERNALDATE,
//! RFC822.SIZE, UID, ENVELOPE, BODY, BODYSTRUCTURE, BODY[section]<partial>,
//! RFC822, RFC822.HEADER, RFC822.TEXT).

use super::parse::{Cursor, R};
use super::resp::{self, nstring, string};
use crate::header::{self, Address as Addr};
use crate::mime::{self, Part};

#[derive(Clone, Debug, PartialEq)]
pub enum Kind {
    All,
    Header,
    Fields(Vec<Vec<u8>>, bool),
    Text,
    Mime,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Section {
    pub parts: Vec<u32>,
    pub kind: Kind,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Item {
    Flags,
    InternalDate,
    Size,
    Uid,
    Envelope,
    Body,
    BodyStructure,
    Section {
        sec: Section,
        peek: bool,
        partial: Option<(u64, u64)>,
    },
    Rfc822,
    Rfc822Header,
    Rfc822Text,
    /// BINARY[part]<partial> and BINARY.PEEK (RFC 3516).
    Binary {
        parts: Vec<u32>,
        peek: bool,
        partial: Option<(u64, u64)>,
    },
    /// BINARY.SIZE[part].
    BinarySize(Vec<u32>),
    /// MODSEQ (RFC 7162).
    Modseq,
}

impl Item {
    /// Whether the item needs the message bytes.
    pub fn needs_data(&self) -> bool {
        !matches!(
            self,
            Item::Flags | Item::InternalDate | Item::Size | Item::Uid | Item::Modseq
        )
    }
    /// Whether fetching it sets \Seen.
    pub fn sets_seen(&self) -> bool {
        matches!(
            self,
            Item::Section { peek: false, .. }
                | Item::Binary { peek: false, .. }
                | Item::Rfc822
                | Item::Rfc822Text
        )
    }
}

/// fetch-att list: a macro (ALL FAST FULL), one item, or `(item ...)`.
pub fn parse_items(c: &mut Cursor) -> R<Vec<Item>> {
    if c.eat(b'(') {
        let mut v = Vec::new();
        loop {
            v.push(item(c)?);
            if c.eat(b')') {
                return Ok(v);
            }
            c.sp()?;
        }
    }
    let save = c.i;
    let w = c.word()?;
    match &w[..] {
        b"ALL" => {
            return Ok(vec![
                Item::Flags,
                Item::InternalDate,
                Item::Size,
                Item::Envelope,
            ])
        }
        b"FAST" => return Ok(vec![Item::Flags, Item::InternalDate, Item::Size]),
        b"FULL" => {
            return Ok(vec![
                Item::Flags,
                Item::InternalDate,
                Item::Size,
                Item::Envelope,
                Item::Body,
            ])
        }
        _ => {}
    }
    c.i = save;
    Ok(vec![item(c)?])
}

fn item(c: &mut Cursor) -> R<Item> {
    let s = c.i;
    while c
        .peek()
        .map(|x| x.is_ascii_alphanumeric() || x == b'.')
        .unwrap_or(false)
    {
        c.i += 1;
    }
    let name = c.b[s..c.i].to_ascii_uppercase();
    let it = match &name[..] {
        b"FLAGS" => Item::Flags,
        b"INTERNALDATE" => Item::InternalDate,
        b"RFC822.SIZE" => Item::Size,
        b"UID" => Item::Uid,
        b"MODSEQ" => Item::Modseq,
        b"ENVELOPE" => Item::Envelope,
        b"BODYSTRUCTURE" => Item::BodyStructure,
        b"RFC822" => Item::Rfc822,
        b"RFC822.HEADER" => Item::Rfc822Header,
        b"RFC822.TEXT" => Item::Rfc822Text,
        b"BODY" | b"BODY.PEEK" => {
            if c.peek() != Some(b'[') {
                if name == b"BODY" {
                    return Ok(Item::Body);
                }
                return Err("BODY.PEEK needs a section");
            }
            let sec = section(c)?;
            Item::Section {
                sec,
                peek: name == b"BODY.PEEK",
                partial: partial(c)?,
            }
        }
        b"BINARY" | b"BINARY.PEEK" | b"BINARY.SIZE" => {
            c.expect(b'[')?;
            let mut parts = Vec::new();
            while !c.eat(b']') {
                if !parts.is_empty() {
                    c.expect(b'.')?;
                }
                parts.push(c.nz_number()?);
            }
            if name == b"BINARY.SIZE" {
                Item::BinarySize(parts)
            } else {
                Item::Binary {
                    parts,
                    peek: name == b"BINARY.PEEK",
                    partial: partial(c)?,
                }
            }
        }
        _ => return Err("unknown fetch attribute"),
    };
    Ok(it)
}

/// `<start.count>` after a section, if there.
fn partial(c: &mut Cursor) -> R<Option<(u64, u64)>> {
    if !c.eat(b'<') {
        return Ok(None);
    }
    let a = c.number()? as u64;
    c.expect(b'.')?;
    let b = c.nz_number()? as u64;
    c.expect(b'>')?;
    Ok(Some((a, b)))
}

fn section(c: &mut Cursor) -> R<Section> {
    c.expect(b'[')?;
    let mut parts = Vec::new();
    let mut kind = Kind::All;
    loop {
        if c.peek().map(|x| x.is_ascii_digit()).unwrap_or(false) {
            parts.push(c.nz_number()?);
            if c.eat(b'.') {
                continue;
            }
            break;
        }
        let s = c.i;
        while c
            .peek()
            .map(|x| x.is_ascii_alphabetic() || x == b'.')
            .unwrap_or(false)
        {
            c.i += 1;
        }
        let w = c.b[s..c.i].to_ascii_uppercase();
        kind = match &w[..] {
            b"" => Kind::All,
            b"HEADER" => Kind::Header,
            b"TEXT" => Kind::Text,
            b"MIME" if !parts.is_empty() => Kind::Mime,
            b"HEADER.FIELDS" | b"HEADER.FIELDS.NOT" => {
                c.sp()?;
                c.expect(b'(')?;
                let mut names = Vec::new();
                loop {
                    names.push(c.astring()?);
                    if c.eat(b')') {
                        break;
                    }
                    c.sp()?;
                }
                Kind::Fields(names, w.ends_with(b".NOT"))
            }
            _ => return Err("bad section"),
        };
        break;
    }
    c.expect(b']')?;
    Ok(Section { parts, kind })
}

/// The section as echoed in the response: `1.HEADER.FIELDS (A B)`.
pub fn label(s: &Section) -> Vec<u8> {
    let mut v: Vec<u8> = s
        .parts
        .iter()
        .map(|n| n.to_string())
        .collect::<Vec<_>>()
        .join(".")
        .into_bytes();
    let k: &[u8] = match &s.kind {
        Kind::All => b"",
        Kind::Header => b"HEADER",
        Kind::Text => b"TEXT",
        Kind::Mime => b"MIME",
        Kind::Fields(_, false) => b"HEADER.FIELDS",
        Kind::Fields(_, true) => b"HEADER.FIELDS.NOT",
    };
    if !k.is_empty() && !v.is_empty() {
        v.push(b'.');
    }
    v.extend_from_slice(k);
    if let Kind::Fields(names, _) = &s.kind {
        v.extend_from_slice(b" (");
        for (i, n) in names.iter().enumerate() {
            if i > 0 {
                v.push(b' ');
            }
            resp::astring(&mut v, &n.to_ascii_uppercase());
        }
        v.push(b')');
    }
    v
}

/// The part named by `nums` (RFC 3501 §6.4.5 numbering).
pub fn find<'a>(root: &'a Part, nums: &[u32]) -> Option<&'a Part> {
    let mut cur = root;
    let mut is_msg = true;
    for &n in nums {
        if !is_msg {
            if cur.is_message() {
                cur = &cur.parts[0];
            } else if !cur.is_multipart() {
                return None; // a leaf part has no parts (`1.1` of text/plain)
            }
        }
        if cur.is_multipart() {
            cur = cur.parts.get(n as usize - 1)?;
        } else if n != 1 {
            return None;
        }
        is_msg = false;
    }
    Some(cur)
}

/// The bytes of a section, or None when the part does not exist.
pub fn section_bytes(m: &[u8], root: &Part, s: &Section) -> Option<Vec<u8>> {
    let p = find(root, &s.parts)?;
    let msg = if s.parts.is_empty() {
        Some(p)
    } else if p.is_message() {
        Some(&p.parts[0])
    } else {
        None
    };
    Some(match &s.kind {
        Kind::All => {
            if s.parts.is_empty() {
                m.to_vec()
            } else {
                p.text(m).to_vec()
            }
        }
        Kind::Mime => p.header(m).to_vec(),
        Kind::Header => msg.map(|e| e.header(m).to_vec()).unwrap_or_default(),
        Kind::Text => msg.map(|e| e.text(m).to_vec()).unwrap_or_default(),
        Kind::Fields(names, not) => msg
            .map(|e| header::select_fields(e.header(m), names, *not))
            .unwrap_or_default(),
    })
}

/// The content of a part for BINARY (RFC 3516): the whole message for no
/// part, a leaf part's body with its Content-Transfer-Encoding undone, a
/// multipart or message part as it is. None when the part does not exist,
/// Some(Err) when the transfer encoding is unknown.
pub fn binary_bytes(m: &[u8], root: &Part, parts: &[u32]) -> Option<Result<Vec<u8>, ()>> {
    if parts.is_empty() {
        return Some(Ok(m.to_vec()));
    }
    let p = find(root, parts)?;
    let body = p.text(m);
    if p.is_multipart() || p.is_message() {
        return Some(Ok(body.to_vec()));
    }
    let e = p
        .encoding
        .as_deref()
        .unwrap_or(b"7bit")
        .to_ascii_lowercase();
    Some(match &e[..] {
        b"7bit" | b"8bit" | b"binary" => Ok(body.to_vec()),
        b"base64" | b"quoted-printable" => Ok(mime::decode_body(body, Some(&e))),
        _ => Err(()),
    })
}

/// `BINARY[1.2]`, `BINARY.SIZE[1.2]`: the name of a BINARY answer.
pub fn binary_label(what: &[u8], parts: &[u32]) -> Vec<u8> {
    let nums: Vec<String> = parts.iter().map(|n| n.to_string()).collect();
    [what, b"[", nums.join(".").as_bytes(), b"]"].concat()
}

fn up(out: &mut Vec<u8>, s: &[u8]) {
    string(out, &s.to_ascii_uppercase());
}

fn params(out: &mut Vec<u8>, ps: &[(Vec<u8>, Vec<u8>)]) {
    let ps = &header::joined_continuations(ps);
    if ps.is_empty() {
        out.extend_from_slice(b"NIL");
        return;
    }
    out.push(b'(');
    for (i, (n, v)) in ps.iter().enumerate() {
        if i > 0 {
            out.push(b' ');
        }
        up(out, n);
        out.push(b' ');
        string(out, v);
    }
    out.push(b')');
}

/// Text lines: the line ends (a part's last line before its delimiter
/// has none: the CRLF belongs to the delimiter), as Dovecot counts.
fn lines(b: &[u8]) -> usize {
    memchr::memchr_iter(b'\n', b).count()
}

/// BODY (ext = false) or BODYSTRUCTURE (ext = true) of a part.
pub fn body_structure(out: &mut Vec<u8>, m: &[u8], p: &Part, ext: bool) {
    out.push(b'(');
    if p.is_multipart() {
        for c in &p.parts {
            body_structure(out, m, c, ext);
        }
        out.push(b' ');
        up(out, &p.subtype);
        if ext {
            out.push(b' ');
            params(out, &p.params);
            ext_tail(out, p);
        }
        out.push(b')');
        return;
    }
    up(out, &p.ctype);
    out.push(b' ');
    up(out, &p.subtype);
    out.push(b' ');
    params(out, &p.params);
    out.push(b' ');
    nstring(out, p.id.as_deref());
    out.push(b' ');
    nstring(out, p.description.as_deref());
    out.push(b' ');
    up(out, p.encoding.as_deref().unwrap_or(b"7bit"));
    out.push(b' ');
    let body = p.text(m);
    out.extend_from_slice(body.len().to_string().as_bytes());
    if p.is_message() {
        out.push(b' ');
        envelope(out, p.parts[0].header(m));
        out.push(b' ');
        body_structure(out, m, &p.parts[0], ext);
        out.push(b' ');
        out.extend_from_slice(lines(body).to_string().as_bytes());
    } else if p.ctype == b"text" {
        out.push(b' ');
        out.extend_from_slice(lines(body).to_string().as_bytes());
    }
    if ext {
        out.push(b' ');
        nstring(out, p.md5.as_deref());
        ext_tail(out, p);
    }
    out.push(b')');
}

fn ext_tail(out: &mut Vec<u8>, p: &Part) {
    out.push(b' ');
    match &p.disposition {
        Some((t, ps)) => {
            out.push(b'(');
            up(out, t);
            out.push(b' ');
            params(out, ps);
            out.push(b')');
        }
        None => out.extend_from_slice(b"NIL"),
    }
    out.push(b' ');
    language(out, p.language.as_deref());
    out.push(b' ');
    nstring(out, p.location.as_deref());
}

/// body-fld-lang: Content-Language's tags as a list (RFC 3501 §7.4.2,
/// RFC 3282), NIL when there are none.
fn language(out: &mut Vec<u8>, v: Option<&[u8]>) {
    let tags: Vec<&[u8]> = v
        .unwrap_or_default()
        .split(|&c| c == b',')
        .map(crate::parse::trim)
        .filter(|t| !t.is_empty())
        .collect();
    if tags.is_empty() {
        out.extend_from_slice(b"NIL");
        return;
    }
    out.push(b'(');
    for (i, t) in tags.iter().enumerate() {
        if i > 0 {
            out.push(b' ');
        }
        string(out, t);
    }
    out.push(b')');
}

fn addr_list(out: &mut Vec<u8>, v: Option<&[u8]>) {
    let list = v.map(header::address_list).unwrap_or_default();
    if list.is_empty() {
        out.extend_from_slice(b"NIL");
        return;
    }
    out.push(b'(');
    for a in &list {
        match a {
            Addr::Mailbox {
                name,
                route,
                mailbox,
                host,
                ..
            } => {
                out.push(b'(');
                nstring(out, name.as_deref());
                out.push(b' ');
                nstring(out, route.as_deref());
                out.push(b' ');
                string(out, mailbox);
                out.push(b' ');
                string(out, host);
                out.push(b')');
            }
            Addr::GroupStart(n) => {
                out.extend_from_slice(b"(NIL NIL ");
                string(out, n);
                out.extend_from_slice(b" NIL)");
            }
            Addr::GroupEnd => out.extend_from_slice(b"(NIL NIL NIL NIL)"),
        }
    }
    out.push(b')');
}

/// ENVELOPE of a header. A field that appears twice counts as Dovecot
/// reads it: the last Date, Subject, In-Reply-To and Message-ID, and every
/// address field's addresses together.
pub fn envelope(out: &mut Vec<u8>, h: &[u8]) {
    let f = header::unfolded(h);
    // The last such field; a TAB left by unfolding reads as a space, as
    // in Dovecot.
    let get = |n: &[u8]| -> Option<Vec<u8>> {
        f.iter()
            .rev()
            .find(|(k, _)| k.eq_ignore_ascii_case(n))
            .map(|(_, v)| {
                crate::parse::trim(v)
                    .iter()
                    .map(|&c| if c == b'\t' { b' ' } else { c })
                    .collect()
            })
    };
    let all = |n: &[u8]| -> Option<Vec<u8>> {
        let v: Vec<&[u8]> = f
            .iter()
            .filter(|(k, v)| k.eq_ignore_ascii_case(n) && !v.is_empty())
            .map(|(_, v)| &v[..])
            .collect();
        (!v.is_empty()).then(|| v.join(&b',')[..].to_vec())
    };
    let from = all(b"from");
    out.push(b'(');
    nstring(out, get(b"date").as_deref());
    out.push(b' ');
    nstring(out, get(b"subject").as_deref());
    out.push(b' ');
    addr_list(out, from.as_deref());
    out.push(b' ');
    addr_list(out, all(b"sender").or_else(|| from.clone()).as_deref());
    out.push(b' ');
    addr_list(out, all(b"reply-to").or_else(|| from.clone()).as_deref());
    for n in [&b"to"[..], b"cc", b"bcc"] {
        out.push(b' ');
        addr_list(out, all(n).as_deref());
    }
    out.push(b' ');
    nstring(out, get(b"in-reply-to").as_deref());
    out.push(b' ');
    nstring(out, get(b"message-id").as_deref());
    out.push(b')');
}

/// FLAGS list of a message.
pub fn flags_list(out: &mut Vec<u8>, flags: u64, recent: bool, keywords: &[Vec<u8>]) {
    out.push(b'(');
    let mut first = true;
    let mut sep = |out: &mut Vec<u8>| {
        if !first {
            out.push(b' ');
        }
        first = false;
    };
    for (name, letter) in crate::maildir::flags::SYSFLAGS {
        if flags & crate::maildir::flags::bit(letter) != 0 {
            sep(out);
            out.extend_from_slice(name);
        }
    }
    for (i, k) in keywords.iter().enumerate() {
        if !k.is_empty() && flags & crate::maildir::flags::bit(b'a' + i as u8) != 0 {
            sep(out);
            out.extend_from_slice(k);
        }
    }
    if recent {
        sep(out);
        out.extend_from_slice(b"\\Recent");
    }
    out.push(b')');
}

/// Appends a section's bytes with its partial range applied.
pub fn put_body(out: &mut Vec<u8>, name: &[u8], data: Option<&[u8]>, partial: Option<(u64, u64)>) {
    out.extend_from_slice(name);
    match partial {
        Some((a, n)) => {
            out.extend_from_slice(format!("<{}> ", a).as_bytes());
            match data {
                Some(d) => {
                    let s = (a as usize).min(d.len());
                    let e = (a.saturating_add(n) as usize).min(d.len());
                    resp::literal8(out, &d[s..e]);
                }
                None => out.extend_from_slice(b"NIL"),
            }
        }
        None => {
            out.push(b' ');
            match data {
                Some(d) => resp::literal8(out, d),
                None => out.extend_from_slice(b"NIL"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items() {
        let mut c =
            Cursor::new(b"(FLAGS BODY.PEEK[1.2.HEADER.FIELDS (Subject from)]<0.10> RFC822.SIZE)");
        let v = parse_items(&mut c).unwrap();
        assert_eq!(v.len(), 3);
        match &v[1] {
            Item::Section {
                sec,
                peek: true,
                partial: Some((0, 10)),
            } => {
                assert_eq!(label(sec), b"1.2.HEADER.FIELDS (SUBJECT FROM)");
            }
            _ => panic!(),
        }
        assert!(parse_items(&mut Cursor::new(b"BODY[MIME]")).is_err());
        assert!(parse_items(&mut Cursor::new(b"BODY[1.MIME]")).is_ok());
        assert!(parse_items(&mut Cursor::new(b"FOO")).is_err());
        assert_eq!(parse_items(&mut Cursor::new(b"fast")).unwrap().len(), 3);
    }

    #[test]
    fn structure_of_plain_message() {
        let m = b"Subject: hi\r\nFrom: A <a@b.c>\r\n\r\nline1\r\nline2\r\n";
        let p = mime::parse(m);
        let mut out = Vec::new();
        body_structure(&mut out, m, &p, false);
        assert_eq!(
            out,
            b"(\"TEXT\" \"PLAIN\" (\"CHARSET\" \"us-ascii\") NIL NIL \"7BIT\" 14 2)"
        );
        let mut e = Vec::new();
        envelope(&mut e, p.header(m));
        assert_eq!(e, b"(NIL \"hi\" ((\"A\" NIL \"a\" \"b.c\")) ((\"A\" NIL \"a\" \"b.c\")) ((\"A\" NIL \"a\" \"b.c\")) NIL NIL NIL NIL NIL)");
    }
}

#[cfg(test)]
mod fuzz {
    use super::*;

    const M: &[u8] = b"From: \"A\" <a@b>, (c) d@e\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\nContent-Type: message/rfc822\r\n\r\nSubject: x\r\nContent-Type: multipart/alternative; boundary=c\r\n\r\n--c\r\n\r\nt\r\n--c\r\nContent-Type: text/html; name*0*=utf-8''%C3; name*1=x\r\nContent-Transfer-Encoding: base64\r\n\r\nPGI+\r\n--c--\r\n--b\r\nContent-Disposition: attachment; filename=\"=?utf-8?b?w7w=?=\"\r\n\r\nz\r\n--b--\r\n";

    /// Truncations and byte changes of a nested message never panic.
    #[test]
    fn mutated_messages_never_panic() {
        let mut seed: u64 = 0x9e3779b97f4a7c15;
        let mut rnd = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let specials = b"-:;\"\\()<>@,=\r\n \x00\xff";
        for _ in 0..3000 {
            let mut m = M.to_vec();
            for _ in 0..(rnd() % 6) {
                let i = (rnd() as usize) % m.len();
                m[i] = specials[(rnd() as usize) % specials.len()];
            }
            let cut = (rnd() as usize) % (m.len() + 1);
            m.truncate(cut);
            let p = crate::mime::parse(&m);
            let mut out = Vec::new();
            body_structure(&mut out, &m, &p, true);
            envelope(&mut out, p.header(&m));
            for parts in [
                vec![],
                vec![1],
                vec![1, 1],
                vec![1, 2],
                vec![2],
                vec![1, 2, 1],
                vec![3, 1],
            ] {
                for kind in [
                    Kind::All,
                    Kind::Header,
                    Kind::Text,
                    Kind::Mime,
                    Kind::Fields(vec![b"subject".to_vec()], true),
                ] {
                    if kind == Kind::Mime && parts.is_empty() {
                        continue;
                    }
                    let _ = section_bytes(
                        &m,
                        &p,
                        &Section {
                            parts: parts.clone(),
                            kind,
                        },
                    );
                }
            }
            let _ = p.param(b"boundary");
            let _ = crate::header::address_list(&m);
            let _ = crate::header::decode(&m);
        }
    }
}

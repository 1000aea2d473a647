//! The one header layer (RFC 5322): where the header ends, its fields with
//! folding undone, the tokenizer for structured values, parameters with
//! RFC 2231 continuations and charsets, the one address-list parser
//! (groups, quoted names, comments, routes, obsolete spacing, encoded
//! words) for ENVELOPE, SEARCH, SORT and mail-inject, and RFC 2047
//! decoding to UTF-8 with the C library's iconv.
//!
//! Everything works on bytes and accepts garbage: a malformed header gives
//! odd results, never a panic.

use memchr::memchr;

/// The most header bytes the submission tools read (mail-inject, mail-header).
pub const MAX_HEADER: usize = 1 << 20;

/// More `Received:` and `Delivered-To:` lines than this: the message is
/// looping (smtp-recv refuses it, forward and deliver-local bounce it).
pub const MAX_HOPS: u32 = 100;

/// The failure text for a message over [`MAX_HOPS`].
pub const LOOPING: &[u8] =
    b"This message is looping: it has more than 100 Received and Delivered-To lines. (#5.4.6)";

const HOP_PREFIX: usize = 13; // "delivered-to:"

/// Counts the `Received:` and `Delivered-To:` lines of a header as the
/// message streams by (LF line ends, chunks cut anywhere), as qmail-smtpd
/// does: the hop count.
#[derive(Debug, Clone)]
pub struct Hops {
    pub count: u32,
    in_header: bool,
    line_len: usize,
    prefix: [u8; HOP_PREFIX],
}

impl Default for Hops {
    fn default() -> Hops {
        Hops {
            count: 0,
            in_header: true,
            line_len: 0,
            prefix: [0; HOP_PREFIX],
        }
    }
}

impl Hops {
    /// One byte of the message.
    pub fn byte(&mut self, c: u8) {
        if c == b'\n' {
            if self.in_header {
                if self.line_len == 0 {
                    self.in_header = false;
                } else {
                    let p = &self.prefix[..self.line_len.min(HOP_PREFIX)];
                    if p.starts_with(b"received:") || p.starts_with(b"delivered-to:") {
                        self.count = self.count.saturating_add(1);
                    }
                }
            }
            self.line_len = 0;
        } else {
            if self.in_header && self.line_len < HOP_PREFIX {
                self.prefix[self.line_len] = c.to_ascii_lowercase();
            }
            self.line_len += 1;
        }
    }

    /// Whether the bytes up to the next LF do not matter (past the header,
    /// or past the start of the line): then [`Hops::skip`] them.
    pub fn idle(&self) -> bool {
        !self.in_header || self.line_len >= HOP_PREFIX
    }

    /// `n` bytes without an LF, skipped while [`Hops::idle`].
    pub fn skip(&mut self, n: usize) {
        self.line_len += n;
    }

    /// A chunk of the message.
    pub fn feed(&mut self, b: &[u8]) {
        let mut i = 0;
        while i < b.len() && self.in_header {
            if self.idle() {
                match memchr(b'\n', &b[i..]) {
                    Some(n) => {
                        self.skip(n);
                        i += n;
                    }
                    None => return self.skip(b.len() - i),
                }
            }
            self.byte(b[i]);
            i += 1;
        }
    }

    /// Whether the count is over [`MAX_HOPS`].
    pub fn looping(&self) -> bool {
        self.count > MAX_HOPS
    }
}

fn is_wsp(c: u8) -> bool {
    c == b' ' || c == b'\t'
}

/// When `line` starts a header field (`NAME:` with NAME made of printable
/// ASCII other than `:`, optional blanks before the colon): the name.
pub fn field_name(line: &[u8]) -> Option<&[u8]> {
    let colon = memchr(b':', line)?;
    let mut name = &line[..colon];
    while let [rest @ .., l] = name {
        if is_wsp(*l) {
            name = rest;
        } else {
            break;
        }
    }
    if name.is_empty() || !name.iter().all(|&c| (33..127).contains(&c)) {
        return None;
    }
    Some(name)
}

/// Where the header of `buf` ends: `(header_len, body_start)`. The header
/// ends at an empty line (which lies between the two offsets) or at the first
/// line that is neither a field nor a continuation (then both are equal).
/// None when `buf` does not say yet and more input may follow (`eof` false).
pub fn header_end(buf: &[u8], eof: bool) -> Option<(usize, usize)> {
    let mut i = 0;
    while i < buf.len() {
        let Some(nl) = memchr(b'\n', &buf[i..]) else {
            return if eof {
                Some((buf.len(), buf.len()))
            } else {
                None
            };
        };
        let line = &buf[i..i + nl + 1];
        if line == b"\n" || line == b"\r\n" {
            return Some((i, i + line.len()));
        }
        let cont = is_wsp(line[0]) && i > 0;
        if !cont && field_name(line).is_none() {
            return Some((i, i));
        }
        i += nl + 1;
    }
    if eof {
        Some((buf.len(), buf.len()))
    } else {
        None
    }
}

/// One header field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field<'a> {
    /// The name as written (compare with `eq_ignore_ascii_case`).
    pub name: &'a [u8],
    /// Everything after the colon, folding line ends kept, final LF removed.
    pub value: &'a [u8],
    /// The whole field as written, with its final LF.
    pub raw: &'a [u8],
}

/// The fields of a header (as delimited by [`header_end`]). Lines before the
/// first field and stray lines are skipped.
pub fn fields(header: &[u8]) -> Vec<Field<'_>> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < header.len() {
        let start = i;
        let line_end = |j: usize| {
            memchr(b'\n', &header[j..])
                .map(|n| j + n + 1)
                .unwrap_or(header.len())
        };
        i = line_end(i);
        let Some(name) = field_name(&header[start..i]) else {
            continue;
        };
        while i < header.len() && is_wsp(header[i]) {
            i = line_end(i);
        }
        let raw = &header[start..i];
        let colon = memchr(b':', raw).unwrap_or(0);
        let mut value = &raw[colon + 1..];
        if let Some(v) = value.strip_suffix(b"\n") {
            value = v.strip_suffix(b"\r").unwrap_or(v);
        }
        out.push(Field { name, value, raw });
    }
    out
}

/// A field value unfolded: line ends removed (the blanks after them kept),
/// then leading and trailing blanks removed.
pub fn unfold(value: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(value.len());
    for &c in value {
        if c == b'\n' {
            if v.last() == Some(&b'\r') {
                v.pop();
            }
            continue;
        }
        v.push(c);
    }
    let s = v.iter().position(|&c| !is_wsp(c)).unwrap_or(v.len());
    let e = v
        .iter()
        .rposition(|&c| !is_wsp(c))
        .map(|p| p + 1)
        .unwrap_or(s);
    v[s..e.max(s)].to_vec()
}

/// Values of the fields named `name` (any case), unfolded; with `all`
/// every occurrence, else the first only.
pub fn values(header: &[u8], name: &[u8], all: bool) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for f in fields(header) {
        if f.name.eq_ignore_ascii_case(name) {
            out.push(unfold(f.value));
            if !all {
                break;
            }
        }
    }
    out
}

/// Reads a message's header from `r` (stops at its end, reads no further
/// than [`MAX_HEADER`] bytes past a chunk); a leading mbox `From ` line is
/// skipped. Returns the header bytes.
pub fn read_header<R: std::io::Read>(mut r: R) -> std::io::Result<Vec<u8>> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let mut eof = false;
    loop {
        let end = eof || buf.len() >= MAX_HEADER;
        // Where the header starts: past a leading mbox "From " line.
        let skip = if buf.starts_with(b"From ") {
            match memchr(b'\n', &buf) {
                Some(n) => Some(n + 1),
                None if end => Some(buf.len()),
                None => None,
            }
        } else if !end && b"From ".starts_with(&buf) {
            None
        } else {
            Some(0)
        };
        if let Some(skip) = skip {
            if let Some((h, _)) = header_end(&buf[skip..], end) {
                return Ok(buf[skip..skip + h].to_vec());
            }
        }
        match r.read(&mut chunk) {
            Ok(0) => eof = true,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

// ---- structured values: tokens, parameters (RFC 2045, 2231), addresses ----

/// A parameter list: (lower-cased name, value as written).
pub type Params = Vec<(Vec<u8>, Vec<u8>)>;

/// Length of an encoded word `=?cs?e?text?=` at the start of `b`.
fn encoded_word_len(b: &[u8]) -> Option<usize> {
    let r = b.strip_prefix(b"=?")?;
    let q1 = memchr(b'?', r)?;
    if q1 == 0 || r[..q1].iter().any(|&c| c <= b' ' || c >= 127) {
        return None;
    }
    let r2 = &r[q1 + 1..];
    if r2.len() < 2 || !matches!(r2[0], b'b' | b'B' | b'q' | b'Q') || r2[1] != b'?' {
        return None;
    }
    let t = &r2[2..];
    let mut i = 0;
    while i + 1 < t.len() {
        if t[i] == b'?' {
            return if t[i + 1] == b'=' {
                Some(2 + q1 + 3 + i + 2)
            } else {
                None
            };
        }
        if t[i] <= b' ' || t[i] >= 127 {
            return None;
        }
        i += 1;
    }
    None
}

/// RFC 2045 tspecials (parameters) and RFC 5322 specials (addresses).
const TSPECIALS: &[u8] = b"()<>@,;:\\\"/[]?=";
const SPECIALS: &[u8] = b"()<>@,;:\\\"[]";

/// A tokenizer for structured header values (RFC 822 lexical tokens).
struct Lex<'a> {
    b: &'a [u8],
    i: usize,
    /// Where the last token began.
    start: usize,
    comment: Vec<u8>,
}

#[derive(PartialEq, Debug)]
enum Tok {
    Word(Vec<u8>),
    Quoted(Vec<u8>),
    Special(u8),
}

impl<'a> Lex<'a> {
    fn new(b: &'a [u8]) -> Lex<'a> {
        Lex {
            b,
            i: 0,
            start: 0,
            comment: Vec::new(),
        }
    }

    fn skip_cfws(&mut self) {
        loop {
            while self.i < self.b.len() && matches!(self.b[self.i], b' ' | b'\t' | b'\r' | b'\n') {
                self.i += 1;
            }
            if self.i < self.b.len() && self.b[self.i] == b'(' {
                let mut depth = 0;
                let mut text = Vec::new();
                while self.i < self.b.len() {
                    let c = self.b[self.i];
                    self.i += 1;
                    match c {
                        b'\\' if self.i < self.b.len() => {
                            text.push(self.b[self.i]);
                            self.i += 1;
                        }
                        b'(' => {
                            if depth > 0 {
                                text.push(c);
                            }
                            depth += 1;
                        }
                        b')' => {
                            depth -= 1;
                            if depth == 0 {
                                break;
                            }
                            text.push(c);
                        }
                        _ => text.push(c),
                    }
                }
                self.comment = text;
                continue;
            }
            return;
        }
    }

    /// Next token; `dots` lets `.` be part of words (addresses).
    fn next(&mut self, tspecials: bool) -> Option<Tok> {
        loop {
            self.skip_cfws();
            self.start = self.i;
            let c = *self.b.get(self.i)?;
            // An encoded word is one word even when it holds specials.
            if c == b'=' && !tspecials {
                if let Some(n) = encoded_word_len(&self.b[self.i..]) {
                    self.i += n;
                    return Some(Tok::Word(self.b[self.start..self.i].to_vec()));
                }
            }
            if c == b'"' {
                self.i += 1;
                let mut v = Vec::new();
                while self.i < self.b.len() {
                    let c = self.b[self.i];
                    self.i += 1;
                    match c {
                        b'"' => break,
                        b'\\' if self.i < self.b.len() => {
                            v.push(self.b[self.i]);
                            self.i += 1;
                        }
                        b'\r' | b'\n' => {}
                        _ => v.push(c),
                    }
                }
                return Some(Tok::Quoted(v));
            }
            let special = |c: u8| if tspecials { TSPECIALS } else { SPECIALS }.contains(&c);
            if special(c) {
                self.i += 1;
                if c == b'[' && !tspecials {
                    // domain literal
                    let s = self.i - 1;
                    while self.i < self.b.len() && self.b[self.i] != b']' {
                        self.i += 1;
                    }
                    self.i = (self.i + 1).min(self.b.len());
                    return Some(Tok::Word(self.b[s..self.i].to_vec()));
                }
                return Some(Tok::Special(c));
            }
            let s = self.i;
            while self.i < self.b.len() {
                let c = self.b[self.i];
                if c <= 0x20 || c == 0x7f || special(c) {
                    break;
                }
                self.i += 1;
            }
            if s == self.i {
                // A control byte: skip it as if it were a blank.
                self.i += 1;
                continue;
            }
            return Some(Tok::Word(self.b[s..self.i].to_vec()));
        }
    }
}

/// `type/subtype; name=value; ...` (lower-cased type, subtype and names).
pub fn content_type(v: &[u8]) -> (Vec<u8>, Vec<u8>, Params) {
    let mut lx = Lex::new(v);
    let t = match lx.next(true) {
        Some(Tok::Word(w)) => w.to_ascii_lowercase(),
        _ => Vec::new(),
    };
    let mut st = Vec::new();
    if lx.next(true) == Some(Tok::Special(b'/')) {
        if let Some(Tok::Word(w)) = lx.next(true) {
            st = w.to_ascii_lowercase();
        }
    }
    (t, st, params(&mut lx))
}

/// `value; name=value; ...` as used by Content-Disposition.
pub fn disposition(v: &[u8]) -> (Vec<u8>, Params) {
    let mut lx = Lex::new(v);
    let t = match lx.next(true) {
        Some(Tok::Word(w)) => w.to_ascii_lowercase(),
        _ => Vec::new(),
    };
    (t, params(&mut lx))
}

fn params(lx: &mut Lex) -> Params {
    let mut out = Vec::new();
    loop {
        match lx.next(true) {
            None => break,
            Some(Tok::Special(b';')) => {}
            _ => continue,
        }
        let name = match lx.next(true) {
            Some(Tok::Word(w)) => w.to_ascii_lowercase(),
            None => break,
            _ => continue,
        };
        if lx.next(true) != Some(Tok::Special(b'=')) {
            continue;
        }
        let mut val = match lx.next(true) {
            Some(Tok::Word(w)) => w,
            Some(Tok::Quoted(q)) => q,
            _ => continue,
        };
        // Tolerate unquoted values with tspecials (`name=a/b.c`): glue on.
        while lx.i < lx.b.len() && !matches!(lx.b[lx.i], b';' | b' ' | b'\t' | b'\r' | b'\n') {
            val.push(lx.b[lx.i]);
            lx.i += 1;
        }
        if out.len() < 100 {
            out.push((name, val));
        }
    }
    out
}

/// A parameter value with RFC 2231 continuations and charset decoding and
/// RFC 2047 encoded words undone (best effort, bytes in UTF-8 when known).
pub fn param(ps: &Params, name: &[u8]) -> Option<Vec<u8>> {
    let name = name.to_ascii_lowercase();
    if let Some((_, v)) = ps.iter().find(|(n, _)| *n == name) {
        return Some(decode(v));
    }
    let mut star = name.clone();
    star.push(b'*');
    if let Some((_, v)) = ps.iter().find(|(n, _)| *n == star) {
        return Some(decode_2231(v, true));
    }
    let mut pieces: Vec<(u64, bool, &[u8])> = Vec::new();
    for (n, v) in ps {
        if let Some(rest) = n.strip_prefix(&star[..]) {
            let (num, enc) = match rest.strip_suffix(b"*") {
                Some(r) => (r, true),
                None => (rest, false),
            };
            if let Some(k) = crate::parse::number(num) {
                pieces.push((k, enc, v));
            }
        }
    }
    if pieces.is_empty() {
        return None;
    }
    pieces.sort_by_key(|p| p.0);
    let mut raw = Vec::new();
    let mut charset = None;
    for (k, enc, v) in pieces {
        if enc {
            let mut v = v;
            if k == 0 {
                let mut it = v.splitn(3, |&c| c == b'\'');
                let cs = it.next().unwrap_or(b"");
                let _lang = it.next();
                if let Some(rest) = it.next() {
                    charset = Some(cs.to_ascii_lowercase());
                    v = rest;
                }
            }
            raw.extend_from_slice(&pct_decode(v));
        } else {
            raw.extend_from_slice(v);
        }
    }
    Some(to_utf8(&raw, charset.as_deref().unwrap_or(b"utf-8")))
}

/// RFC 2231 continuations (`name*0*`, `name*1*`, `name*2` ...) joined
/// into one parameter, as Dovecot shows them in BODYSTRUCTURE: `name*`
/// when a piece is encoded, else `name`, at the place of the first piece,
/// the pieces' values as written one after the other in number order.
pub fn joined_continuations(ps: &[(Vec<u8>, Vec<u8>)]) -> Params {
    let piece = |n: &[u8]| -> Option<(Vec<u8>, u64, bool)> {
        let star = memchr::memchr(b'*', n)?;
        let rest = &n[star + 1..];
        let (num, enc) = match rest.strip_suffix(b"*") {
            Some(r) => (r, true),
            None => (rest, false),
        };
        Some((n[..star].to_vec(), crate::parse::number(num)?, enc))
    };
    let mut out: Params = Vec::new();
    let mut done: Vec<Vec<u8>> = Vec::new();
    for (n, v) in ps {
        let Some((base, _, _)) = piece(n) else {
            out.push((n.clone(), v.clone()));
            continue;
        };
        if done.contains(&base) {
            continue;
        }
        let mut parts: Vec<(u64, bool, &[u8])> = ps
            .iter()
            .filter_map(|(n2, v2)| {
                piece(n2)
                    .filter(|(b, _, _)| *b == base)
                    .map(|(_, k, e)| (k, e, &v2[..]))
            })
            .collect();
        parts.sort_by_key(|p| p.0);
        let mut name = base.clone();
        if parts.iter().any(|p| p.1) {
            name.push(b'*');
        }
        out.push((
            name,
            parts.iter().flat_map(|p| p.2.iter().copied()).collect(),
        ));
        done.push(base);
    }
    out
}

fn pct_decode(v: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(v.len());
    let mut i = 0;
    while i < v.len() {
        if v[i] == b'%' && i + 2 < v.len() {
            if let (Some(a), Some(b)) = (hex(v[i + 1]), hex(v[i + 2])) {
                out.push(a * 16 + b);
                i += 3;
                continue;
            }
        }
        out.push(v[i]);
        i += 1;
    }
    out
}

fn decode_2231(v: &[u8], with_charset: bool) -> Vec<u8> {
    if with_charset {
        let mut it = v.splitn(3, |&c| c == b'\'');
        let cs = it.next().unwrap_or(b"");
        let _ = it.next();
        if let Some(rest) = it.next() {
            return to_utf8(&pct_decode(rest), &cs.to_ascii_lowercase());
        }
    }
    pct_decode(v)
}

/// Text in `charset` as UTF-8: UTF-8 and ASCII pass, ISO-8859-1 is
/// mapped here, every other charset goes through the C library's iconv
/// ([`crate::iconv`]); a charset it does not know passes unchanged.
pub fn to_utf8(b: &[u8], charset: &[u8]) -> Vec<u8> {
    let cs = charset.to_ascii_lowercase();
    // ASCII text is itself, except in charsets that are not ASCII
    // supersets (ISO-2022-*, UTF-7, HZ escape; UTF-16/32 have NULs).
    let escapes = cs.starts_with(b"iso-2022") || cs.starts_with(b"utf-7") || cs.starts_with(b"hz");
    if matches!(&cs[..], b"utf-8" | b"utf8" | b"us-ascii" | b"")
        || (!escapes && b.is_ascii() && !b.contains(&0))
    {
        return b.to_vec();
    }
    if matches!(&cs[..], b"iso-8859-1" | b"latin1" | b"iso_8859-1") {
        let mut out = Vec::with_capacity(b.len() + 8);
        for &c in b {
            if c < 0x80 {
                out.push(c);
            } else {
                let mut buf = [0u8; 4];
                out.extend_from_slice((c as char).encode_utf8(&mut buf).as_bytes());
            }
        }
        return out;
    }
    crate::sys::iconv::to_utf8(b, &cs).unwrap_or_else(|| b.to_vec())
}

/// One entry of an address list.
#[derive(Clone, Debug, PartialEq)]
pub enum Address {
    Mailbox {
        name: Option<Vec<u8>>,
        route: Option<Vec<u8>>,
        mailbox: Vec<u8>,
        host: Vec<u8>,
        /// Where the addr-spec is in the value (start, end): mail-inject
        /// adds `@domain` at its end.
        spec: (usize, usize),
        /// The addr-spec has an `@` (else `host` is MISSING_DOMAIN).
        has_at: bool,
    },
    GroupStart(Vec<u8>),
    GroupEnd,
}

/// `(start, end)` grown to take a token that ends at `e`.
fn grow(span: &mut Option<(usize, usize)>, s: usize, e: usize) {
    *span = Some((span.map(|x| x.0).unwrap_or(s), e));
}

/// Parses an address list (RFC 5322 with groups, comments and obsolete
/// routes and spacing): the one address parser, for ENVELOPE, SEARCH,
/// SORT and mail-inject.
pub fn address_list(v: &[u8]) -> Vec<Address> {
    let mut out = Vec::new();
    let mut lx = Lex::new(v);
    let mut words: Vec<(Vec<u8>, bool)> = Vec::new();
    let mut span: Option<(usize, usize)> = None;
    let mut in_group = false;
    let mut angle = false;
    lx.comment.clear();
    let flush = |words: &mut Vec<(Vec<u8>, bool)>,
                 span: &mut Option<(usize, usize)>,
                 comment: &mut Vec<u8>,
                 out: &mut Vec<Address>| {
        let spec = span.take().unwrap_or((0, 0));
        if words.is_empty() {
            comment.clear();
            return;
        }
        let at = words.iter().position(|(w, q)| !q && w == b"@");
        let (mb, host) = match at {
            Some(i) => (concat(&words[..i]), concat(&words[i + 1..])),
            None => (concat(words), b"MISSING_DOMAIN".to_vec()),
        };
        let name = if comment.is_empty() {
            None
        } else {
            Some(std::mem::take(comment))
        };
        out.push(Address::Mailbox {
            name,
            route: None,
            mailbox: mb,
            host,
            spec,
            has_at: at.is_some(),
        });
        words.clear();
        comment.clear();
    };
    while let Some(t) = lx.next(false) {
        if out.len() > 2000 {
            break;
        }
        let (ts, te) = (lx.start, lx.i);
        // Words after an angle address, up to the next comma, are junk
        // (`Joe <joe@x> trailing`): not an address of their own.
        if angle && matches!(t, Tok::Word(_) | Tok::Quoted(_) | Tok::Special(b'@')) {
            continue;
        }
        angle = matches!(t, Tok::Special(b'<'));
        match t {
            Tok::Word(w) => {
                words.push((w, false));
                grow(&mut span, ts, te);
            }
            Tok::Quoted(q) => {
                words.push((q, true));
                grow(&mut span, ts, te);
            }
            Tok::Special(b'@') => {
                words.push((b"@".to_vec(), false));
                grow(&mut span, ts, te);
            }
            Tok::Special(b'<') => {
                let name = if words.is_empty() {
                    None
                } else {
                    Some(
                        words
                            .iter()
                            .map(|(w, _)| w.clone())
                            .collect::<Vec<_>>()
                            .join(&b' '),
                    )
                };
                words.clear();
                span = None;
                let mut inner: Vec<(Vec<u8>, bool)> = Vec::new();
                let mut ispan: Option<(usize, usize)> = None;
                let mut close = te;
                let mut route = None;
                loop {
                    let t = lx.next(false);
                    let (s, e) = (lx.start, lx.i);
                    if !matches!(t, Some(Tok::Special(b':' | b'>')) | None) {
                        grow(&mut ispan, s, e);
                    }
                    match t {
                        None => break,
                        Some(Tok::Special(b'>')) => {
                            close = s;
                            break;
                        }
                        Some(Tok::Special(b':')) => {
                            route = Some(concat(&inner));
                            inner.clear();
                            ispan = None;
                        }
                        Some(Tok::Word(w)) => inner.push((w, false)),
                        Some(Tok::Quoted(q)) => inner.push((q, true)),
                        Some(Tok::Special(c)) => inner.push((vec![c], false)),
                    }
                }
                let at = inner.iter().rposition(|(w, q)| !q && w == b"@");
                let (mb, host) = match at {
                    Some(i) => (concat(&inner[..i]), concat(&inner[i + 1..])),
                    None => (concat(&inner), Vec::new()),
                };
                let spec = ispan.unwrap_or((close, close));
                if mb.is_empty() && host.is_empty() && route.is_none() {
                    // `<>`: the null address
                    out.push(Address::Mailbox {
                        name,
                        route: None,
                        mailbox: Vec::new(),
                        host: Vec::new(),
                        spec,
                        has_at: false,
                    });
                } else {
                    out.push(Address::Mailbox {
                        name,
                        route,
                        mailbox: mb,
                        host,
                        spec,
                        has_at: at.is_some(),
                    });
                }
                lx.comment.clear();
            }
            Tok::Special(b':') if !in_group => {
                let name = words
                    .iter()
                    .map(|(w, _)| w.clone())
                    .collect::<Vec<_>>()
                    .join(&b' ');
                words.clear();
                span = None;
                out.push(Address::GroupStart(name));
                in_group = true;
                lx.comment.clear();
            }
            Tok::Special(b';') if in_group => {
                flush(&mut words, &mut span, &mut lx.comment, &mut out);
                out.push(Address::GroupEnd);
                in_group = false;
            }
            Tok::Special(b',') => flush(&mut words, &mut span, &mut lx.comment, &mut out),
            Tok::Special(_) => {}
        }
    }
    flush(&mut words, &mut span, &mut lx.comment, &mut out);
    if in_group {
        out.push(Address::GroupEnd);
    }
    out
}

/// One mailbox of an address list as mail-inject uses it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Addr {
    /// The display name (quoted strings unquoted, encoded words kept), or
    /// the text of a comment after a bare address.
    pub name: Vec<u8>,
    /// The addr-spec as written, without blanks, comments or route.
    pub addr: Vec<u8>,
    /// Offset in the value right after the addr-spec (where `@domain`
    /// goes when the address has none).
    pub end: usize,
    /// Whether the addr-spec has an `@` outside quotes.
    pub has_domain: bool,
}

/// The mailboxes of an address list (groups give their members; `<>` an
/// empty address), read by [`address_list`].
pub fn addresses(v: &[u8]) -> Vec<Addr> {
    address_list(v)
        .into_iter()
        .filter_map(|a| match a {
            Address::Mailbox {
                name,
                spec: (s, e),
                has_at,
                ..
            } => Some(Addr {
                name: name.unwrap_or_default(),
                addr: compact(&v[s.min(e)..e]),
                end: e,
                has_domain: has_at,
            }),
            _ => None,
        })
        .collect()
}

/// An addr-spec as written without blanks and comments (outside quotes).
fn compact(b: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(b.len());
    let (mut quoted, mut esc, mut depth) = (false, false, 0usize);
    for &c in b {
        if esc {
            esc = false;
            if depth == 0 {
                out.push(c);
            }
            continue;
        }
        match c {
            b'\\' if quoted || depth > 0 => {
                esc = true;
                if depth == 0 {
                    out.push(c);
                }
                continue;
            }
            b'"' if depth == 0 => quoted = !quoted,
            b'(' if !quoted => {
                depth += 1;
                continue;
            }
            b')' if !quoted && depth > 0 => {
                depth -= 1;
                continue;
            }
            b' ' | b'\t' | b'\r' | b'\n' if !quoted => continue,
            _ => {}
        }
        if depth == 0 {
            out.push(c);
        }
    }
    out
}

fn concat(w: &[(Vec<u8>, bool)]) -> Vec<u8> {
    let mut v = Vec::new();
    for (x, _) in w {
        v.extend_from_slice(x);
    }
    v
}

/// An addr-spec as it goes into an envelope: quoted parts unquoted.
pub fn envelope_form(addr: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(addr.len());
    let mut inq = false;
    let mut esc = false;
    for &c in addr {
        if esc {
            out.push(c);
            esc = false;
        } else if inq && c == b'\\' {
            esc = true;
        } else if c == b'"' {
            inq = !inq;
        } else {
            out.push(c);
        }
    }
    out
}

/// `value` with `@domain` added after every address that has no domain.
pub fn qualify(value: &[u8], domain: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(value.len() + 32);
    let mut at = 0;
    for a in addresses(value) {
        if a.has_domain || a.addr.is_empty() || a.end < at || a.end > value.len() {
            continue;
        }
        out.extend_from_slice(&value[at..a.end]);
        out.push(b'@');
        out.extend_from_slice(domain);
        at = a.end;
    }
    out.extend_from_slice(&value[at..]);
    out
}

// ---- RFC 2047 ----

pub(crate) fn hex(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Base64 decoding that skips bytes outside the alphabet and stops at `=`.
pub fn base64_decode(t: &[u8]) -> Vec<u8> {
    crate::base64::decode_lenient(t)
}

/// Base64 encoding with padding.
pub fn base64_encode(t: &[u8]) -> Vec<u8> {
    crate::base64::encode(t)
}

fn q_decode(t: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(t.len());
    let mut i = 0;
    while i < t.len() {
        match t[i] {
            b'_' => out.push(b' '),
            b'=' if i + 2 < t.len() && hex(t[i + 1]).is_some() && hex(t[i + 2]).is_some() => {
                out.push(hex(t[i + 1]).unwrap_or(0) << 4 | hex(t[i + 2]).unwrap_or(0));
                i += 3;
                continue;
            }
            c => out.push(c),
        }
        i += 1;
    }
    out
}

/// Decodes the encoded word `w` (whole `=?...?=`) to UTF-8, or None when its
/// charset is one the C library's iconv does not know.
fn decode_word(w: &[u8]) -> Option<Vec<u8>> {
    let r = &w[2..w.len() - 2];
    let q1 = memchr(b'?', r)?;
    let mut cs = r[..q1].to_ascii_lowercase();
    if let Some(star) = memchr(b'*', &cs) {
        cs.truncate(star);
    }
    let enc = r[q1 + 1];
    let text = &r[q1 + 3..];
    let raw = if enc == b'b' || enc == b'B' {
        base64_decode(text)
    } else {
        q_decode(text)
    };
    let utf8 = match &cs[..] {
        b"utf-8" | b"utf8" | b"us-ascii" | b"ascii" => raw,
        b"iso-8859-1" | b"iso8859-1" | b"latin1" | b"latin-1" | b"l1" => {
            crate::mime::to_utf8(&raw, b"iso-8859-1")
        }
        _ => crate::sys::iconv::to_utf8(&raw, &cs)?,
    };
    // A decoded value stays one line: control bytes become '?'.
    Some(
        utf8.into_iter()
            .map(|c| {
                if c < 0x20 && c != b'\t' || c == 0x7f {
                    b'?'
                } else {
                    c
                }
            })
            .collect(),
    )
}

/// Decodes RFC 2047 encoded words in `v` to UTF-8. Blanks between two
/// adjacent encoded words go; words in other charsets stay as written.
pub fn decode(v: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(v.len());
    let mut i = 0;
    while i < v.len() {
        if v[i] == b'=' {
            if let Some(n) = encoded_word_len(&v[i..]) {
                if let Some(d) = decode_word(&v[i..i + n]) {
                    out.extend_from_slice(&d);
                    i += n;
                    // Skip blanks when another decodable word follows.
                    let mut j = i;
                    while j < v.len() && matches!(v[j], b' ' | b'\t' | b'\r' | b'\n') {
                        j += 1;
                    }
                    if j > i {
                        if let Some(m) = encoded_word_len(&v[j..]) {
                            if decode_word(&v[j..j + m]).is_some() {
                                i = j;
                            }
                        }
                    }
                    continue;
                }
            }
        }
        out.push(v[i]);
        i += 1;
    }
    out
}

/// `text` as a display name: as is when it is all atoms, a quoted string
/// when it has specials, an encoded word (UTF-8, B) when it has 8-bit bytes.
pub fn phrase(text: &[u8]) -> Vec<u8> {
    if text.iter().any(|&c| c >= 0x80) {
        let mut v = b"=?utf-8?b?".to_vec();
        v.extend_from_slice(&base64_encode(text));
        v.extend_from_slice(b"?=");
        return v;
    }
    if text
        .iter()
        .all(|&c| c.is_ascii_alphanumeric() || b" !#$%&'*+-/=?^_`{|}~".contains(&c))
    {
        return text.to_vec();
    }
    let mut v = vec![b'"'];
    for &c in text {
        if c == b'"' || c == b'\\' {
            v.push(b'\\');
        }
        v.push(c);
    }
    v.push(b'"');
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hops_in_any_chunks() {
        let m = b"Received: a\nX-Received: b\nDELIVERED-TO: c\n received: folded\nReceived:\nSubject: s\n\nReceived: body\n";
        for cut in 1..m.len() {
            let mut h = Hops::default();
            for c in m.chunks(cut) {
                h.feed(c);
            }
            assert_eq!(h.count, 3, "cut {}", cut);
        }
        let mut h = Hops::default();
        h.feed(&b"Received: x\n".repeat(100));
        assert!(!h.looping());
        h.feed(b"Delivered-To: y\n");
        assert!(h.looping());
    }

    fn addrs(v: &[u8]) -> Vec<String> {
        addresses(v)
            .into_iter()
            .map(|a| String::from_utf8_lossy(&a.addr).into_owned())
            .collect()
    }

    #[test]
    fn header_ends() {
        assert_eq!(header_end(b"A: b\n\nbody", true), Some((5, 6)));
        assert_eq!(header_end(b"A: b\r\n\r\nbody", true), Some((6, 8)));
        assert_eq!(header_end(b"A: b\n c\nnot a field\n", true), Some((8, 8)));
        assert_eq!(header_end(b"A: b\n c", false), None);
        assert_eq!(header_end(b"A: b\n c", true), Some((7, 7)));
        assert_eq!(header_end(b" leading\n", true), Some((0, 0)));
        assert_eq!(header_end(b"", true), Some((0, 0)));
        assert_eq!(header_end(b"\n", true), Some((0, 1)));
    }

    #[test]
    fn fields_and_unfolding() {
        let h = b"Subject: one\n two\nTo : a@b\r\nX-Empty:\n";
        let f = fields(h);
        assert_eq!(f.len(), 3);
        assert_eq!(f[0].name, b"Subject");
        assert_eq!(unfold(f[0].value), b"one two");
        assert_eq!(f[1].name, b"To");
        assert_eq!(f[1].value, b" a@b");
        assert_eq!(f[2].value, b"");
        assert_eq!(
            values(b"a: 1\nA: 2\nb: 3\n", b"A", true),
            vec![b"1".to_vec(), b"2".to_vec()]
        );
        assert_eq!(values(b"a: 1\nA: 2\n", b"a", false), vec![b"1".to_vec()]);
    }

    #[test]
    fn tricky_address_lists() {
        assert_eq!(addrs(b"a@b"), ["a@b"]);
        assert_eq!(
            addrs(b"\"Doe, John\" <j@d.example>, x@y"),
            ["j@d.example", "x@y"]
        );
        assert_eq!(addrs(b"list: a@b, c@d;, e@f"), ["a@b", "c@d", "e@f"]);
        assert_eq!(addrs(b"undisclosed-recipients: ;"), Vec::<String>::new());
        assert_eq!(addrs(b"a@b (Doe, John), c@d"), ["a@b", "c@d"]);
        assert_eq!(addrs(b"(c) John (x) <j@d> (y)"), ["j@d"]);
        assert_eq!(
            addrs(b"=?utf-8?q?Doe,_J=C3=B6rg?= <j@d>, k@l"),
            ["j@d", "k@l"]
        );
        assert_eq!(addrs(b"Joe\n\t<joe@x>,\n bob@y"), ["joe@x", "bob@y"]);
        assert_eq!(addrs(b"<@r1,@r2:a@b>"), ["a@b"]);
        assert_eq!(addrs(b"<>"), [""]);
        assert_eq!(
            addrs(b"john . doe @ example . com"),
            ["john.doe@example.com"]
        );
        assert_eq!(addrs(b"\"a b\"@c"), ["\"a b\"@c"]);
        assert_eq!(addrs(b"x@[127.0.0.1]"), ["x@[127.0.0.1]"]);
        let a = addresses(b"\"Doe, J\" <j@d>");
        assert_eq!(a[0].name, b"Doe, J");
        assert_eq!(addresses(b"a@b (Al)")[0].name, b"Al");
        assert_eq!(envelope_form(b"\"a b\\\"\"@c"), b"a b\"@c");
    }

    #[test]
    fn garbage_does_not_panic() {
        for g in [
            &b"<"[..],
            b">",
            b"(",
            b"\"",
            b"[",
            b";;;::,,<<>>",
            b"=?",
            b"=?x?q?",
            b"\\",
            b"a\\",
            b"((a)",
            b"\xff\x00",
        ] {
            let _ = addresses(g);
            let _ = qualify(g, b"d");
            let _ = decode(g);
            let _ = fields(g);
            let _ = header_end(g, true);
        }
    }

    #[test]
    fn random_garbage_does_not_panic() {
        const ALPHA: &[u8] = b"()<>[]:;@,.\"\\=?_ \t\r\naqBQ\xc3\xff\x00From ";
        let mut x: u64 = 0x9e3779b97f4a7c15;
        for _ in 0..20000 {
            let mut v = Vec::new();
            for _ in 0..(x % 40) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                v.push(ALPHA[(x % ALPHA.len() as u64) as usize]);
            }
            x = x.wrapping_add(1);
            for a in addresses(&v) {
                assert!(a.end <= v.len());
            }
            let _ = qualify(&v, b"d");
            let _ = decode(&v);
            let _ = header_end(&v, x & 1 == 0);
            for f in fields(&v) {
                let _ = unfold(f.value);
            }
            let _ = read_header(&v[..]);
        }
    }

    #[test]
    fn qualifies_bare_addresses_in_place() {
        assert_eq!(
            qualify(b" joe, Bob <bob>, c@d, g: x;", b"ex.org"),
            b" joe@ex.org, Bob <bob@ex.org>, c@d, g: x@ex.org;"
        );
        assert_eq!(
            qualify(b" undisclosed-recipients: ;", b"e"),
            b" undisclosed-recipients: ;"
        );
    }

    #[test]
    fn rfc2047() {
        assert_eq!(decode(b"=?utf-8?q?J=C3=B6rg_M?="), "Jörg M".as_bytes());
        assert_eq!(decode(b"=?ISO-8859-1?Q?J=F6rg?="), "Jörg".as_bytes());
        assert_eq!(
            decode(b"=?utf-8?B?SsO2cmc=?= =?utf-8?b?IQ==?= x"),
            "Jörg! x".as_bytes()
        );
        assert_eq!(decode(b"a =?us-ascii?q?b?= c"), b"a b c");
        assert_eq!(decode(b"=?koi8-r?b?8NLJ?="), "При".as_bytes());
        assert_eq!(decode(b"=?x-unknown?b?8NLJ?="), b"=?x-unknown?b?8NLJ?=");
        assert_eq!(decode(b"=?utf-8?q?a=0Ab?="), b"a?b");
        assert_eq!(decode(b"=?utf-8*en?q?hi?="), b"hi");
        assert_eq!(decode(b"=?bad"), b"=?bad");
        assert_eq!(base64_encode(b"J\xc3\xb6rg"), b"SsO2cmc=");
        assert_eq!(base64_decode(&base64_encode(b"abcde")), b"abcde");
        assert_eq!(decode(&phrase("Jörg".as_bytes())), "Jörg".as_bytes());
        assert_eq!(phrase(b"Doe, John"), b"\"Doe, John\"");
        assert_eq!(phrase(b"John Doe"), b"John Doe");
    }
}

//! RFC 822/2045 message structure: header fields, Content-Type and its
//! parameters (RFC 2231 continuations and charsets), encoded words
//! (RFC 2047), transfer encodings, address lists, and the MIME part tree
//! (multipart nesting, message/rfc822) with limits on depth and parts.
//! Malformed input never fails: every message yields a tree.

/// Deepest nesting followed; deeper parts are treated as opaque data.
pub const MAX_DEPTH: usize = 20;
/// Most parts in one message; the rest are folded into their parent.
pub const MAX_PARTS: usize = 1000;

type Params = Vec<(Vec<u8>, Vec<u8>)>;

/// One MIME entity: byte offsets into the message, and what its header says.
#[derive(Clone, Debug, Default)]
pub struct Part {
    /// Start of the header.
    pub start: usize,
    /// Start of the body (after the blank line).
    pub body: usize,
    /// End of the body.
    pub end: usize,
    /// Lower-case type and subtype (`text`, `plain`).
    pub ctype: Vec<u8>,
    pub subtype: Vec<u8>,
    /// Content-Type parameters, names lower-cased, values raw.
    pub params: Params,
    pub id: Option<Vec<u8>>,
    pub description: Option<Vec<u8>>,
    pub encoding: Option<Vec<u8>>,
    pub md5: Option<Vec<u8>>,
    pub disposition: Option<(Vec<u8>, Params)>,
    pub language: Option<Vec<u8>>,
    pub location: Option<Vec<u8>>,
    /// Children of a multipart; for message/rfc822 the embedded message.
    pub parts: Vec<Part>,
}

impl Part {
    pub fn is_multipart(&self) -> bool {
        self.ctype == b"multipart"
    }
    pub fn is_message(&self) -> bool {
        self.ctype == b"message" && self.subtype == b"rfc822" && !self.parts.is_empty()
    }
    pub fn header<'a>(&self, msg: &'a [u8]) -> &'a [u8] {
        &msg[self.start..self.body]
    }
    pub fn text<'a>(&self, msg: &'a [u8]) -> &'a [u8] {
        &msg[self.body..self.end]
    }
    pub fn param(&self, name: &[u8]) -> Option<Vec<u8>> {
        param(&self.params, name)
    }
}

/// Where the header of `m[start..end]` ends: (header end incl. the blank
/// line, body start).
pub fn header_end(m: &[u8], start: usize, end: usize) -> usize {
    let s = &m[start..end];
    if s.starts_with(b"\r\n") {
        return start + 2;
    }
    if s.starts_with(b"\n") {
        return start + 1;
    }
    let mut from = 0;
    while let Some(i) = memchr::memchr(b'\n', &s[from..]) {
        let j = from + i + 1;
        if s[j..].starts_with(b"\r\n") {
            return start + j + 2;
        }
        if s[j..].starts_with(b"\n") {
            return start + j + 1;
        }
        from = j;
    }
    end
}

/// Header fields in order: (name as written, unfolded value without the
/// leading and trailing blanks), as header.rs reads them (obsolete
/// `Name : value` too, RFC 5322 §4.5). Lines that are not fields are skipped.
pub fn fields(h: &[u8]) -> Vec<(&[u8], Vec<u8>)> {
    crate::header::fields(h)
        .into_iter()
        .map(|f| (f.name, crate::header::unfold(f.value)))
        .collect()
}

/// The first field called `name` (case-insensitive), unfolded.
pub fn field(h: &[u8], name: &[u8]) -> Option<Vec<u8>> {
    fields(h)
        .into_iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
}

/// Header lines (with their continuations) of `h` whose names are (or,
/// with `not`, are not) in `names`, each ending in a line end, then the
/// blank line: always for HEADER.FIELDS, for HEADER.FIELDS.NOT only when
/// the header has one (RFC 3501 §6.4.5; Dovecot's reading).
pub fn select_fields(h: &[u8], names: &[Vec<u8>], not: bool) -> Vec<u8> {
    let mut out = Vec::new();
    let mut keep = false;
    let mut rest = h;
    let mut blank = !not;
    while !rest.is_empty() {
        let e = memchr::memchr(b'\n', rest)
            .map(|i| i + 1)
            .unwrap_or(rest.len());
        let line = &rest[..e];
        rest = &rest[e..];
        if line == b"\r\n" || line == b"\n" {
            blank = true;
            break;
        }
        if line[0] != b' ' && line[0] != b'\t' {
            keep = match memchr::memchr(b':', line) {
                Some(c) => {
                    names
                        .iter()
                        .any(|n| n.eq_ignore_ascii_case(crate::parse::trim(&line[..c])))
                        != not
                }
                None => false,
            };
        }
        if keep {
            out.extend_from_slice(line);
        }
    }
    if !out.is_empty() && out.last() != Some(&b'\n') {
        out.extend_from_slice(b"\r\n");
    }
    if blank {
        out.extend_from_slice(b"\r\n");
    }
    out
}

fn is_tspecial(c: u8) -> bool {
    matches!(
        c,
        b'(' | b')'
            | b'<'
            | b'>'
            | b'@'
            | b','
            | b';'
            | b':'
            | b'\\'
            | b'"'
            | b'/'
            | b'['
            | b']'
            | b'?'
            | b'='
    )
}

/// A tokenizer for structured header values (RFC 822 lexical tokens).
struct Lex<'a> {
    b: &'a [u8],
    i: usize,
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
            let c = *self.b.get(self.i)?;
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
            let special = |c: u8| {
                if tspecials {
                    is_tspecial(c)
                } else {
                    matches!(
                        c,
                        b'(' | b')'
                            | b'<'
                            | b'>'
                            | b'@'
                            | b','
                            | b';'
                            | b':'
                            | b'\\'
                            | b'"'
                            | b'['
                            | b']'
                    )
                }
            };
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
        return Some(decode_words(v));
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

fn hex(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
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
    crate::iconv::to_utf8(b, &cs).unwrap_or_else(|| b.to_vec())
}

/// Undoes RFC 2047 encoded words: header.rs's one decoder.
pub fn decode_words(v: &[u8]) -> Vec<u8> {
    crate::header::decode(v)
}

pub fn qp_decode(v: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(v.len());
    let mut i = 0;
    while i < v.len() {
        let c = v[i];
        if c == b'=' {
            if v[i + 1..].starts_with(b"\r\n") {
                i += 3;
                continue;
            }
            if v[i + 1..].starts_with(b"\n") {
                i += 2;
                continue;
            }
            if i + 2 < v.len() {
                if let (Some(a), Some(b)) = (hex(v[i + 1]), hex(v[i + 2])) {
                    out.push(a * 16 + b);
                    i += 3;
                    continue;
                }
            }
        }
        out.push(c);
        i += 1;
    }
    out
}

pub fn base64_decode(v: &[u8]) -> Vec<u8> {
    crate::base64::decode_lenient(v)
}

pub fn base64_encode(v: &[u8]) -> Vec<u8> {
    crate::base64::encode(v)
}

/// A body decoded from its Content-Transfer-Encoding.
pub fn decode_body(b: &[u8], encoding: Option<&[u8]>) -> Vec<u8> {
    match encoding.map(|e| e.to_ascii_lowercase()) {
        Some(e) if e == b"base64" => base64_decode(b),
        Some(e) if e == b"quoted-printable" => qp_decode(b),
        _ => b.to_vec(),
    }
}

/// Parses a whole message.
///
/// Multipart bodies are read as Dovecot reads them: a line that starts
/// with `--` and a boundary is a delimiter (RFC 2046 §5.1.1: the whole
/// line need not match), the boundaries of every enclosing multipart are
/// looked for at once, innermost first, so a nested multipart that reuses
/// its parent's boundary takes the delimiters until its close delimiter,
/// and a delimiter of an outer multipart ends every part inside it.
pub fn parse(m: &[u8]) -> Part {
    let mut count = 0;
    parse_entity(m, 0, m.len(), false, 0, &mut count, &mut Vec::new()).0
}

/// Which boundary of `stack` (innermost first) the line at `i` is a
/// delimiter of, and whether it is the close delimiter (`--b--`).
fn delimiter(m: &[u8], i: usize, end: usize, stack: &[Vec<u8>]) -> Option<(usize, bool)> {
    let l = m[i..end].strip_prefix(b"--")?;
    let k = stack.iter().rposition(|b| l.starts_with(b))?;
    Some((k, l[stack[k].len()..].starts_with(b"--")))
}

/// The start of the line after the one at `i`.
fn next_line(m: &[u8], i: usize, end: usize) -> usize {
    memchr::memchr(b'\n', &m[i..end]).map_or(end, |n| i + n + 1)
}

/// The first delimiter line of `stack` at or after the line start `i`:
/// where it starts (`end` when there is none) and what it is.
fn next_delimiter(
    m: &[u8],
    mut i: usize,
    end: usize,
    stack: &[Vec<u8>],
) -> (usize, Option<(usize, bool)>) {
    if stack.is_empty() {
        return (end, None);
    }
    while i < end {
        if m[i] == b'-' {
            if let Some(d) = delimiter(m, i, end, stack) {
                return (i, Some(d));
            }
        }
        i = next_line(m, i, end);
    }
    (end, None)
}

/// Where the header at `start` ends (after its blank line): at the end of
/// input or at a delimiter line of `stack`, the header ends without one.
fn header_end_in(m: &[u8], start: usize, end: usize, stack: &[Vec<u8>]) -> usize {
    let mut i = start;
    while i < end {
        let n = next_line(m, i, end);
        if matches!(&m[i..n], b"\n" | b"\r\n") {
            return n;
        }
        if m[i] == b'-' && delimiter(m, i, end, stack).is_some() {
            return i;
        }
        i = n;
    }
    end
}

/// The end of a part's content that stops at the delimiter line at `at`:
/// the line end before the delimiter belongs to the delimiter.
fn before_delimiter(m: &[u8], body: usize, at: usize, end: usize) -> usize {
    let mut e = at;
    if e < end && e > body && m[e - 1] == b'\n' {
        e -= 1;
        if e > body && m[e - 1] == b'\r' {
            e -= 1;
        }
    }
    e
}

/// Parses the entity at `start` inside the multiparts whose boundaries are
/// `stack`: the part, where it stopped (a delimiter line of `stack`, or
/// `end`) and that delimiter.
fn parse_entity(
    m: &[u8],
    start: usize,
    end: usize,
    digest: bool,
    depth: usize,
    count: &mut usize,
    stack: &mut Vec<Vec<u8>>,
) -> (Part, usize, Option<(usize, bool)>) {
    *count += 1;
    let body = header_end_in(m, start, end, stack);
    let mut p = Part {
        start,
        body,
        end,
        ..Default::default()
    };
    let h = &m[start..body];
    for (n, v) in fields(h) {
        let n = n.to_ascii_lowercase();
        match &n[..] {
            // The first valid Content-Type counts, as in Dovecot.
            b"content-type" if p.ctype.is_empty() => {
                let (t, st, ps) = content_type(&v);
                if !t.is_empty() && !st.is_empty() {
                    p.ctype = t;
                    p.subtype = st;
                    p.params = ps;
                }
            }
            b"content-transfer-encoding" => {
                let t = crate::parse::trim(&v);
                let e = t
                    .split(|&c| c == b' ' || c == b';' || c == b'(')
                    .next()
                    .unwrap_or(b"");
                if !e.is_empty() {
                    p.encoding = Some(e.to_ascii_lowercase());
                }
            }
            b"content-id" => p.id = Some(crate::parse::trim(&v).to_vec()),
            b"content-description" => p.description = Some(crate::parse::trim(&v).to_vec()),
            b"content-md5" => p.md5 = Some(crate::parse::trim(&v).to_vec()),
            b"content-disposition" => {
                let (t, ps) = disposition(&v);
                if !t.is_empty() {
                    p.disposition = Some((t, ps));
                }
            }
            b"content-language" => p.language = Some(crate::parse::trim(&v).to_vec()),
            b"content-location" => p.location = Some(crate::parse::trim(&v).to_vec()),
            _ => {}
        }
    }
    if p.ctype == b"text" && !p.params.iter().any(|(n, _)| n == b"charset") {
        p.params.push((b"charset".to_vec(), b"us-ascii".to_vec()));
    }
    if p.ctype.is_empty() {
        if digest {
            p.ctype = b"message".to_vec();
            p.subtype = b"rfc822".to_vec();
        } else {
            p.ctype = b"text".to_vec();
            p.subtype = b"plain".to_vec();
            p.params = vec![(b"charset".to_vec(), b"us-ascii".to_vec())];
        }
    }
    let deep = depth >= MAX_DEPTH || *count >= MAX_PARTS;
    let boundary = p
        .param(b"boundary")
        .filter(|b| !b.is_empty() && b.len() <= 200);
    if p.is_multipart() && deep {
        p.ctype = b"application".to_vec();
        p.subtype = b"octet-stream".to_vec();
    }
    if p.is_multipart() {
        let b = match boundary {
            Some(b) => b,
            None => {
                // Without a boundary a multipart keeps its type and gets
                // one empty part, as in Dovecot.
                let (at, d) = next_delimiter(m, body, end, stack);
                p.end = before_delimiter(m, body, at, end);
                p.parts.push(empty_part(p.end));
                return (p, at, d);
            }
        };
        let dig = p.subtype == b"digest";
        stack.push(b);
        let k = stack.len() - 1;
        let (mut at, mut d) = next_delimiter(m, body, end, stack);
        loop {
            match d {
                Some((j, false)) if j == k => {
                    let cs = next_line(m, at, end);
                    let (c, a2, d2) = parse_entity(m, cs, end, dig, depth + 1, count, stack);
                    p.parts.push(c);
                    (at, d) = (a2, d2);
                }
                Some((j, true)) if j == k => {
                    // The close delimiter; the epilogue runs to a delimiter
                    // of an enclosing multipart.
                    stack.pop();
                    let (a2, d2) = next_delimiter(m, next_line(m, at, end), end, stack);
                    p.end = before_delimiter(m, body, a2, end);
                    (at, d) = (a2, d2);
                    break;
                }
                _ => {
                    // An enclosing multipart's delimiter, or the end.
                    stack.pop();
                    p.end = before_delimiter(m, body, at, end);
                    break;
                }
            }
        }
        match p.parts.last() {
            // An empty last part may sit on the line end before the
            // delimiter that ends us: keep it inside.
            Some(c) => p.end = p.end.max(c.end),
            // No delimiter found: one empty text part keeps the structure
            // valid.
            None => p.parts.push(empty_part(p.end)),
        }
        return (p, at, d);
    }
    let enc = p.encoding.as_deref().unwrap_or(b"7bit");
    if p.ctype == b"message"
        && p.subtype == b"rfc822"
        && (deep || !matches!(enc, b"7bit" | b"8bit" | b"binary"))
    {
        p.ctype = b"application".to_vec();
        p.subtype = b"octet-stream".to_vec();
    }
    if p.ctype == b"message" && p.subtype == b"rfc822" {
        let (c, at, d) = parse_entity(m, body, end, false, depth + 1, count, stack);
        p.end = c.end;
        p.parts.push(c);
        return (p, at, d);
    }
    let (at, d) = next_delimiter(m, body, end, stack);
    p.end = before_delimiter(m, body, at, end);
    (p, at, d)
}

/// An empty text/plain part at `at`.
fn empty_part(at: usize) -> Part {
    Part {
        start: at,
        body: at,
        end: at,
        ctype: b"text".to_vec(),
        subtype: b"plain".to_vec(),
        params: vec![(b"charset".to_vec(), b"us-ascii".to_vec())],
        ..Default::default()
    }
}

/// One entry of an address list.
#[derive(Clone, Debug, PartialEq)]
pub enum Addr {
    Mailbox {
        name: Option<Vec<u8>>,
        route: Option<Vec<u8>>,
        mailbox: Vec<u8>,
        host: Vec<u8>,
    },
    GroupStart(Vec<u8>),
    GroupEnd,
}

/// Parses an address list (RFC 5322 with groups and obsolete routes).
pub fn addresses(v: &[u8]) -> Vec<Addr> {
    let mut out = Vec::new();
    let mut lx = Lex::new(v);
    let mut words: Vec<(Vec<u8>, bool)> = Vec::new();
    let mut in_group = false;
    lx.comment.clear();
    let flush = |words: &mut Vec<(Vec<u8>, bool)>, comment: &mut Vec<u8>, out: &mut Vec<Addr>| {
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
        out.push(Addr::Mailbox {
            name,
            route: None,
            mailbox: mb,
            host,
        });
        words.clear();
        comment.clear();
    };
    while let Some(t) = lx.next(false) {
        if out.len() > 2000 {
            break;
        }
        match t {
            Tok::Word(w) => words.push((w, false)),
            Tok::Quoted(q) => words.push((q, true)),
            Tok::Special(b'@') => words.push((b"@".to_vec(), false)),
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
                let mut inner: Vec<(Vec<u8>, bool)> = Vec::new();
                let mut route = None;
                loop {
                    match lx.next(false) {
                        None | Some(Tok::Special(b'>')) => break,
                        Some(Tok::Special(b':')) => {
                            route = Some(concat(&inner));
                            inner.clear();
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
                if mb.is_empty() && host.is_empty() && route.is_none() {
                    // `<>`: the null address
                    out.push(Addr::Mailbox {
                        name,
                        route: None,
                        mailbox: Vec::new(),
                        host: Vec::new(),
                    });
                } else {
                    out.push(Addr::Mailbox {
                        name,
                        route,
                        mailbox: mb,
                        host,
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
                out.push(Addr::GroupStart(name));
                in_group = true;
                lx.comment.clear();
            }
            Tok::Special(b';') if in_group => {
                flush(&mut words, &mut lx.comment, &mut out);
                out.push(Addr::GroupEnd);
                in_group = false;
            }
            Tok::Special(b',') => flush(&mut words, &mut lx.comment, &mut out),
            Tok::Special(_) => {}
        }
    }
    flush(&mut words, &mut lx.comment, &mut out);
    if in_group {
        out.push(Addr::GroupEnd);
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

/// The date of an RFC 5322 `Date:` value: (year, month, day), ignoring
/// the time and zone. None when it cannot be read.
pub fn date_ymd(v: &[u8]) -> Option<(i32, u32, u32)> {
    let words: Vec<&[u8]> = v
        .split(|&c| c == b' ' || c == b',' || c == b'\t')
        .filter(|w| !w.is_empty())
        .collect();
    let mut i = 0;
    if words
        .first()
        .map(|w| w[0].is_ascii_alphabetic())
        .unwrap_or(false)
    {
        i = 1;
    }
    let day = crate::parse::number(words.get(i)?)? as u32;
    let mon = crate::imap::parse::month(words.get(i + 1)?)?;
    let mut y = crate::parse::number(words.get(i + 2)?)? as i32;
    if y < 50 {
        y += 2000;
    } else if y < 1000 {
        y += 1900;
    }
    if !(1..=31).contains(&day) {
        return None;
    }
    Some((y, mon, day))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types() {
        let (t, s, p) = content_type(b"Multipart/Mixed; boundary=\"a b\"; (c) charset=utf-8");
        assert_eq!(
            (t.as_slice(), s.as_slice()),
            (&b"multipart"[..], &b"mixed"[..])
        );
        assert_eq!(param(&p, b"boundary").unwrap(), b"a b");
        assert_eq!(param(&p, b"charset").unwrap(), b"utf-8");
    }

    #[test]
    fn rfc2231_and_2047() {
        let (_, p) = disposition(b"attachment; filename*0*=utf-8''%C3%BC; filename*1=.txt");
        assert_eq!(param(&p, b"filename").unwrap(), "ü.txt".as_bytes());
        let (_, p) = disposition(b"attachment; filename*=iso-8859-1'en'%FC");
        assert_eq!(param(&p, b"filename").unwrap(), "ü".as_bytes());
        assert_eq!(
            decode_words(b"=?utf-8?q?caf=C3=A9?= =?UTF-8?B?w7w=?= x"),
            "caféü x".as_bytes()
        );
        assert_eq!(decode_words(b"=?iso-8859-1?q?a_=FC?="), "a ü".as_bytes());
        assert_eq!(decode_words(b"=?broken"), b"=?broken");
    }

    #[test]
    fn nested_multipart() {
        let m = b"Content-Type: multipart/mixed; boundary=X\r\n\r\npre\r\n--X\r\n\r\none\r\n--X\r\nContent-Type: message/rfc822\r\n\r\nSubject: in\r\nContent-Type: multipart/alternative; boundary=Y\r\n\r\n--Y\r\n\r\na\r\n--Y\r\nContent-Type: text/html\r\n\r\n<b>\r\n--Y--\r\n\r\n--X--\r\nepilogue\r\n";
        let p = parse(m);
        assert_eq!(p.parts.len(), 2);
        assert_eq!(p.parts[0].text(m), b"one");
        let inner = &p.parts[1].parts[0];
        assert_eq!(inner.subtype, b"alternative");
        assert_eq!(inner.parts[1].subtype, b"html");
        assert_eq!(inner.parts[1].text(m), b"<b>");
    }

    #[test]
    fn malformed_never_fails() {
        for m in [
            &b""[..],
            b"\r\n",
            b"Content-Type: multipart/mixed\r\n\r\nx",
            b"Content-Type: multipart/mixed; boundary=q\r\n\r\n--q\r\n",
            b"Content-Type: message/rfc822\r\n\r\n",
            b"a:\n b\nc",
        ] {
            let p = parse(m);
            if p.is_multipart() {
                assert!(!p.parts.is_empty());
            }
        }
        let mut deep = Vec::new();
        for i in 0..100 {
            deep.extend_from_slice(
                format!(
                    "Content-Type: multipart/mixed; boundary=b{}\r\n\r\n--b{}\r\n",
                    i, i
                )
                .as_bytes(),
            );
        }
        let _ = parse(&deep);
        let nul = vec![0u8; 200_000];
        assert!(addresses(&nul).is_empty());
        let _ = content_type(&nul);
    }

    #[test]
    fn address_lists() {
        let a = addresses(b"\"Doe, J\" <j@x.org>, k@y (Kay), undisclosed:;, G: a@b, c@d;");
        assert_eq!(
            a[0],
            Addr::Mailbox {
                name: Some(b"Doe, J".to_vec()),
                route: None,
                mailbox: b"j".to_vec(),
                host: b"x.org".to_vec()
            }
        );
        assert_eq!(
            a[1],
            Addr::Mailbox {
                name: Some(b"Kay".to_vec()),
                route: None,
                mailbox: b"k".to_vec(),
                host: b"y".to_vec()
            }
        );
        assert_eq!(a[2], Addr::GroupStart(b"undisclosed".to_vec()));
        assert_eq!(a[3], Addr::GroupEnd);
        assert_eq!(a.len(), 8);
    }

    #[test]
    fn dates_and_encodings() {
        assert_eq!(
            date_ymd(b"Tue, 1 Jul 2003 10:52:37 +0200"),
            Some((2003, 7, 1))
        );
        assert_eq!(date_ymd(b"1 Jul 03 10:52 GMT"), Some((2003, 7, 1)));
        assert_eq!(qp_decode(b"a=3Db=\r\nc"), b"a=bc");
        assert_eq!(base64_decode(b"aGVs\r\nbG8="), b"hello");
        assert_eq!(base64_encode(b"hello"), b"aGVsbG8=");
    }
}

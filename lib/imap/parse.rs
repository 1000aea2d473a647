//! The IMAP grammar: reading one command off the wire (lines plus
//! synchronising and LITERAL+ literals, with limits), and a cursor that
//! takes it apart (atoms, strings, lists, numbers, sequence sets, dates).

use crate::sys;

/// One read from the client.
pub enum Input {
    /// A whole command, literals inline (`{n}\r\n` + n bytes), no final CRLF.
    Cmd(Vec<u8>),
    /// A line longer than the limit (drained); the tag when one was seen.
    TooLong(Vec<u8>),
    /// A synchronising literal over the limit: the tag; nothing was sent.
    TooBig(Vec<u8>),
    /// A non-synchronising literal over the limit: the connection must end.
    TooBigPlus(Vec<u8>),
    /// The command as a whole is over [`Limits`] (not drained): the tag;
    /// the connection must end.
    TooMuch(Vec<u8>),
    Eof,
    Timeout,
}

/// The size limits on one command. A line segment is the text before the
/// end of the line or between two literals.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// One line segment. A first segment over it (and under the others) is
    /// drained and refused ([`Input::TooLong`]); the session goes on.
    pub line: usize,
    /// All line segments of one command together (literal data not counted).
    pub text: usize,
    /// One literal.
    pub literal: usize,
    /// The whole command: its segments, the CRLF after each literal header
    /// and the literal data (not its final CRLF).
    pub total: usize,
}

impl Limits {
    /// Before login: 8 KiB for the whole command, literals included.
    pub const LOGIN: Limits = Limits {
        line: super::MAX_LINE,
        text: 8192,
        literal: 8192,
        total: 8192,
    };

    /// After login: [`super::MAX_TEXT`] of text, literals of `literal`
    /// bytes, and `literal` + [`super::MAX_TEXT`] for the whole command.
    pub fn session(literal: usize) -> Limits {
        Limits {
            line: super::MAX_LINE,
            text: super::MAX_TEXT,
            literal,
            total: literal.saturating_add(super::MAX_TEXT),
        }
    }
}

/// Reads descriptor `fd` through a buffer of `chunk` bytes: imap-login
/// reads with `chunk = 1` so nothing meant for imapd is swallowed.
pub struct Reader {
    fd: i32,
    buf: Vec<u8>,
    pos: usize,
    end: usize,
    pub timeout: u64,
    /// With `fd` -1: the bytes to read instead, and how far they are read.
    src: Vec<u8>,
    src_pos: usize,
}

impl Reader {
    pub fn new(fd: i32, chunk: usize, timeout: u64) -> Reader {
        Reader {
            fd,
            buf: vec![0; chunk.max(1)],
            pos: 0,
            end: 0,
            timeout,
            src: Vec::new(),
            src_pos: 0,
        }
    }

    /// Whether bytes are already buffered (no need to poll the fd).
    pub fn buffered(&self) -> bool {
        self.pos < self.end
    }

    fn fill(&mut self) -> std::io::Result<bool> {
        if self.pos < self.end {
            return Ok(true);
        }
        let n = if self.fd < 0 {
            let n = self.buf.len().min(self.src.len() - self.src_pos);
            self.buf[..n].copy_from_slice(&self.src[self.src_pos..self.src_pos + n]);
            self.src_pos += n;
            n
        } else {
            sys::read_timeout(self.fd, &mut self.buf, self.timeout)?
        };
        self.pos = 0;
        self.end = n;
        Ok(n > 0)
    }

    /// A reader over `data` alone (EOF after it), `chunk` bytes a read:
    /// for tests and fuzzing.
    pub fn from_bytes(data: Vec<u8>, chunk: usize) -> Reader {
        let mut r = Reader::new(-1, chunk, 0);
        r.src = data;
        r
    }

    /// How many bytes of [`Reader::from_bytes`] data are consumed.
    pub fn consumed(&self) -> usize {
        self.src_pos - (self.end - self.pos)
    }

    /// Reads a line (without CRLF or LF) into `out`, at most `max` bytes.
    /// Ok(None) at EOF; Ok(Some(false)) when too long (the rest is drained).
    pub fn line(&mut self, out: &mut Vec<u8>, max: usize) -> std::io::Result<Option<bool>> {
        self.line_limited(out, max, true)
    }

    /// [`Reader::line`]; without `drain` a line over `max` ends the read at
    /// once (the caller ends the connection).
    pub fn line_limited(
        &mut self,
        out: &mut Vec<u8>,
        max: usize,
        drain: bool,
    ) -> std::io::Result<Option<bool>> {
        let start = out.len();
        let mut over = false;
        loop {
            if !self.fill()? {
                return Ok(None);
            }
            let avail = &self.buf[self.pos..self.end];
            match memchr::memchr(b'\n', avail) {
                Some(i) => {
                    if !over {
                        out.extend_from_slice(&avail[..i]);
                    }
                    self.pos += i + 1;
                    break;
                }
                None => {
                    if !over {
                        out.extend_from_slice(avail);
                    }
                    self.pos = self.end;
                }
            }
            // One byte more than `max` may be the CR before the LF.
            if out.len() - start > max.saturating_add(1) {
                over = true;
                out.truncate(start + max);
                if !drain {
                    return Ok(Some(false));
                }
            }
        }
        if !over && out.len() > start && out[out.len() - 1] == b'\r' {
            out.pop();
        }
        if over || out.len() - start > max {
            out.truncate(start + max);
            return Ok(Some(false));
        }
        Ok(Some(true))
    }

    /// Reads exactly `n` bytes onto `out`. Ok(false) at EOF.
    pub fn exact(&mut self, out: &mut Vec<u8>, mut n: usize) -> std::io::Result<bool> {
        while n > 0 {
            if !self.fill()? {
                return Ok(false);
            }
            let k = n.min(self.end - self.pos);
            out.extend_from_slice(&self.buf[self.pos..self.pos + k]);
            self.pos += k;
            n -= k;
        }
        Ok(true)
    }

    /// Reads one command within `lim`. `cont` is called (and must flush)
    /// before the client may send a synchronising literal.
    pub fn command(
        &mut self,
        lim: Limits,
        cont: &mut dyn FnMut() -> std::io::Result<()>,
    ) -> std::io::Result<Input> {
        let mut cmd = Vec::new();
        let mut text: usize = 0;
        loop {
            let seg = cmd.len();
            let room = lim
                .text
                .saturating_sub(text)
                .min(lim.total.saturating_sub(seg));
            let max = lim.line.min(room);
            // Only a first segment cut by the line limit is drained: the
            // client is still in step after it.
            let drain = seg == 0 && lim.line <= room;
            match self.line_limited(&mut cmd, max, drain) {
                Err(e) if e.kind() == std::io::ErrorKind::TimedOut => return Ok(Input::Timeout),
                Err(e) => return Err(e),
                Ok(None) => return Ok(Input::Eof),
                Ok(Some(false)) if drain => return Ok(Input::TooLong(tag_of(&cmd).to_vec())),
                Ok(Some(false)) => return Ok(Input::TooMuch(tag_of(&cmd).to_vec())),
                Ok(Some(true)) => {}
            }
            text += cmd.len() - seg;
            let (n, plus) = match literal_at_end(&cmd[seg..]) {
                None => return Ok(Input::Cmd(cmd)),
                Some(l) => l,
            };
            let whole = cmd.len().saturating_add(2).saturating_add(n);
            if n > lim.literal || whole > lim.total {
                let t = tag_of(&cmd).to_vec();
                return Ok(if plus {
                    Input::TooBigPlus(t)
                } else {
                    Input::TooBig(t)
                });
            }
            if !plus {
                cont()?;
            }
            cmd.extend_from_slice(b"\r\n");
            match self.exact(&mut cmd, n) {
                Err(e) if e.kind() == std::io::ErrorKind::TimedOut => return Ok(Input::Timeout),
                Err(e) => return Err(e),
                Ok(false) => return Ok(Input::Eof),
                Ok(true) => {}
            }
        }
    }
}

/// The tag at the start of a command line (may be empty).
pub fn tag_of(cmd: &[u8]) -> &[u8] {
    let e = cmd.iter().position(|&c| c == b' ').unwrap_or(cmd.len());
    &cmd[..e.min(64)]
}

/// `{N}` or `{N+}` at the end of a line: (N, non-synchronising).
pub fn literal_at_end(line: &[u8]) -> Option<(usize, bool)> {
    if line.last() != Some(&b'}') {
        return None;
    }
    let open = memchr::memrchr(b'{', line)?;
    let mut inner = &line[open + 1..line.len() - 1];
    let plus = inner.last() == Some(&b'+');
    if plus {
        inner = &inner[..inner.len() - 1];
    }
    let n = crate::parse::number(inner)?;
    Some((usize::try_from(n).ok()?, plus))
}

/// A parse error: the text for `tag BAD text`.
pub type R<T> = Result<T, &'static str>;

/// `*` in a sequence set: 0, which no sequence number or UID can be
/// (4294967295 is a UID like any other, RFC 3501 §9).
pub const STAR: u32 = 0;

/// A sequence set as ranges (lo <= hi after resolution; `*` is [`STAR`]).
#[derive(Clone, Debug, PartialEq)]
pub struct SeqSet(pub Vec<(u32, u32)>);

impl SeqSet {
    /// Whether `n` is in the set when `*` means `max`.
    pub fn contains(&self, n: u32, max: u32) -> bool {
        self.0.iter().any(|&(a, b)| {
            let a = if a == STAR { max } else { a };
            let b = if b == STAR { max } else { b };
            let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
            n >= lo && n <= hi
        })
    }
}

fn is_atom_char(c: u8) -> bool {
    c > 0x20 && c < 0x7f && !matches!(c, b'(' | b')' | b'{' | b'%' | b'*' | b'"' | b'\\' | b']')
}

/// A cursor over one command.
pub struct Cursor<'a> {
    pub b: &'a [u8],
    pub i: usize,
}

impl<'a> Cursor<'a> {
    pub fn new(b: &'a [u8]) -> Cursor<'a> {
        Cursor { b, i: 0 }
    }

    pub fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    pub fn at_end(&self) -> bool {
        self.i >= self.b.len()
    }

    pub fn end(&self) -> R<()> {
        if self.at_end() {
            Ok(())
        } else {
            Err("unexpected extra arguments")
        }
    }

    pub fn eat(&mut self, c: u8) -> bool {
        if self.peek() == Some(c) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    pub fn expect(&mut self, c: u8) -> R<()> {
        if self.eat(c) {
            Ok(())
        } else {
            Err(match c {
                b' ' => "missing argument",
                b'(' => "expected (",
                b')' => "expected )",
                b']' => "expected ]",
                _ => "syntax error",
            })
        }
    }

    pub fn sp(&mut self) -> R<()> {
        self.expect(b' ')
    }

    /// Chars while `f` holds; Err when none.
    fn take(&mut self, f: impl Fn(u8) -> bool) -> R<&'a [u8]> {
        let s = self.i;
        while self.i < self.b.len() && f(self.b[self.i]) {
            self.i += 1;
        }
        if s == self.i {
            return Err("syntax error");
        }
        Ok(&self.b[s..self.i])
    }

    /// An atom (tag, command name, keyword).
    pub fn atom(&mut self) -> R<&'a [u8]> {
        self.take(is_atom_char)
    }

    /// A tag: atom chars without `+`.
    pub fn tag(&mut self) -> R<&'a [u8]> {
        self.take(|c| is_atom_char(c) && c != b'+')
    }

    /// An atom upper-cased (command names, fetch items, search keys).
    pub fn word(&mut self) -> R<Vec<u8>> {
        Ok(self
            .take(|c| is_atom_char(c) && c != b'[' && c != b'.' && c != b'<')?
            .to_ascii_uppercase())
    }

    pub fn number(&mut self) -> R<u32> {
        let d = self.take(|c| c.is_ascii_digit())?;
        crate::parse::number(d)
            .and_then(|n| u32::try_from(n).ok())
            .ok_or("number too large")
    }

    pub fn nz_number(&mut self) -> R<u32> {
        match self.number()? {
            0 => Err("zero is not a valid number here"),
            n => Ok(n),
        }
    }

    pub fn number64(&mut self) -> R<u64> {
        let d = self.take(|c| c.is_ascii_digit())?;
        crate::parse::number(d).ok_or("number too large")
    }

    /// A quoted string or a literal.
    pub fn string(&mut self) -> R<Vec<u8>> {
        match self.peek() {
            Some(b'"') => self.quoted(),
            Some(b'{') => self.literal().map(|s| s.to_vec()),
            _ => Err("expected a string"),
        }
    }

    pub fn quoted(&mut self) -> R<Vec<u8>> {
        self.expect(b'"')?;
        let mut out = Vec::new();
        loop {
            match self.peek() {
                None => return Err("unterminated quoted string"),
                Some(b'"') => {
                    self.i += 1;
                    return Ok(out);
                }
                Some(b'\\') => {
                    self.i += 1;
                    match self.peek() {
                        Some(c @ (b'"' | b'\\')) => out.push(c),
                        _ => return Err("bad escape in quoted string"),
                    }
                    self.i += 1;
                }
                Some(b'\r' | b'\n' | 0) => return Err("bad character in quoted string"),
                Some(c) => {
                    out.push(c);
                    self.i += 1;
                }
            }
        }
    }

    /// `{N}` or `{N+}`, CRLF, N bytes (the reader put them inline).
    pub fn literal(&mut self) -> R<&'a [u8]> {
        self.expect(b'{')?;
        let n = self.number64()? as usize;
        self.eat(b'+');
        self.expect(b'}')?;
        if !self.b[self.i..].starts_with(b"\r\n") {
            return Err("literal not followed by CRLF");
        }
        self.i += 2;
        if self.b.len() - self.i < n {
            return Err("short literal");
        }
        let s = &self.b[self.i..self.i + n];
        self.i += n;
        Ok(s)
    }

    /// astring: atom (with `]`), quoted or literal.
    pub fn astring(&mut self) -> R<Vec<u8>> {
        match self.peek() {
            Some(b'"') | Some(b'{') => self.string(),
            _ => Ok(self.take(|c| is_atom_char(c) || c == b']')?.to_vec()),
        }
    }

    /// list-mailbox: atom chars plus `%` `*` `]`, or a string.
    pub fn list_mailbox(&mut self) -> R<Vec<u8>> {
        match self.peek() {
            Some(b'"') | Some(b'{') => self.string(),
            _ => Ok(self
                .take(|c| is_atom_char(c) || matches!(c, b'%' | b'*' | b']'))?
                .to_vec()),
        }
    }

    /// A flag: `\Word` or a keyword atom. `\*` is allowed only with `star`.
    pub fn flag(&mut self) -> R<Vec<u8>> {
        if self.eat(b'\\') {
            if self.eat(b'*') {
                return Err("\\* is not a flag");
            }
            let a = self.atom()?;
            let mut v = b"\\".to_vec();
            v.extend_from_slice(a);
            Ok(v)
        } else {
            Ok(self.atom()?.to_vec())
        }
    }

    /// `(flag ...)` or, with `bare`, flags separated by spaces without parens.
    pub fn flag_list(&mut self, bare: bool) -> R<Vec<Vec<u8>>> {
        let mut v = Vec::new();
        if self.eat(b'(') {
            if self.eat(b')') {
                return Ok(v);
            }
            loop {
                v.push(self.flag()?);
                if self.eat(b')') {
                    return Ok(v);
                }
                self.sp()?;
            }
        }
        if !bare {
            return Err("expected a flag list");
        }
        loop {
            v.push(self.flag()?);
            if !self.eat(b' ') {
                return Ok(v);
            }
        }
    }

    /// A sequence set: `1`, `2:4`, `*`, `5:*`, comma separated.
    pub fn seqset(&mut self) -> R<SeqSet> {
        let mut v = Vec::new();
        loop {
            let a = self.seqnum()?;
            let b = if self.eat(b':') { self.seqnum()? } else { a };
            v.push((a, b));
            if !self.eat(b',') {
                break;
            }
        }
        Ok(SeqSet(v))
    }

    fn seqnum(&mut self) -> R<u32> {
        if self.eat(b'*') {
            return Ok(STAR);
        }
        match self.peek() {
            Some(c) if c.is_ascii_digit() => self.nz_number().map_err(|_| "invalid sequence set"),
            _ => Err("invalid sequence set"),
        }
    }

    /// date: `1-Feb-1994` or `"1-Feb-1994"`: (year, month 1-12, day).
    pub fn date(&mut self) -> R<(i32, u32, u32)> {
        let q = self.eat(b'"');
        let d = self.take(|c| c.is_ascii_alphanumeric() || c == b'-')?;
        if q {
            self.expect(b'"')?;
        }
        parse_date(d).ok_or("invalid date")
    }

    /// date-time: `"17-Jul-1996 02:44:25 -0700"`: Unix time.
    pub fn date_time(&mut self) -> R<i64> {
        let s = self.quoted()?;
        parse_date_time(&s).ok_or("invalid date-time")
    }
}

/// `d-Mon-yyyy`.
pub fn parse_date(d: &[u8]) -> Option<(i32, u32, u32)> {
    let mut it = d.split(|&c| c == b'-');
    let day = crate::parse::number(crate::parse::trim(it.next()?))? as u32;
    let mon = crate::date::month(it.next()?)?;
    let year = crate::parse::number(it.next()?)? as i32;
    if it.next().is_some() || !(1..=31).contains(&day) || !(1..=9999).contains(&year) {
        return None;
    }
    Some((year, mon, day))
}

/// `dd-Mon-yyyy hh:mm:ss +zzzz` to Unix time.
pub fn parse_date_time(s: &[u8]) -> Option<i64> {
    let s = crate::parse::trim(s);
    let mut parts = s.split(|&c| c == b' ').filter(|p| !p.is_empty());
    let (y, m, d) = parse_date(parts.next()?)?;
    let t = parts.next()?;
    let z = parts.next()?;
    if parts.next().is_some() || t.len() != 8 || z.len() != 5 {
        return None;
    }
    let n = |b: &[u8]| crate::parse::number(b).map(|x| x as i64);
    let (hh, mm, ss) = (n(&t[0..2])?, n(&t[3..5])?, n(&t[6..8])?);
    let zz = n(&z[1..3])? * 3600 + n(&z[3..5])? * 60;
    let off = match z[0] {
        b'+' => zz,
        b'-' => -zz,
        _ => return None,
    };
    if hh > 23 || mm > 59 || ss > 60 {
        return None;
    }
    Some(days_from_civil(y, m, d) * 86400 + hh * 3600 + mm * 60 + ss - off)
}

/// Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm).
pub fn days_from_civil(y: i32, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y } as i64;
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let m = m as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_and_literals() {
        let mut c = Cursor::new(b"\"a\\\"b\" {3}\r\nxyz atom]");
        assert_eq!(c.astring().unwrap(), b"a\"b");
        c.sp().unwrap();
        assert_eq!(c.astring().unwrap(), b"xyz");
        c.sp().unwrap();
        assert_eq!(c.astring().unwrap(), b"atom]");
        assert!(c.at_end());
        assert!(Cursor::new(b"{5}\r\nab").literal().is_err());
    }

    #[test]
    fn sequence_sets() {
        let s = Cursor::new(b"1,3:5,7:*").seqset().unwrap();
        assert!(s.contains(4, 10) && s.contains(10, 10) && !s.contains(2, 10));
        assert!(Cursor::new(b"0").seqset().is_err());
        assert!(Cursor::new(b"1:").seqset().is_err());
        assert!(Cursor::new(b",").seqset().is_err());
        assert!(Cursor::new(b"*:4").seqset().unwrap().contains(5, 6));
    }

    #[test]
    fn literal_suffix() {
        assert_eq!(literal_at_end(b"a APPEND x {12}"), Some((12, false)));
        assert_eq!(literal_at_end(b"a APPEND x {12+}"), Some((12, true)));
        assert_eq!(literal_at_end(b"a {x}"), None);
    }

    #[test]
    fn dates() {
        assert_eq!(parse_date(b"1-Feb-1994"), Some((1994, 2, 1)));
        assert_eq!(parse_date_time(b"01-Jan-1970 00:00:00 +0000"), Some(0));
        assert_eq!(
            parse_date_time(b"17-Jul-1996 02:44:25 -0700"),
            Some(837596665)
        );
        assert_eq!(parse_date(b"31-Foo-1994"), None);
    }
}

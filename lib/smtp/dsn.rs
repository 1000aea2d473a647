//! RFC 3461 (SMTP DSN) parameters: xtext and the values of NOTIFY,
//! ORCPT, RET and ENVID, parsed strictly, and [`Dsn`], a message's
//! parameters as they travel: smtp-recv → queue-inject (`$PIPEMAIL_DSN`),
//! the queue (a `D` record), queue-run → remote-send (`$PIPEMAIL_DSN`).
//! One text form for all of them ([`Dsn::encode`]), the parameters as on
//! the wire: a first line `[RET=FULL|HDRS] [ENVID=xtext]`, then nothing
//! or one line per recipient, in envelope order, `[NOTIFY=...]
//! [ORCPT=type;xtext]`; each line ends in LF, words are separated by one
//! space.

/// Longest ORCPT value, as sent (RFC 3461 4.2).
pub const MAX_ORCPT: usize = 500;
/// Longest ENVID value, as sent (RFC 3461 4.4).
pub const MAX_ENVID: usize = 100;

/// Whether `c` stands for itself in xtext (`!`..`~` but `+` and `=`).
fn is_xchar(c: u8) -> bool {
    (33..=126).contains(&c) && c != b'+' && c != b'='
}

fn hex(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Decodes xtext (RFC 3461 4): xchars, and `+` with two upper-case hex
/// digits for any other byte. None for anything else.
pub fn xtext_decode(s: &[u8]) -> Option<Vec<u8>> {
    let mut v = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        match s[i] {
            b'+' => {
                let h = hex(*s.get(i + 1)?)?;
                let l = hex(*s.get(i + 2)?)?;
                v.push(h << 4 | l);
                i += 3;
            }
            c if is_xchar(c) => {
                v.push(c);
                i += 1;
            }
            _ => return None,
        }
    }
    Some(v)
}

/// Encodes bytes as xtext: `+XX` for `+`, `=`, and bytes outside `!`..`~`.
pub fn xtext_encode(b: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(b.len());
    for &c in b {
        if is_xchar(c) {
            v.push(c);
        } else {
            v.extend_from_slice(format!("+{:02X}", c).as_bytes());
        }
    }
    v
}

/// A NOTIFY value: NEVER, or a set of SUCCESS, FAILURE and DELAY.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Notify {
    pub success: bool,
    pub failure: bool,
    pub delay: bool,
}

impl Notify {
    /// The default when NOTIFY is absent (RFC 3461 4.1): failures and delays.
    pub const DEFAULT: Notify = Notify {
        success: false,
        failure: true,
        delay: true,
    };

    /// Parses `NEVER` or a comma list of SUCCESS, FAILURE, DELAY (any
    /// case, each at most once; NEVER alone).
    pub fn parse(v: &[u8]) -> Option<Notify> {
        if v.eq_ignore_ascii_case(b"NEVER") {
            return Some(Notify::default());
        }
        let mut n = Notify::default();
        for w in v.split(|&c| c == b',') {
            let slot = if w.eq_ignore_ascii_case(b"SUCCESS") {
                &mut n.success
            } else if w.eq_ignore_ascii_case(b"FAILURE") {
                &mut n.failure
            } else if w.eq_ignore_ascii_case(b"DELAY") {
                &mut n.delay
            } else {
                return None;
            };
            if *slot {
                return None;
            }
            *slot = true;
        }
        Some(n)
    }

    /// The wire form: `NEVER` or e.g. `SUCCESS,FAILURE`.
    pub fn encode(&self) -> Vec<u8> {
        let mut w: Vec<&[u8]> = Vec::new();
        for (on, name) in [
            (self.success, &b"SUCCESS"[..]),
            (self.failure, b"FAILURE"),
            (self.delay, b"DELAY"),
        ] {
            if on {
                w.push(name);
            }
        }
        if w.is_empty() {
            b"NEVER".to_vec()
        } else {
            w.join(&b',')
        }
    }
}

/// RET: what a failure DSN carries of the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ret {
    Full,
    Hdrs,
}

impl Ret {
    pub fn name(&self) -> &'static [u8] {
        match self {
            Ret::Full => b"FULL",
            Ret::Hdrs => b"HDRS",
        }
    }

    pub fn parse(v: &[u8]) -> Option<Ret> {
        if v.eq_ignore_ascii_case(b"FULL") {
            Some(Ret::Full)
        } else if v.eq_ignore_ascii_case(b"HDRS") {
            Some(Ret::Hdrs)
        } else {
            None
        }
    }
}

/// An ORCPT value `addr-type ; xtext`: (addr-type, decoded address).
/// The type is an atom (`rfc822`, `utf-8`...); the decoded address must
/// be printable ASCII or UTF-8 without control bytes.
pub fn parse_orcpt(v: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
    if v.len() > MAX_ORCPT {
        return None;
    }
    let semi = memchr::memchr(b';', v)?;
    let (ty, x) = (&v[..semi], &v[semi + 1..]);
    let atom = |c: &u8| c.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`{|}~".contains(c);
    if ty.is_empty() || !ty.iter().all(atom) {
        return None;
    }
    let a = xtext_decode(x)?;
    if a.is_empty() || std::str::from_utf8(&a).is_err() || a.iter().any(|&c| c < 32 || c == 127) {
        return None;
    }
    Some((ty.to_ascii_lowercase(), a))
}

/// An ENVID value: xtext of at most [`MAX_ENVID`] bytes, decoded to
/// printable ASCII.
pub fn parse_envid(v: &[u8]) -> Option<Vec<u8>> {
    if v.is_empty() || v.len() > MAX_ENVID {
        return None;
    }
    let d = xtext_decode(v)?;
    d.iter().all(|&c| (32..=126).contains(&c)).then_some(d)
}

/// The environment variable that carries [`Dsn::encode`]'s text to
/// queue-inject and remote-send.
pub const ENV: &str = "PIPEMAIL_DSN";

/// Longest [`Dsn::encode`] text accepted (100 recipients' ORCPT and
/// NOTIFY fit; an environment string may hold 128 KiB).
pub const MAX_TEXT: usize = 65536;

/// One recipient's parameters.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RcptDsn {
    pub notify: Option<Notify>,
    /// (addr-type in lower case, decoded address).
    pub orcpt: Option<(Vec<u8>, Vec<u8>)>,
}

impl RcptDsn {
    /// NOTIFY as it applies (RFC 3461 4.1's default when absent).
    pub fn notify(&self) -> Notify {
        self.notify.unwrap_or(Notify::DEFAULT)
    }
}

/// A message's DSN parameters: MAIL's RET and ENVID, and RCPT's NOTIFY
/// and ORCPT (`rcpts` is empty, or one per recipient).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Dsn {
    pub ret: Option<Ret>,
    pub envid: Option<Vec<u8>>,
    pub rcpts: Vec<RcptDsn>,
}

/// Appends ` KEY=value` (without the space when `v` is empty).
fn word(v: &mut Vec<u8>, key: &[u8], val: &[u8]) {
    if !v.is_empty() {
        v.push(b' ');
    }
    v.extend_from_slice(key);
    v.push(b'=');
    v.extend_from_slice(val);
}

impl Dsn {
    /// Whether nothing was asked for (then nothing is carried).
    pub fn is_empty(&self) -> bool {
        self.ret.is_none()
            && self.envid.is_none()
            && self.rcpts.iter().all(|r| *r == RcptDsn::default())
    }

    /// Recipient `i`'s parameters (none when not given).
    pub fn rcpt(&self, i: usize) -> RcptDsn {
        self.rcpts.get(i).cloned().unwrap_or_default()
    }

    /// MAIL's parameters, as on the wire: `RET=HDRS ENVID=xtext` (or less).
    pub fn mail_params(&self) -> Vec<u8> {
        let mut v = Vec::new();
        if let Some(r) = self.ret {
            word(&mut v, b"RET", r.name());
        }
        if let Some(e) = &self.envid {
            word(&mut v, b"ENVID", &xtext_encode(e));
        }
        v
    }

    /// RCPT's parameters for recipient `i`: `NOTIFY=... ORCPT=type;xtext`.
    pub fn rcpt_params(&self, i: usize) -> Vec<u8> {
        let r = self.rcpt(i);
        let mut v = Vec::new();
        if let Some(n) = r.notify {
            word(&mut v, b"NOTIFY", &n.encode());
        }
        if let Some((ty, a)) = &r.orcpt {
            word(
                &mut v,
                b"ORCPT",
                &[&ty[..], b";", &xtext_encode(a)].concat(),
            );
        }
        v
    }

    /// The text form (module doc); no recipient lines when none has a
    /// parameter.
    pub fn encode(&self) -> Vec<u8> {
        let mut v = self.mail_params();
        v.push(b'\n');
        if self.rcpts.iter().any(|r| *r != RcptDsn::default()) {
            for i in 0..self.rcpts.len() {
                v.extend_from_slice(&self.rcpt_params(i));
                v.push(b'\n');
            }
        }
        v
    }

    /// Parses [`Dsn::encode`]'s text: None when it is malformed (an
    /// unknown or repeated keyword, a bad value, a missing final LF, over
    /// [`MAX_TEXT`]). The recipient lines are taken as they are: the
    /// caller checks their count against the envelope.
    pub fn decode(t: &[u8]) -> Option<Dsn> {
        if t.len() > MAX_TEXT {
            return None;
        }
        let body = t.strip_suffix(b"\n")?;
        let mut lines = body.split(|&c| c == b'\n');
        let mut d = Dsn::default();
        for w in words(lines.next()?) {
            let (k, v) = w?;
            if k.eq_ignore_ascii_case(b"RET") && d.ret.is_none() {
                d.ret = Some(Ret::parse(v)?);
            } else if k.eq_ignore_ascii_case(b"ENVID") && d.envid.is_none() {
                d.envid = Some(parse_envid(v)?);
            } else {
                return None;
            }
        }
        for l in lines {
            let mut r = RcptDsn::default();
            for w in words(l) {
                let (k, v) = w?;
                if k.eq_ignore_ascii_case(b"NOTIFY") && r.notify.is_none() {
                    r.notify = Some(Notify::parse(v)?);
                } else if k.eq_ignore_ascii_case(b"ORCPT") && r.orcpt.is_none() {
                    r.orcpt = Some(parse_orcpt(v)?);
                } else {
                    return None;
                }
            }
            d.rcpts.push(r);
        }
        Some(d)
    }

    /// Fits the recipient list to an envelope of `n` recipients: a list of
    /// another length (a queue wrapper changed the recipients) is dropped.
    pub fn fit(mut self, n: usize) -> Dsn {
        if self.rcpts.len() != n {
            self.rcpts.clear();
        }
        self
    }

    /// The parameters in `$PIPEMAIL_DSN`: none when it is unset, Err when
    /// it does not parse. (Fit them to the envelope with [`Dsn::fit`].)
    pub fn from_env() -> Result<Dsn, ()> {
        use std::os::unix::ffi::OsStrExt;
        match std::env::var_os(ENV) {
            None => Ok(Dsn::default()),
            Some(v) => Dsn::decode(v.as_bytes()).ok_or(()),
        }
    }
}

/// The `KEY=value` words of a line (single spaces between them).
fn words(l: &[u8]) -> impl Iterator<Item = Option<(&[u8], &[u8])>> {
    l.split(|&c| c == b' ')
        .filter(move |_| !l.is_empty())
        .map(|w| {
            let eq = memchr::memchr(b'=', w)?;
            Some((&w[..eq], &w[eq + 1..]))
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn xtext() {
        assert_eq!(xtext_decode(b"a+2Bb+3Dc").unwrap(), b"a+b=c");
        assert_eq!(xtext_decode(b"").unwrap(), b"");
        for bad in [
            &b"+2b"[..],
            b"+2",
            b"+",
            b"a b",
            b"a=b",
            b"\xc3\xa9",
            b"+G0",
        ] {
            assert_eq!(xtext_decode(bad), None, "{:?}", bad);
        }
        assert_eq!(xtext_encode(b"a+b=c d\xc3\xa9"), b"a+2Bb+3Dc+20d+C3+A9");
    }
    #[test]
    fn params() {
        assert_eq!(Notify::parse(b"never").unwrap().encode(), b"NEVER");
        assert_eq!(
            Notify::parse(b"delay,Success").unwrap().encode(),
            b"SUCCESS,DELAY"
        );
        for bad in [
            &b""[..],
            b"NEVER,SUCCESS",
            b"SUCCESS,SUCCESS",
            b"SUCCESS,",
            b"X",
        ] {
            assert_eq!(Notify::parse(bad), None, "{:?}", bad);
        }
        assert_eq!(Ret::parse(b"hdrs"), Some(Ret::Hdrs));
        assert_eq!(Ret::parse(b"ALL"), None);
        assert_eq!(
            parse_orcpt(b"rfc822;john+2Bdoe@x.example").unwrap(),
            (b"rfc822".to_vec(), b"john+doe@x.example".to_vec())
        );
        assert_eq!(parse_orcpt(b"rfc822;"), None);
        assert_eq!(parse_orcpt(b";a@b"), None);
        assert_eq!(parse_orcpt(b"rfc822;a+0Ab"), None);
        assert_eq!(
            parse_orcpt(&[b"rfc822;".as_slice(), &[b'a'; 500]].concat()),
            None
        );
        assert_eq!(parse_envid(b"QQ314159+2B").unwrap(), b"QQ314159+");
        assert_eq!(parse_envid(&[b'a'; 101]), None);
        assert_eq!(parse_envid(b"+00"), None);
    }
    #[test]
    fn text_form() {
        let d = Dsn {
            ret: Some(Ret::Hdrs),
            envid: Some(b"QQ 1+".to_vec()),
            rcpts: vec![
                RcptDsn {
                    notify: Some(Notify::parse(b"SUCCESS,DELAY").unwrap()),
                    orcpt: Some((b"rfc822".to_vec(), b"a=b@x".to_vec())),
                },
                RcptDsn::default(),
            ],
        };
        let t = d.encode();
        assert_eq!(
            t,
            b"RET=HDRS ENVID=QQ+201+2B\nNOTIFY=SUCCESS,DELAY ORCPT=rfc822;a+3Db@x\n\n"
        );
        assert_eq!(Dsn::decode(&t), Some(d.clone()));
        assert_eq!(Dsn::default().encode(), b"\n");
        assert_eq!(Dsn::decode(b"\n"), Some(Dsn::default()));
        assert!(Dsn::default().is_empty());
        assert_eq!(d.clone().fit(3).rcpts.len(), 0);
        assert_eq!(d.fit(2).rcpts.len(), 2);
        for bad in [
            &b""[..],
            b"RET=HDRS",
            b"RET=HDRS RET=FULL\n",
            b"RET=X\n",
            b"NOTIFY=NEVER\n",
            b"\nRET=FULL\n",
            b"RET=FULL \n",
            b"\nNOTIFY=NEVER  ORCPT=rfc822;a\n",
            b"\nNOTIFY\n",
        ] {
            assert_eq!(Dsn::decode(bad), None, "{:?}", bad);
        }
    }
}

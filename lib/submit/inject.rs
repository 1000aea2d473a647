//! mail-inject's work (mail-inject(8)): read a message, complete its header
//! (From, Date, Message-ID, To; Resent- variants for a resent message),
//! drop Bcc, Resent-Bcc, Return-Path and Content-Length, give bare
//! addresses the default domain, work out the envelope, and submit through
//! [`crate::enqueue::Queue`] (or print with `-n`). The message is read once; the
//! body is streamed to the queue.

use crate::enqueue::{Outcome, Queue};
use crate::header::{self, Addr};
use crate::queue::Envelope;
use crate::submit::input::Input;
use std::ffi::OsStr;
use std::io::{Read, Write};
use std::os::unix::ffi::OsStrExt;

/// Where the envelope recipients come from (qmail-inject's -a -h -A -H).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `-a`: the arguments only.
    Args,
    /// `-h`: the header only (To, Cc, Bcc, Apparently-To; or Resent-To,
    /// Resent-Cc, Resent-Bcc when the message is resent).
    Header,
    /// `-A` (default): the arguments, or the header when there are none.
    ArgsElseHeader,
    /// `-H`: both.
    Both,
}

/// What the caller asked for.
#[derive(Debug, Clone)]
pub struct Options {
    pub mode: Mode,
    /// `-f`: the envelope sender (overrides Return-Path and the environment).
    pub sender: Option<Vec<u8>>,
    /// sendmail's `-F`: the full name for a new From field.
    pub name: Option<Vec<u8>>,
    pub recipients: Vec<Vec<u8>>,
    /// `-n`: print the message instead of queueing it.
    pub print: bool,
    /// A line with a single dot ends the message (sendmail without -i).
    pub dot: bool,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            mode: Mode::ArgsElseHeader,
            sender: None,
            name: None,
            recipients: Vec::new(),
            print: false,
            dot: false,
        }
    }
}

/// Why a submission failed; the programs map these to their exit codes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// Wrong use: no recipients given where they must be.
    Usage(Vec<u8>),
    /// The message or an address is unusable.
    Data(Vec<u8>),
    /// The queue refused the message for good.
    Perm(Vec<u8>),
    /// Try again later (read error, control file, queue trouble).
    Temp(Vec<u8>),
}

impl Error {
    pub fn text(&self) -> &[u8] {
        match self {
            Error::Usage(t) | Error::Data(t) | Error::Perm(t) | Error::Temp(t) => t,
        }
    }
}

fn data(t: &str) -> Error {
    Error::Data(t.as_bytes().to_vec())
}

/// Who is submitting, from the environment and control files.
#[derive(Debug, Clone, Default)]
pub struct Identity {
    pub user: Vec<u8>,
    pub host: Vec<u8>,
    pub name: Vec<u8>,
    pub default_domain: Vec<u8>,
    pub id_host: Vec<u8>,
    /// Envelope sender parts (QMAILSUSER, QMAILSHOST).
    pub suser: Vec<u8>,
    pub shost: Vec<u8>,
    /// QMAILINJECT letters: `s` ignore Return-Path, `f` delete From, `i`
    /// delete Message-ID.
    pub flags: Vec<u8>,
}

fn env(names: &[&str]) -> Option<Vec<u8>> {
    names.iter().find_map(|n| match std::env::var_os(n) {
        Some(v) if !v.is_empty() => Some(OsStr::as_bytes(&v).to_vec()),
        _ => None,
    })
}

/// Keeps the bytes that may stand in a local part or host name.
fn clean_atom(b: &[u8]) -> Vec<u8> {
    b.iter()
        .copied()
        .filter(|&c| (33..127).contains(&c) && !b"()<>[]:;@,\"\\".contains(&c))
        .collect()
}

/// Keeps the bytes that may stand in a display name (no control bytes).
fn clean_name(b: &[u8]) -> Vec<u8> {
    let v: Vec<u8> = b
        .iter()
        .map(|&c| if c < 0x20 || c == 0x7f { b' ' } else { c })
        .collect();
    crate::parse::trim(&v).to_vec()
}

impl Identity {
    /// From the environment (QMAILUSER, MAILUSER, USER, LOGNAME; QMAILHOST,
    /// MAILHOST, QMAILDEFAULTHOST; QMAILNAME, MAILNAME, NAME; QMAILSUSER,
    /// QMAILSHOST; QMAILDEFAULTDOMAIN; QMAILIDHOST; QMAILINJECT) and
    /// control/defaulthost, defaultdomain, idhost, me.
    pub fn from_env() -> Result<Identity, Error> {
        let ce = |e: crate::control::ControlError| Error::Temp(e.text());
        let me = crate::control::me().map_err(ce)?;
        let user = match env(&["QMAILUSER", "MAILUSER", "USER", "LOGNAME"]) {
            Some(u) => u,
            None => match crate::sys::getpwuid(crate::sys::getuid()) {
                Ok(Some(p)) => p.name,
                _ => b"anonymous".to_vec(),
            },
        };
        let mut user = clean_atom(&user);
        if user.is_empty() {
            user = b"anonymous".to_vec();
        }
        let host = match env(&["QMAILHOST", "MAILHOST", "QMAILDEFAULTHOST"]) {
            Some(h) => h,
            None => crate::control::line("defaulthost", &me).map_err(ce)?,
        };
        let host = clean_atom(&host);
        let default_domain = match env(&["QMAILDEFAULTDOMAIN"]) {
            Some(d) => d,
            None => crate::control::line("defaultdomain", &me).map_err(ce)?,
        };
        let id_host = match env(&["QMAILIDHOST"]) {
            Some(d) => d,
            None => crate::control::line("idhost", &me).map_err(ce)?,
        };
        let suser = env(&["QMAILSUSER"])
            .map(|s| clean_atom(&s))
            .unwrap_or_else(|| user.clone());
        let shost = env(&["QMAILSHOST"])
            .map(|s| clean_atom(&s))
            .unwrap_or_else(|| host.clone());
        Ok(Identity {
            user,
            host,
            name: clean_name(&env(&["QMAILNAME", "MAILNAME", "NAME"]).unwrap_or_default()),
            default_domain: clean_atom(&default_domain),
            id_host: clean_atom(&id_host),
            suser,
            shost,
            flags: env(&["QMAILINJECT"]).unwrap_or_default(),
        })
    }
}

/// Header fields holding address lists, rewritten with the default domain.
const ADDRESS_FIELDS: &[&[u8]] = &[
    b"from",
    b"sender",
    b"reply-to",
    b"to",
    b"cc",
    b"bcc",
    b"apparently-to",
    b"return-receipt-to",
    b"errors-to",
    b"mail-reply-to",
    b"mail-followup-to",
    b"resent-from",
    b"resent-sender",
    b"resent-reply-to",
    b"resent-to",
    b"resent-cc",
    b"resent-bcc",
];

/// The result of reworking a header.
#[derive(Debug, Default)]
pub struct Header {
    /// The completed header, each field ending in LF, no blank line.
    pub bytes: Vec<u8>,
    /// Recipients named in the header (for -t/-h), qualified.
    pub recipients: Vec<Vec<u8>>,
    /// The sender from Return-Path, when there was one.
    pub return_path: Option<Vec<u8>>,
}

fn qualify_addr(a: &[u8], domain: &[u8]) -> Vec<u8> {
    let mut v = header::envelope_form(a);
    if !v.is_empty() && !a.contains(&b'@') {
        v.push(b'@');
        v.extend_from_slice(domain);
    }
    v
}

fn push_field(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.push(b'\n');
}

/// Reworks header `h` (LF line ends) for `id`; `now` is the Date text.
pub fn complete(
    h: &[u8],
    id: &Identity,
    opt_name: Option<&[u8]>,
    date: &[u8],
    msgid: &[u8],
) -> Header {
    let fields = header::fields(h);
    let resent = fields
        .iter()
        .any(|f| f.name.len() > 7 && f.name[..7].eq_ignore_ascii_case(b"resent-"));
    let mut out = Header::default();
    let mut seen: Vec<Vec<u8>> = Vec::new();
    let dom = &id.default_domain;
    for f in &fields {
        let n = f.name.to_ascii_lowercase();
        let rcpt_field = if resent {
            matches!(&n[..], b"resent-to" | b"resent-cc" | b"resent-bcc")
        } else {
            matches!(&n[..], b"to" | b"cc" | b"bcc" | b"apparently-to")
        };
        if rcpt_field {
            for Addr { addr, .. } in header::addresses(f.value) {
                if !addr.is_empty() {
                    out.recipients.push(qualify_addr(&addr, dom));
                }
            }
        }
        match &n[..] {
            b"return-path" => {
                if out.return_path.is_none() {
                    if let Some(a) = header::addresses(f.value).into_iter().next() {
                        out.return_path = Some(qualify_addr(&a.addr, dom));
                    }
                }
                continue;
            }
            b"bcc" | b"resent-bcc" | b"content-length" => continue,
            b"from" if id.flags.contains(&b'f') => continue,
            b"message-id" if id.flags.contains(&b'i') => continue,
            _ => {}
        }
        seen.push(n.clone());
        if ADDRESS_FIELDS.contains(&&n[..]) {
            let colon = memchr::memchr(b':', f.raw).unwrap_or(0);
            let q = header::qualify(f.value, dom);
            out.bytes.extend_from_slice(&f.raw[..colon + 1]);
            out.bytes.extend_from_slice(&q);
            out.bytes.push(b'\n');
        } else {
            out.bytes.extend_from_slice(f.raw);
            if !f.raw.ends_with(b"\n") {
                out.bytes.push(b'\n');
            }
        }
    }
    let has = |n: &[u8]| seen.iter().any(|s| s == n);
    let p = if resent { "resent-" } else { "" };
    let name = |s: &str| format!("{}{}", if resent { "Resent-" } else { "" }, s).into_bytes();
    if !has(format!("{}date", p).as_bytes()) {
        push_field(&mut out.bytes, &name("Date"), date);
    }
    if !has(format!("{}from", p).as_bytes()) {
        let mut v = Vec::new();
        let display = opt_name.map(clean_name).unwrap_or_else(|| id.name.clone());
        if !display.is_empty() {
            v.extend_from_slice(&header::phrase(&display));
            v.extend_from_slice(b" <");
        }
        v.extend_from_slice(&id.user);
        v.push(b'@');
        v.extend_from_slice(&id.host);
        if !display.is_empty() {
            v.push(b'>');
        }
        push_field(&mut out.bytes, &name("From"), &v);
    }
    if !has(format!("{}message-id", p).as_bytes()) {
        push_field(&mut out.bytes, &name("Message-ID"), msgid);
    }
    if !resent && !has(b"to") && !has(b"cc") {
        push_field(&mut out.bytes, b"To", b"undisclosed-recipients: ;");
    }
    out
}

/// Checks an envelope address: not too long, no control bytes.
fn check_addr(a: &[u8]) -> Result<(), Error> {
    if a.len() > crate::queue::MAX_ADDR {
        return Err(data("address too long"));
    }
    if a.iter().any(|&c| c < 0x20 || c == 0x7f) {
        return Err(data("address contains control characters"));
    }
    Ok(())
}

/// The envelope for a message whose reworked header is `h`.
pub fn envelope(opts: &Options, id: &Identity, h: &Header) -> Result<Envelope, Error> {
    let dom = &id.default_domain;
    let sender = match (&opts.sender, &h.return_path) {
        (Some(s), _) => qualify_addr(s, dom),
        (None, Some(r)) if !id.flags.contains(&b's') => r.clone(),
        _ => {
            let mut s = id.suser.clone();
            s.push(b'@');
            s.extend_from_slice(&id.shost);
            s
        }
    };
    check_addr(&sender)?;
    // An argument is an address list too: `a@b, Name <c@d>` gives two.
    let args: Vec<Vec<u8>> = opts
        .recipients
        .iter()
        .flat_map(|r| header::addresses(r))
        .map(|a| qualify_addr(&a.addr, dom))
        .collect();
    let mut list: Vec<Vec<u8>> = match opts.mode {
        Mode::Args => args,
        Mode::Header => h.recipients.clone(),
        Mode::ArgsElseHeader if !args.is_empty() => args,
        Mode::ArgsElseHeader => h.recipients.clone(),
        Mode::Both => args
            .into_iter()
            .chain(h.recipients.iter().cloned())
            .collect(),
    };
    let mut seen = std::collections::HashSet::new();
    list.retain(|r| !r.is_empty() && seen.insert(r.clone()));
    for r in &list {
        check_addr(r)?;
    }
    if list.is_empty() {
        return Err(match opts.mode {
            Mode::Args => Error::Usage(b"no recipients".to_vec()),
            _ => data("no recipients in the header"),
        });
    }
    Ok(Envelope {
        sender,
        recipients: list,
    })
}

/// A new Message-ID: `<SECS.PID.RANDOM@idhost>`.
pub fn message_id(id: &Identity) -> Vec<u8> {
    format!(
        "<{}.{}.{}@",
        crate::sys::now(),
        std::process::id(),
        crate::sys::random_hex(8)
    )
    .into_bytes()
    .into_iter()
    .chain(id.id_host.iter().copied())
    .chain(b">".iter().copied())
    .collect()
}

/// Reads the header from `inp`: (header bytes, first body piece if the
/// header ended at a line that is not a field).
fn read_header<R: Read>(inp: &mut Input<R>) -> Result<(Vec<u8>, Option<Vec<u8>>), Error> {
    let mut h = Vec::new();
    let mut first = true;
    loop {
        let room = header::MAX_HEADER.saturating_sub(h.len()).max(2);
        let piece = match inp.next(room) {
            Ok(Some(p)) => p.to_vec(),
            Ok(None) => break,
            Err(e) => {
                return Err(Error::Temp(
                    format!("unable to read message: {}", crate::exit::errtext(&e)).into_bytes(),
                ))
            }
        };
        let piece = &piece[..];
        if !piece.ends_with(b"\n") && !inp.at_end() {
            return Err(data("header too long"));
        }
        if first && piece.starts_with(b"From ") {
            first = false;
            continue;
        }
        first = false;
        if piece == b"\n" {
            break;
        }
        let cont = (piece[0] == b' ' || piece[0] == b'\t') && !h.is_empty();
        if cont || header::field_name(piece).is_some() {
            h.extend_from_slice(piece);
            if !h.ends_with(b"\n") {
                h.push(b'\n');
            }
            continue;
        }
        return Ok((h, Some(piece.to_vec())));
    }
    Ok((h, None))
}

/// Where the message goes.
enum Sink<W: Write> {
    Print(W),
    Queue(Queue),
}

impl<W: Write> Sink<W> {
    fn put(&mut self, b: &[u8]) -> Result<(), Error> {
        match self {
            Sink::Print(w) => w.write_all(b).map_err(|e| {
                Error::Temp(format!("unable to write: {}", crate::exit::errtext(&e)).into_bytes())
            }),
            Sink::Queue(q) => {
                q.write(b);
                Ok(())
            }
        }
    }
}

/// Reads the message from `input`, completes it and queues it (or, with
/// `opts.print`, writes it to `out`). Ok holds the queue's id text.
pub fn inject<R: Read, W: Write>(
    opts: &Options,
    id: &Identity,
    input: R,
    out: W,
) -> Result<Vec<u8>, Error> {
    let mut inp = Input::new(input, opts.dot);
    let (h, first_body) = read_header(&mut inp)?;
    let date = crate::date::now().into_bytes();
    let hdr = complete(&h, id, opts.name.as_deref(), &date, &message_id(id));
    let env = if opts.print {
        None
    } else {
        Some(envelope(opts, id, &hdr)?)
    };
    let mut sink = if opts.print {
        Sink::Print(out)
    } else {
        match Queue::start() {
            Ok(q) => Sink::Queue(q),
            Err(e) => {
                return Err(Error::Temp(
                    format!("unable to run the queue: {}", crate::exit::errtext(&e)).into_bytes(),
                ))
            }
        }
    };
    sink.put(&hdr.bytes)?;
    sink.put(b"\n")?;
    if let Some(b) = first_body {
        sink.put(&b)?;
    }
    loop {
        match inp.next(65536) {
            Ok(Some(p)) => sink.put(p)?,
            Ok(None) => break,
            Err(e) => {
                return Err(Error::Temp(
                    format!("unable to read message: {}", crate::exit::errtext(&e)).into_bytes(),
                ))
            }
        }
    }
    match (sink, env) {
        (Sink::Print(mut w), _) => {
            w.flush().map_err(|e| {
                Error::Temp(format!("unable to write: {}", crate::exit::errtext(&e)).into_bytes())
            })?;
            Ok(Vec::new())
        }
        (Sink::Queue(q), Some(env)) => match q.finish(&env.encode()) {
            Outcome::Queued(id) => Ok(id),
            Outcome::Perm(t) => Err(Error::Perm(t)),
            Outcome::Temp(t) => Err(Error::Temp(t)),
        },
        (Sink::Queue(_), None) => Err(Error::Temp(b"internal error: no envelope".to_vec())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ident() -> Identity {
        Identity {
            user: b"joe".to_vec(),
            host: b"host.example".to_vec(),
            name: Vec::new(),
            default_domain: b"dom.example".to_vec(),
            id_host: b"id.example".to_vec(),
            suser: b"joe".to_vec(),
            shost: b"host.example".to_vec(),
            flags: Vec::new(),
        }
    }

    fn done(h: &[u8]) -> Header {
        complete(h, &ident(), None, b"DATE", b"<ID>")
    }

    #[test]
    fn completes_missing_fields() {
        let h = done(b"Subject: hi\n");
        assert_eq!(h.bytes, b"Subject: hi\nDate: DATE\nFrom: joe@host.example\nMessage-ID: <ID>\nTo: undisclosed-recipients: ;\n");
        let h = complete(
            b"To: a@b\nDate: x\n",
            &ident(),
            Some(b"Doe, J"),
            b"D",
            b"<I>",
        );
        assert_eq!(
            h.bytes,
            b"To: a@b\nDate: x\nFrom: \"Doe, J\" <joe@host.example>\nMessage-ID: <I>\n"
        );
    }

    #[test]
    fn bcc_return_path_and_recipients() {
        let h = done(b"To: \"Doe, J\" <j@x>, bare\nCc: list: c@d, e@f;\nBcc: secret@s\nReturn-Path: <rp@r>\nContent-Length: 5\nFrom: me\n");
        assert_eq!(
            h.bytes,
            b"To: \"Doe, J\" <j@x>, bare@dom.example\nCc: list: c@d, e@f;\nFrom: me@dom.example\nDate: DATE\nMessage-ID: <ID>\n".to_vec()
        );
        let r: Vec<&[u8]> = h.recipients.iter().map(|v| &v[..]).collect();
        assert_eq!(
            r,
            [
                &b"j@x"[..],
                b"bare@dom.example",
                b"c@d",
                b"e@f",
                b"secret@s"
            ]
        );
        assert_eq!(h.return_path.as_deref(), Some(&b"rp@r"[..]));
    }

    #[test]
    fn resent_messages() {
        let h = done(b"From: a@b\nTo: old@x\nResent-To: new@y\nResent-Bcc: hid@z\n");
        assert_eq!(h.bytes, b"From: a@b\nTo: old@x\nResent-To: new@y\nResent-Date: DATE\nResent-From: joe@host.example\nResent-Message-ID: <ID>\n".to_vec());
        assert_eq!(h.recipients, vec![b"new@y".to_vec(), b"hid@z".to_vec()]);
    }

    #[test]
    fn envelopes_by_mode() {
        let id = ident();
        let h = done(b"To: t@x\nReturn-Path: <>\n");
        let mut o = Options {
            recipients: vec![b"a@b".to_vec(), b"u".to_vec()],
            ..Options::default()
        };
        let e = envelope(&o, &id, &h).unwrap();
        assert_eq!(
            e.recipients,
            vec![b"a@b".to_vec(), b"u@dom.example".to_vec()]
        );
        assert_eq!(e.sender, b"");
        o.mode = Mode::Both;
        assert_eq!(envelope(&o, &id, &h).unwrap().recipients.len(), 3);
        o.mode = Mode::Header;
        assert_eq!(
            envelope(&o, &id, &h).unwrap().recipients,
            vec![b"t@x".to_vec()]
        );
        o.sender = Some(b"s@t".to_vec());
        assert_eq!(envelope(&o, &id, &h).unwrap().sender, b"s@t");
        let o = Options {
            mode: Mode::Args,
            ..Options::default()
        };
        assert!(matches!(envelope(&o, &id, &h), Err(Error::Usage(_))));
        let o = Options::default();
        let h2 = done(b"Subject: x\n");
        assert!(matches!(envelope(&o, &id, &h2), Err(Error::Data(_))));
        let o = Options {
            recipients: vec![b"a@b".to_vec()],
            ..Options::default()
        };
        assert_eq!(envelope(&o, &id, &h2).unwrap().sender, b"joe@host.example");
        let o = Options {
            recipients: vec![b"a\x01b@c".to_vec()],
            ..Options::default()
        };
        assert!(matches!(envelope(&o, &id, &h2), Err(Error::Data(_))));
        let o = Options {
            recipients: vec![b"a@b, Name <c@d>".to_vec(), b"a@b".to_vec()],
            ..Options::default()
        };
        assert_eq!(
            envelope(&o, &id, &h2).unwrap().recipients,
            vec![b"a@b".to_vec(), b"c@d".to_vec()]
        );
    }

    #[test]
    fn prints_with_dot_and_crlf() {
        let o = Options {
            print: true,
            dot: true,
            ..Options::default()
        };
        let mut out = Vec::new();
        inject(
            &o,
            &ident(),
            &b"From x\r\nSubject: a\r\n\r\nbody\r\n..\r\n.\r\nafter\r\n"[..],
            &mut out,
        )
        .unwrap();
        let s = String::from_utf8_lossy(&out).into_owned();
        assert!(s.starts_with("Subject: a\nDate: "), "{}", s);
        assert!(s.ends_with("\n\nbody\n..\n"), "{}", s);
        let mut out = Vec::new();
        inject(
            &o,
            &ident(),
            &b"Subject: a\nno colon here\nbody\n"[..],
            &mut out,
        )
        .unwrap();
        assert!(String::from_utf8_lossy(&out).ends_with(";\n\nno colon here\nbody\n"));
    }
}

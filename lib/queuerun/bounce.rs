//! Delivery status notifications (RFC 3464): one per message and round,
//! gathering every recipient whose outcome is owed to the sender (failed
//! for good, delayed, and with NOTIFY=SUCCESS delivered or relayed).

/// What a DSN says became of a recipient (RFC 3464 2.3.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Failed,
    Delayed,
    /// Delivered here (NOTIFY=SUCCESS).
    Delivered,
    /// Handed to a peer that does not offer DSN (NOTIFY=SUCCESS).
    Relayed,
}

impl Action {
    fn name(self) -> &'static [u8] {
        match self {
            Action::Failed => b"failed",
            Action::Delayed => b"delayed",
            Action::Delivered => b"delivered",
            Action::Relayed => b"relayed",
        }
    }
    fn class(self) -> u8 {
        match self {
            Action::Failed => b'5',
            Action::Delayed => b'4',
            _ => b'2',
        }
    }
}

/// One recipient and its delivery report.
#[derive(Debug, Clone)]
pub struct Failure {
    pub addr: Vec<u8>,
    pub text: Vec<u8>,
    pub action: Action,
    /// ORCPT (addr-type, address), for Original-Recipient.
    pub orcpt: Option<(Vec<u8>, Vec<u8>)>,
}

/// Whom a bounce goes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// To the original sender, null envelope sender.
    Bounce(Vec<u8>),
    /// The original sender was null: to doublebounceto@doublebouncehost,
    /// envelope sender `#@[]`.
    Double(Vec<u8>),
    /// A double bounce failed: discarded.
    Triple,
}

/// The sender a double bounce carries (qmail's).
pub const DOUBLE_SENDER: &[u8] = b"#@[]";

/// Who gets the bounce for a message from `sender`.
pub fn kind(sender: &[u8], cfg: &super::Config) -> Kind {
    if sender == DOUBLE_SENDER {
        Kind::Triple
    } else if sender.is_empty() {
        let mut a = cfg.doublebounceto.clone();
        a.push(b'@');
        a.extend_from_slice(&cfg.doublebouncehost);
        Kind::Double(a)
    } else {
        Kind::Bounce(sender.to_vec())
    }
}

/// The RFC 3463 status in a report's `(#x.y.z)`, else 5.0.0. A temporary
/// status in a report that became permanent is given class 5.
pub fn status(text: &[u8]) -> Vec<u8> {
    status_class(text, b'5')
}

/// The status of a report, given class `class` (4 for a delay notice).
pub fn status_class(text: &[u8], class: u8) -> Vec<u8> {
    let mut found: Option<Vec<u8>> = None;
    let mut i = 0;
    while let Some(p) = memchr::memmem::find(&text[i..], b"(#") {
        let s = &text[i + p + 2..];
        let end = memchr::memchr(b')', s).unwrap_or(s.len());
        let code = &s[..end];
        let parts: Vec<&[u8]> = code.split(|&c| c == b'.').collect();
        if parts.len() == 3
            && matches!(parts[0], b"2" | b"4" | b"5")
            && parts[1..]
                .iter()
                .all(|p| !p.is_empty() && p.len() <= 3 && p.iter().all(u8::is_ascii_digit))
        {
            found = Some(code.to_vec());
        }
        i += p + 2;
    }
    let found = found.or_else(|| said_status(text));
    let mut s = found.unwrap_or_else(|| b"5.0.0".to_vec());
    s[0] = class;
    s
}

/// The enhanced code in `Remote host said: 550 5.1.1 ...`, if any.
fn said_status(text: &[u8]) -> Option<Vec<u8>> {
    let key = b"Remote host said: ";
    let i = memchr::memmem::find(text, key)?;
    let rest = &text[i + key.len()..];
    let mut w = rest.split(|&c| c == b' ' || c == b'-');
    w.next()?;
    let code = w.next()?;
    let parts: Vec<&[u8]> = code.split(|&c| c == b'.').collect();
    let ok = parts.len() == 3
        && matches!(parts[0], b"2" | b"4" | b"5")
        && parts[1..]
            .iter()
            .all(|p| !p.is_empty() && p.len() <= 3 && p.iter().all(u8::is_ascii_digit));
    if ok {
        Some(code.to_vec())
    } else {
        None
    }
}

/// A header-safe copy: printable ASCII kept, other bytes as `?`, one line.
fn safe(b: &[u8], max: usize) -> Vec<u8> {
    let mut v: Vec<u8> = b
        .iter()
        .map(|&c| match c {
            b'\n' | b'\r' | b'\t' => b' ',
            0x20..=0x7e => c,
            _ => b'?',
        })
        .collect();
    v.truncate(max);
    v
}

/// The Diagnostic-Code value: `smtp; REPLY` after "Remote host said:",
/// else `x-pipemail; TEXT`.
pub fn diagnostic(text: &[u8]) -> Vec<u8> {
    let key = b"Remote host said: ";
    let mut v = Vec::new();
    match memchr::memmem::find(text, key) {
        Some(i) => {
            v.extend_from_slice(b"smtp; ");
            v.extend_from_slice(&safe(&text[i + key.len()..], 900));
        }
        None => {
            v.extend_from_slice(b"x-pipemail; ");
            v.extend_from_slice(&safe(crate::parse::trim(text), 900));
        }
    }
    while v.last() == Some(&b' ') {
        v.pop();
    }
    v
}

/// The Remote-MTA value (`dns; [address]`) when the report names the
/// peer that answered: remote-send's `ADDRESS does not like ...` or
/// `Connected to ADDRESS but ...` before "Remote host said:".
pub fn remote_mta(text: &[u8]) -> Option<Vec<u8>> {
    memchr::memmem::find(text, b"Remote host said: ")?;
    let t = text.strip_prefix(b"Connected to ").unwrap_or(text);
    let end = t.iter().position(|&c| c == b' ' || c == b'\n')?;
    let ip: std::net::IpAddr = std::str::from_utf8(&t[..end]).ok()?.parse().ok()?;
    Some(format!("dns; [{}]", ip).into_bytes())
}

/// An ORCPT address as a DSN field shows it: as it is when it is
/// printable ASCII, else in xtext (RFC 3464 2.3.1).
fn orcpt_text(a: &[u8]) -> Vec<u8> {
    if a.iter().all(|&c| (0x20..0x7f).contains(&c)) && a.len() <= 900 {
        a.to_vec()
    } else {
        crate::smtp::dsn::xtext_encode(&a[..a.len().min(300)])
    }
}

/// What a bounce needs to know about the original message.
pub struct Original<'a> {
    pub id: &'a str,
    pub birth: u64,
    /// The stored message (or, when it is large, just its header).
    pub message: &'a [u8],
    /// Whether `message` is the whole message.
    pub whole: bool,
    /// ENVID, for Original-Envelope-Id.
    pub envid: Option<&'a [u8]>,
}

/// The largest original attached whole; larger ones get their header only.
pub const ATTACH_MAX: u64 = 100_000;

/// The header of a message: up to and including the blank line.
pub fn header_of(m: &[u8]) -> &[u8] {
    &m[..crate::header::body_start(m, 0, m.len())]
}

/// The paragraph of the text part that introduces the recipients of
/// one action.
fn intro(a: Action, double: bool) -> &'static [u8] {
    match a {
        Action::Failed if double => {
            b"I tried to deliver a bounce message to this address, but the bounce bounced!\n\n"
        }
        Action::Failed => {
            b"I'm afraid I wasn't able to deliver your message to the following addresses.\n\
              This is a permanent error; I've given up. Sorry it didn't work out.\n\n"
        }
        Action::Delayed => {
            b"Your message has not been delivered yet to the following addresses.\n\
              This is only a warning; I'll keep trying. You need not send it again.\n\n"
        }
        Action::Delivered => b"Your message was delivered to the following addresses.\n\n",
        Action::Relayed => {
            b"Your message was passed on to the following addresses. The system that\n\
              took it does not report delivery: this is the last notice you get about them.\n\n"
        }
    }
}

/// Builds the DSN message (LF line ends, as the queue stores messages)
/// about `fails`, each with its action: a bounce, a delay notice (with
/// `until`, Will-Retry-Until) or a success notice, or several of them.
pub fn build(
    cfg: &super::Config,
    to: &[u8],
    double: bool,
    orig: &Original,
    fails: &[Failure],
    until: Option<u64>,
    now: u64,
) -> Vec<u8> {
    let boundary = format!("pipemail-{}-{}", now, crate::sys::random_hex(8));
    let has = |a: Action| fails.iter().any(|f| f.action == a);
    let mut m = Vec::with_capacity(orig.message.len() + 2048);
    let me = safe(&cfg.me, 200);
    let host = safe(&cfg.bouncehost, 200);
    let push = |m: &mut Vec<u8>, parts: &[&[u8]]| {
        for p in parts {
            m.extend_from_slice(p);
        }
    };
    push(
        &mut m,
        &[b"Date: ", crate::date::rfc5322(now).as_bytes(), b"\n"],
    );
    push(
        &mut m,
        &[b"From: ", &safe(&cfg.bouncefrom, 200), b"@", &host, b"\n"],
    );
    push(&mut m, &[b"To: ", &safe(to, 900), b"\n"]);
    push(
        &mut m,
        &[
            b"Subject: ",
            match (has(Action::Failed), has(Action::Delayed), double) {
                (true, _, true) => b"failure notice (double bounce)",
                (true, _, false) => b"failure notice",
                (false, true, _) => b"delivery delayed notice",
                (false, false, _) => b"delivery notice",
            },
            b"\n",
        ],
    );
    push(
        &mut m,
        &[b"Message-ID: <", boundary.as_bytes(), b"@", &host, b">\n"],
    );
    push(
        &mut m,
        &[b"Auto-Submitted: auto-replied\nMIME-Version: 1.0\n"],
    );
    push(
        &mut m,
        &[
            b"Content-Type: multipart/report; report-type=delivery-status;\n\tboundary=\"",
            boundary.as_bytes(),
            b"\"\n\n",
        ],
    );
    push(
        &mut m,
        &[
            b"This is a MIME-formatted delivery status notification.\n\n--",
            boundary.as_bytes(),
            b"\n",
        ],
    );
    push(&mut m, &[b"Content-Type: text/plain; charset=us-ascii\n\n"]);
    push(
        &mut m,
        &[b"Hi. This is the queue-run program at ", &host, b".\n"],
    );
    for a in [
        Action::Failed,
        Action::Delayed,
        Action::Delivered,
        Action::Relayed,
    ] {
        if !has(a) {
            continue;
        }
        m.extend_from_slice(intro(a, double));
        for f in fails.iter().filter(|f| f.action == a) {
            push(&mut m, &[b"<", &safe(&f.addr, 900), b">:\n"]);
            for line in crate::parse::trim(&f.text).split(|&c| c == b'\n') {
                push(&mut m, &[&safe(line, 900), b"\n"]);
            }
            m.push(b'\n');
        }
    }
    push(
        &mut m,
        &[
            b"--",
            boundary.as_bytes(),
            b"\nContent-Type: message/delivery-status\n\n",
        ],
    );
    if let Some(e) = orig.envid {
        push(&mut m, &[b"Original-Envelope-Id: ", &safe(e, 200), b"\n"]);
    }
    push(&mut m, &[b"Reporting-MTA: dns; ", &me, b"\n"]);
    push(
        &mut m,
        &[b"X-Pipemail-Queue-ID: ", orig.id.as_bytes(), b"\n"],
    );
    push(
        &mut m,
        &[
            b"Arrival-Date: ",
            crate::date::rfc5322(orig.birth).as_bytes(),
            b"\n",
        ],
    );
    for f in fails {
        m.push(b'\n');
        if let Some((ty, a)) = &f.orcpt {
            push(
                &mut m,
                &[
                    b"Original-Recipient: ",
                    &safe(ty, 40),
                    b"; ",
                    &orcpt_text(a),
                    b"\n",
                ],
            );
        }
        push(
            &mut m,
            &[
                b"Final-Recipient: rfc822; ",
                &safe(&crate::smtp::path::quote(&f.addr), 900),
                b"\n",
            ],
        );
        push(
            &mut m,
            &[
                b"Action: ",
                f.action.name(),
                b"\nStatus: ",
                &status_class(&f.text, f.action.class()),
                b"\n",
            ],
        );
        if let Some(r) = remote_mta(&f.text) {
            push(&mut m, &[b"Remote-MTA: ", &r, b"\n"]);
        }
        push(&mut m, &[b"Diagnostic-Code: ", &diagnostic(&f.text), b"\n"]);
        push(
            &mut m,
            &[
                b"Last-Attempt-Date: ",
                crate::date::rfc5322(now).as_bytes(),
                b"\n",
            ],
        );
        if let Some(u) = until.filter(|_| f.action == Action::Delayed) {
            push(
                &mut m,
                &[
                    b"Will-Retry-Until: ",
                    crate::date::rfc5322(u).as_bytes(),
                    b"\n",
                ],
            );
        }
    }
    push(&mut m, &[b"\n--", boundary.as_bytes(), b"\n"]);
    if orig.whole {
        m.extend_from_slice(b"Content-Type: message/rfc822\n\n");
    } else {
        m.extend_from_slice(b"Content-Type: text/rfc822-headers\n\n");
    }
    m.extend_from_slice(orig.message);
    if !m.ends_with(b"\n") {
        m.push(b'\n');
    }
    push(&mut m, &[b"\n--", boundary.as_bytes(), b"--\n"]);
    m
}

#[cfg(test)]
mod tests {
    use super::*;
    fn cfg() -> crate::queuerun::Config {
        crate::queuerun::Config {
            concurrency_local: 10,
            concurrency_remote: 20,
            lifetime: 604800,
            bouncedelay: 14400,
            me: b"mx.example".to_vec(),
            bouncefrom: b"MAILER-DAEMON".to_vec(),
            bouncehost: b"mx.example".to_vec(),
            doublebounceto: b"postmaster".to_vec(),
            doublebouncehost: b"mx.example".to_vec(),
            limits: crate::queuerun::store::Limits { bytes: 0 },
        }
    }
    #[test]
    fn statuses() {
        assert_eq!(
            status(b"Sorry, no mailbox here by that name. (#5.1.1)"),
            b"5.1.1"
        );
        assert_eq!(status(b"no code"), b"5.0.0");
        assert_eq!(
            status(b"temp (#4.3.0) I'm not going to try again"),
            b"5.3.0"
        );
        assert_eq!(status(b"(#x) and (#5.7.1)"), b"5.7.1");
        assert_eq!(
            status(b"x\nRemote host said: 550 5.1.1 no such user"),
            b"5.1.1"
        );
        assert_eq!(status(b"x\nRemote host said: 450 mailbox busy"), b"5.0.0");
        assert_eq!(
            diagnostic(b"1.2.3.4 does not like recipient.\nRemote host said: 550 5.1.1 no"),
            b"smtp; 550 5.1.1 no"
        );
        assert_eq!(diagnostic(b"bad\nthing\n"), b"x-pipemail; bad thing");
        // No trailing space, whatever the reply ended with.
        assert_eq!(
            diagnostic(b"x\nRemote host said: 550 no \n"),
            b"smtp; 550 no"
        );
        assert_eq!(status_class(b"x (#4.2.1)", b'4'), b"4.2.1");
        assert_eq!(
            remote_mta(b"127.0.0.1 does not like recipient.\nRemote host said: 450 x"),
            Some(b"dns; [127.0.0.1]".to_vec())
        );
        assert_eq!(
            remote_mta(b"Connected to ::1 but sender was rejected.\nRemote host said: 5"),
            Some(b"dns; [::1]".to_vec())
        );
        assert_eq!(remote_mta(b"temporary trouble (#4.2.1)"), None);
    }
    #[test]
    fn kinds() {
        let c = cfg();
        assert_eq!(kind(b"a@b", &c), Kind::Bounce(b"a@b".to_vec()));
        assert_eq!(
            kind(b"", &c),
            Kind::Double(b"postmaster@mx.example".to_vec())
        );
        assert_eq!(kind(b"#@[]", &c), Kind::Triple);
    }
    #[test]
    fn dsn_shape() {
        let o = Original {
            id: "1.2.3",
            birth: 0,
            message: b"Subject: x\n\nbody\n",
            whole: true,
            envid: None,
        };
        let f = [
            Failure {
                addr: b"u@x".to_vec(),
                text: b"no (#5.1.1)".to_vec(),
                action: Action::Failed,
                orcpt: None,
            },
            Failure {
                addr: b"john doe@x".to_vec(),
                text: b"no (#5.1.1)".to_vec(),
                action: Action::Failed,
                orcpt: None,
            },
        ];
        let m = build(&cfg(), b"a@b", false, &o, &f, None, 10);
        let s = String::from_utf8(m).unwrap();
        assert!(s.contains("Final-Recipient: rfc822; u@x\nAction: failed\nStatus: 5.1.1\n"));
        // RFC 3464 2.3.2: the address as it goes on the wire, quoted.
        assert!(s.contains("Final-Recipient: rfc822; \"john doe\"@x\n"));
        assert!(s.contains("Content-Type: message/rfc822\n\nSubject: x\n\nbody\n"));
        assert_eq!(header_of(b"A: b\n\nbody"), b"A: b\n\n");
    }
    #[test]
    fn success_and_orcpt() {
        let o = Original {
            id: "1.2.3",
            birth: 0,
            message: b"Subject: x\n\n",
            whole: false,
            envid: Some(b"QQ314159"),
        };
        let f = [Failure {
            addr: b"u@x".to_vec(),
            text: b"127.0.0.1 accepted message.\nRemote host said: 250 ok".to_vec(),
            action: Action::Relayed,
            orcpt: Some((b"rfc822".to_vec(), b"U@X".to_vec())),
        }];
        let s = String::from_utf8(build(&cfg(), b"a@b", false, &o, &f, None, 10)).unwrap();
        assert!(s.contains("Subject: delivery notice\n"));
        assert!(s.contains("\n\nOriginal-Envelope-Id: QQ314159\nReporting-MTA: dns; mx.example\n"));
        assert!(s.contains(
            "\nOriginal-Recipient: rfc822; U@X\nFinal-Recipient: rfc822; u@x\nAction: relayed\nStatus: 2.0.0\nRemote-MTA: dns; [127.0.0.1]\nDiagnostic-Code: smtp; 250 ok\n"
        ));
        assert!(s.contains("Content-Type: text/rfc822-headers\n\nSubject: x\n"));
        assert_eq!(orcpt_text(b"\xc3\xa9@x"), b"+C3+A9@x");
    }
}

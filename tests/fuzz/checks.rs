//! What each fuzz target checks, one function per target.
//!
//! The cargo-fuzz targets in fuzz_targets/ call these, and so does the plain
//! `cargo test` module tests/it/fuzzreg.rs, which replays every saved input
//! under tests/fuzz/seeds/ and tests/fuzz/regressions/ without libFuzzer.
//! A check panics when a property fails; the library code under test must
//! never panic, loop or allocate without bound on any input.
#![allow(dead_code)]

use pipemail::dns::packet;
use pipemail::queue;
use pipemail::remote::message;

use pipemail::remote::downgrade;

/// A target's check.
pub type Check = fn(&[u8]);

/// Every target by name, for the replay test.
pub const TARGETS: &[(&str, Check)] = &[
    ("envelope", envelope),
    ("dns_answer", dns_answer),
    ("remote_message", remote_message),
    ("remote_downgrade", remote_downgrade),
    ("remote_reply", remote_reply),
    ("smtproutes", smtproutes),
    ("dotqmail", dotqmail),
    ("users_assign", users_assign),
    ("auth", auth),
    ("mbox_quote", mbox_quote),
    ("pop3", pop3),
    ("smtp_data", smtp_data),
    ("smtp_bdat", smtp_bdat),
    ("smtp_path", smtp_path),
    ("dsn_xtext", dsn_xtext),
    ("dsn_params", dsn_params),
    ("rules", rules),
    ("header", header),
    ("submit_input", submit_input),
    ("queuerun", queuerun),
    ("imap", imap),
    ("imap_command", imap_command),
    ("mime", mime),
];

/// queue::parse_envelope, envelope_end and received_uid.
///
/// Properties: an accepted envelope encodes back to exactly the input, its
/// end is the end of the input, no address is over MAX_ADDR and every
/// recipient is non-empty; envelope_end, when it finds one, ends on the
/// terminating NUL of a run of fields (and parses to the same as the prefix).
pub fn envelope(d: &[u8]) {
    match queue::parse_envelope(d) {
        Ok(e) => {
            assert_eq!(e.encode(), d, "envelope does not round-trip");
            assert_eq!(queue::envelope_end(d), Some(d.len()));
            assert!(e.sender.len() <= queue::MAX_ADDR);
            assert!(!e.recipients.is_empty());
            for r in &e.recipients {
                assert!(!r.is_empty() && r.len() <= queue::MAX_ADDR);
                assert!(!r.contains(&0));
            }
            assert!(!e.sender.contains(&0));
        }
        Err(code) => assert!(
            code == queue::code::ENVELOPE || code == queue::code::ADDR_TOO_LONG,
            "unexpected code {}",
            code
        ),
    }
    if let Some(n) = queue::envelope_end(d) {
        assert!(n >= 1 && n <= d.len());
        assert_eq!(d[n - 1], 0);
        assert!(n == 1 || d[n - 2] == 0, "end is not an empty field");
        // The prefix parses the same whether or not junk follows it.
        if let Ok(e) = queue::parse_envelope(&d[..n]) {
            assert_eq!(e.encode(), &d[..n]);
        }
    }
    // The first line of the message as queue-run would check it.
    let line = match d.iter().position(|&c| c == b'\n') {
        Some(i) => &d[..i],
        None => d,
    };
    if queue::received_uid(line).is_some() {
        assert!(line.starts_with(b"Received: (pipemail "));
    }
    // The same bytes as a drop file (pipemail-queue(5)): a tail found is
    // inside the file, and a section that parses round-trips.
    if d.len() >= queue::TAIL_LEN {
        let tail = &d[d.len() - queue::TAIL_LEN..];
        if let Some((off, ver)) = queue::tail_offset(tail, d.len() as u64) {
            assert!(off as usize + queue::TAIL_LEN <= d.len());
            let sec = &d[off as usize..d.len() - queue::TAIL_LEN];
            if let Some(e) = queue::parse_section("1.2.x", ver, sec) {
                // A version 2 file without DSN parameters is written as 1.
                let t = queue::trailer("1.2.x", &e.encode(), &e.dsn, off);
                if ver == 1 || !e.dsn.is_empty() {
                    // The D text is canonical only as this code writes it.
                    let again =
                        queue::tail_offset(&t[t.len() - queue::TAIL_LEN..], off + t.len() as u64);
                    let tsec = &t[..t.len() - queue::TAIL_LEN];
                    assert_eq!(again.map(|a| a.0), Some(off));
                    assert_eq!(
                        queue::parse_section("1.2.x", again.unwrap().1, tsec),
                        Some(e)
                    );
                }
            }
        }
    }
    // A drop file built from this envelope parses back to it.
    if let Ok(e) = queue::parse_envelope(d) {
        let mut f = b"Received: x\n".to_vec();
        let n = f.len() as u64;
        f.extend_from_slice(&queue::trailer("9.9.id", d, &e.dsn, n));
        let off = queue::tail_offset(&f[f.len() - queue::TAIL_LEN..], f.len() as u64);
        assert_eq!(off, Some((n, 1)));
        let sec = &f[n as usize..f.len() - queue::TAIL_LEN];
        assert_eq!(queue::parse_section("9.9.id", 1, sec), Some(e));
    }
}

/// dns::packet: parse an answer to a fixed MX question (its id taken from
/// the input so the fuzzer can reach past the id check), decode every
/// record every way, and read a name at every early offset; then the
/// name encoder against the name reader with the input as a name.
///
/// Properties: no panic or hang on any packet; every name read is at most
/// 253 bytes of lower-case text; every offset returned lies inside the
/// packet; every record's data lies inside the packet; encode_name's output
/// reads back as the (lower-cased, final-dot-less) name it encoded.
pub fn dns_answer(d: &[u8]) {
    let id = match d {
        [a, b, ..] => u16::from_be_bytes([*a, *b]),
        _ => 0,
    };
    for qtype in [packet::TYPE_MX, packet::TYPE_A] {
        let q = packet::query(id, b"example.org", qtype).expect("query");
        if let Ok(a) = packet::parse(d, &q) {
            assert!(a.rcode < 16);
            for r in &a.answers {
                assert!(r.rdata + r.rdlen <= d.len());
                check_name(&r.name);
                let _ = packet::rdata(d, r);
                if let Ok(n) = packet::rdata_name(d, r) {
                    check_name(&n);
                }
                if let Ok((_, n)) = packet::rdata_mx(d, r) {
                    check_name(&n);
                }
                if let Ok(t) = packet::rdata_txt(d, r) {
                    assert!(t.len() <= r.rdlen);
                }
            }
        }
    }
    for at in 0..d.len().min(48) {
        if let Ok((n, end)) = packet::read_name(d, at) {
            check_name(&n);
            assert!(end > at && end <= d.len());
        }
    }
    if let Some(w) = packet::encode_name(d) {
        assert!(w.len() <= 255);
        let (n, end) = packet::read_name(&w, 0).expect("encoded name reads back");
        assert_eq!(end, w.len());
        let want = d.strip_suffix(b".").unwrap_or(d).to_ascii_lowercase();
        assert_eq!(n, want);
    }
}

fn check_name(n: &[u8]) {
    assert!(n.len() <= 253, "name of {} bytes", n.len());
    assert!(!n.iter().any(|c| c.is_ascii_uppercase()));
}

/// remote::downgrade::fit, for a peer with and without 8BITMIME: it
/// never fails for an 8-bit peer; what it gives has no line over 998
/// octets (between CR or LF) and, for a 7-bit peer, no 8-bit byte; a
/// message it leaves alone already was so, and what it gives is left
/// alone when fitted again.
pub fn remote_downgrade(d: &[u8]) {
    for eightbit in [true, false] {
        let out = match downgrade::fit(d, eightbit) {
            Ok(o) => o,
            Err(_) => {
                assert!(!eightbit, "failed for an 8-bit peer");
                continue;
            }
        };
        for l in out.split(|&c| c == b'\r' || c == b'\n') {
            assert!(l.len() <= downgrade::MAX_LINE, "a line of {}", l.len());
        }
        assert!(eightbit || out.is_ascii(), "8-bit byte for a 7-bit peer");
        assert!(
            matches!(
                downgrade::fit(&out, eightbit),
                Ok(std::borrow::Cow::Borrowed(_))
            ),
            "not stable"
        );
    }
}

/// remote::message::encode, the DATA bytes remote-send writes.
///
/// Properties: the output never has a bare CR or LF (every CR is followed
/// by LF and every LF follows a CR); it ends with CRLF.CRLF (or is just
/// .CRLF for an empty message); no line but the last is a lone `.`; and
/// un-stuffing it (drop the final `.` line, drop one leading dot from each
/// line) gives the input with every line end (CRLF, bare LF, bare CR) as
/// CRLF and a final CRLF added when the input has none.
pub fn remote_message(d: &[u8]) {
    let out = message::encode(d);
    for (i, &c) in out.iter().enumerate() {
        if c == b'\r' {
            assert_eq!(out.get(i + 1), Some(&b'\n'), "bare CR at {}", i);
        }
        if c == b'\n' {
            assert!(i > 0 && out[i - 1] == b'\r', "bare LF at {}", i);
        }
    }
    if d.is_empty() {
        assert_eq!(out, b".\r\n");
        return;
    }
    assert!(out.ends_with(b"\r\n.\r\n"), "does not end with CRLF.CRLF");
    let body = &out[..out.len() - 3];
    let mut unstuffed = Vec::with_capacity(body.len());
    for line in body.split_inclusive(|&c| c == b'\n') {
        assert_ne!(line, b".\r\n", "a lone dot inside the data");
        unstuffed.extend_from_slice(line.strip_prefix(b".").unwrap_or(line));
    }
    assert_eq!(unstuffed, canonical(d));
}

/// The input with CRLF, bare LF and bare CR each as CRLF, ending in CRLF.
fn canonical(d: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(d.len() * 2 + 2);
    let mut i = 0;
    while i < d.len() {
        match d[i] {
            b'\r' if d.get(i + 1) == Some(&b'\n') => {
                v.extend_from_slice(b"\r\n");
                i += 2;
                continue;
            }
            b'\r' | b'\n' => v.extend_from_slice(b"\r\n"),
            c => v.push(c),
        }
        i += 1;
    }
    if !v.ends_with(b"\r\n") {
        v.extend_from_slice(b"\r\n");
    }
    v
}

/// remote::smtp::Reply and Ext: what remote-send makes of a hostile peer's
/// reply. The input is split into lines as Conn::reply does (LF, an
/// optional CR before it dropped; the code from the first line).
///
/// Properties: `said` (which goes into bounce messages and logs) has no
/// control byte but the LF after each line, and at most 512 bytes a line;
/// an enhanced code is `d.d.d` of the reply's class; EHLO parsing never
/// panics.
pub fn remote_reply(d: &[u8]) {
    let mut lines: Vec<Vec<u8>> = d
        .split(|&c| c == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l).to_vec())
        .collect();
    lines.truncate(100);
    let first = lines[0]
        .get(..3)
        .filter(|c| c.iter().all(u8::is_ascii_digit))
        .map(|c| (c[0] - b'0') as u16 * 100 + (c[1] - b'0') as u16 * 10 + (c[2] - b'0') as u16)
        .unwrap_or(0);
    let code = if (200..600).contains(&first) {
        first
    } else {
        0
    };
    let r = pipemail::remote::smtp::Reply { code, lines };
    let said = r.said();
    assert!(said.starts_with(b"Remote host said: "));
    let mut n = 0;
    for l in said.split(|&c| c == b'\n') {
        assert!(
            !l.iter().any(|&c| c < 0x20 || c == 0x7f),
            "control byte in said()"
        );
        n += 1;
        if n > 1 {
            assert!(l.len() <= 512);
        }
    }
    if let Some(e) = r.enhanced() {
        let parts: Vec<&[u8]> = e.split(|&c| c == b'.').collect();
        assert_eq!(parts.len(), 3);
        assert_eq!((parts[0][0] - b'0') as u16, r.class());
    }
    let _ = pipemail::remote::smtp::Ext::parse(&r);
}

/// control/smtproutes lines (remote::routes) and address literals
/// (remote::mx::literal). The input is the file, one route a line; the
/// host looked up is the relay of its first line.
///
/// Properties: no panic; a parsed route's domain and relay are lower case;
/// a port is 1..65535; find agrees with parse_line about which line is bad.
pub fn smtproutes(d: &[u8]) {
    let lines: Vec<Vec<u8>> = d.split(|&c| c == b'\n').map(|l| l.to_vec()).collect();
    let mut first_bad = None;
    for (i, l) in lines.iter().enumerate() {
        match pipemail::remote::routes::parse_line(l) {
            Ok((dom, route)) => {
                assert!(!dom.iter().any(|c| c.is_ascii_uppercase()));
                if let Some(r) = &route.relay {
                    assert!(!r.is_empty());
                    assert!(!r.iter().any(|c| c.is_ascii_uppercase()));
                    let _ = pipemail::remote::mx::literal(r);
                }
                assert_ne!(route.port, Some(0));
            }
            Err(_) => {
                if first_bad.is_none() {
                    first_bad = Some(i + 1);
                }
            }
        }
    }
    let host = lines[0]
        .splitn(2, |&c| c == b':')
        .last()
        .unwrap_or(b"")
        .to_vec();
    match pipemail::remote::routes::find(&lines, &host) {
        Err((n, _)) => assert_eq!(Some(n), first_bad),
        Ok(_) => assert_eq!(first_bad, None),
    }
    let _ = pipemail::remote::mx::literal(d);
}

/// deliver::dotqmail: the dot-file parser and the file-name candidates.
/// The first input byte picks forward_only and splits dash/ext for
/// `candidates`; the rest is the file.
///
/// Properties: no instruction holds a newline; a forward-only file yields
/// only forwards; a forward is a bare address (no blank, control, `<>(,`,
/// at most MAX_ADDR); a Maildir path ends with `/` and an mbox path does
/// not; every candidate name starts with `.qmail`, has no `/` or NUL, and
/// the `-default` ones say which part of the extension they stand for.
pub fn dotqmail(d: &[u8]) {
    use pipemail::deliver::dotqmail::{candidates, parse, Instr};
    let (flag, text) = match d.split_first() {
        Some((f, t)) => (*f, t),
        None => (0, d),
    };
    let forward_only = flag & 1 != 0;
    if let Ok(v) = parse(text, forward_only) {
        for i in &v {
            let b = match i {
                Instr::Maildir(p) => {
                    assert!(p.ends_with(b"/") && (p[0] == b'.' || p[0] == b'/'));
                    p
                }
                Instr::Mbox(p) => {
                    assert!(!p.ends_with(b"/") && (p[0] == b'.' || p[0] == b'/'));
                    p
                }
                Instr::Program(p) => p,
                Instr::Forward(a) => {
                    assert!(!a.is_empty() && a.len() <= queue::MAX_ADDR);
                    assert!(!a
                        .iter()
                        .any(|&c| c <= b' ' || c == 0x7f || b"<>(,".contains(&c)));
                    a
                }
            };
            assert!(!b.contains(&b'\n'), "newline inside an instruction");
            if forward_only {
                assert!(matches!(i, Instr::Forward(_)), "forward-only file delivers");
            }
        }
    }
    // candidates: dash is the first (flag >> 1) % 4 bytes of text, or "-".
    let k = ((flag >> 1) % 4) as usize;
    let (dash, ext): (&[u8], &[u8]) = if k == 0 {
        (b"-", text)
    } else {
        text.split_at(k.min(text.len()))
    };
    let low: Vec<u8> = ext
        .iter()
        .map(|&c| {
            if c == b'.' {
                b':'
            } else {
                c.to_ascii_lowercase()
            }
        })
        .collect();
    for (name, def) in candidates(dash, ext) {
        assert!(name.starts_with(b".qmail"));
        assert!(!name.contains(&b'/') && !name.contains(&0) && name.len() <= 255);
        if let Some(rest) = def {
            assert!(name.ends_with(b"default"));
            assert!(low.ends_with(&rest), "default stands for a non-suffix");
        }
    }
}

/// users::Assign (users/assign). The input is the file; the local part
/// looked up is its last line.
///
/// Properties: no panic; a wildcard match's ext ends with the rest of the
/// local part; the home of a found account is absolute.
pub fn users_assign(d: &[u8]) {
    let path = std::path::Path::new("users/assign");
    let Ok(a) = pipemail::users::Assign::parse(d, path) else {
        return;
    };
    let local = d.rsplit(|&c| c == b'\n').next().unwrap_or(b"");
    for l in [local, &local[..local.len() / 2], b"", b"x"] {
        if let Some(acct) = a.find(l) {
            assert_eq!(acct.home.first(), Some(&b'/'));
            assert!(!acct.user.is_empty());
        }
    }
}

/// auth: base64, SASL PLAIN, the checkpassword fd 3 input, the
/// users/passwd line format and `uid:gid`.
///
/// Properties: base64 decode(encode(x)) == x; a decodable input re-encodes
/// to itself when it is canonical (padded, length a multiple of 4, no
/// stray bits); SASL PLAIN and fd 3 parts contain no NUL and the authcid is
/// non-empty; a parsed passwd entry writes back as a line that parses to
/// the same entry.
pub fn auth(d: &[u8]) {
    use pipemail::auth;
    let e = auth::base64_encode(d);
    assert_eq!(e.len() % 4, 0);
    assert_eq!(auth::base64_decode(&e).as_deref(), Some(d));
    if let Some(v) = auth::base64_decode(d) {
        assert!(v.len() <= d.len() * 3 / 4 + 1);
    }
    if let Some((z, c, p)) = auth::sasl_plain(d) {
        assert!(!z.contains(&0) && !c.contains(&0) && !p.contains(&0));
        assert!(!c.is_empty());
    }
    if let Some((l, p, t)) = auth::checkpw::parse_input(d) {
        assert!(!l.contains(&0) && !p.contains(&0) && !t.contains(&0));
    }
    for l in d.split(|&c| c == b'\n') {
        if let Some(e) = auth::passwd::parse_line(l) {
            let line = e.line();
            let back = auth::passwd::parse_line(&line[..line.len() - 1]);
            assert_eq!(back.as_ref(), Some(&e), "passwd line does not round-trip");
        }
    }
    let _ = auth::passwd::parse(std::path::Path::new("passwd"), d);
    // ct_eq is equality (lengths that differ by a multiple of 65536 too).
    let (a, b) = d.split_at(d.len() / 2);
    assert_eq!(auth::crypt::ct_eq(a, b), a == b);
    assert!(auth::crypt::ct_eq(a, a));
    if d.len() < 8 {
        let long = [d, &[0u8; 65536][..]].concat();
        assert!(
            !auth::crypt::ct_eq(d, &long),
            "ct_eq ignores 65536 trailing NULs"
        );
    }
    let _ = auth::passwd::parse_ids(d);
}

/// mbox::Quoter (mboxrd `>From ` quoting), fed the message in chunks cut
/// where the first input byte says.
///
/// Properties: the output does not depend on how the input is chunked;
/// it ends with a blank line; removing one `>` from each `>*From ` line
/// (and the final added line ends) gives back the input; no line of the
/// output but a quoted one starts with `From `.
pub fn mbox_quote(d: &[u8]) {
    let (cut, msg) = match d.split_first() {
        Some((c, m)) => (*c as usize % 7 + 1, m),
        None => (1, d),
    };
    let whole = quote(&[msg]);
    let chunks: Vec<&[u8]> = msg.chunks(cut).collect();
    assert_eq!(quote(&chunks), whole, "output depends on chunking");
    assert!(whole.ends_with(b"\n\n") || (msg.is_empty() && whole == b"\n"));
    let mut back = Vec::new();
    for l in whole.split_inclusive(|&c| c == b'\n') {
        assert!(!l.starts_with(b"From "), "unquoted From_ line");
        let gt = l.iter().take_while(|&&c| c == b'>').count();
        if gt > 0 && l[gt..].starts_with(b"From ") {
            back.extend_from_slice(&l[1..]);
        } else {
            back.extend_from_slice(l);
        }
    }
    // finish() added "\n" (and one more if the last line was partial).
    let mut want = msg.to_vec();
    if !want.is_empty() && !want.ends_with(b"\n") {
        want.push(b'\n');
    }
    want.push(b'\n');
    if msg.is_empty() {
        want = b"\n".to_vec();
    }
    assert_eq!(back, want);
}

fn quote(chunks: &[&[u8]]) -> Vec<u8> {
    let mut q = pipemail::mbox::Quoter::new();
    let mut out = Vec::new();
    for c in chunks {
        q.feed(&mut out, c).expect("write to a Vec");
    }
    q.finish(&mut out).expect("write to a Vec");
    out
}

/// pop3: command splitting, the RETR/TOP writer and the size it announces.
///
/// Properties: the verb is upper case without a space; the bytes `send`
/// writes have no bare LF, and (un-stuffed) are exactly as long as
/// `read_sent_size` says, which is what LIST and STAT announce; TOP never
/// writes more than RETR; maildir names' sizes and flags parse.
pub fn pop3(d: &[u8]) {
    use pipemail::pop3;
    let (verb, _) = pop3::split_command(d);
    assert!(!verb.contains(&b' ') && !verb.iter().any(|c| c.is_ascii_lowercase()));
    let _ = pipemail::maildir::name::size_in(d, b'W');
    let _ = pipemail::maildir::flags::name_adding(d, pipemail::maildir::flags::SEEN);
    let mut out = Vec::new();
    pop3::maildir::send(d, &mut out, None, |_| Ok(())).expect("send to a Vec");
    for (i, &c) in out.iter().enumerate() {
        if c == b'\n' {
            assert!(i > 0 && out[i - 1] == b'\r', "bare LF at {}", i);
        }
    }
    let mut unstuffed = 0u64;
    for l in out.split_inclusive(|&c| c == b'\n') {
        unstuffed += l.len() as u64 - l.starts_with(b".") as u64;
        assert_ne!(l, b".\r\n", "a lone dot inside RETR");
    }
    let size = pipemail::maildir::lines::read_sent_size(&mut &d[..]).expect("read a slice");
    if !d.is_empty() {
        assert_eq!(unstuffed, size, "RETR length differs from the LIST size");
    }
    let mut top = Vec::new();
    pop3::maildir::send(
        d,
        &mut top,
        Some(d.first().map_or(0, |&c| c as u64 % 4)),
        |_| Ok(()),
    )
    .expect("send to a Vec");
    assert!(out.starts_with(&top));
}

/// The DATA state machine (smtp::data::Data). The first input byte picks
/// the chunk size the input is fed in and the databytes limit; the rest is
/// what the client sends after `354`.
///
/// Properties: only CR LF . CR LF (or . CR LF as the very first line) ends
/// the data, at the first place it occurs; no CR ever reaches the stored
/// message and every stored LF stands for a CR LF; a bare CR or LF anywhere
/// before the terminator refuses the message; a good message is exactly
/// the input's lines, one leading dot removed each, CR LF as LF; databytes
/// holds; the result does not depend on how the input is chunked.
pub fn smtp_data(d: &[u8]) {
    let (sel, input) = match d.split_first() {
        Some((s, i)) => (*s, i),
        None => (0, d),
    };
    let chunk = (sel & 0x0f) as usize + 1;
    let limit = match sel >> 4 {
        0..=7 => 0,
        n => (n as u64 - 7) * 8,
    };
    // Reference: the first CR LF . CR LF, a line start before the input.
    let mut framed = b"\r\n".to_vec();
    framed.extend_from_slice(input);
    let end = framed
        .windows(5)
        .position(|w| w == b"\r\n.\r\n")
        .map(|p| p + 5 - 2);
    let (got_end, out, data) = feed_data(input, limit, chunk);
    assert_eq!(got_end, end, "data ended elsewhere than at CRLF.CRLF");
    let (whole_end, whole_out, whole) = feed_data(input, limit, input.len().max(1));
    assert_eq!(
        (whole_end, &whole_out),
        (got_end, &out),
        "chunking changes DATA"
    );
    assert_eq!(
        (whole.bare, whole.over, whole.stored, whole.hops.count),
        (data.bare, data.over, data.stored, data.hops.count)
    );
    assert!(!out.contains(&b'\r'), "CR in the stored message");
    if limit > 0 {
        assert!(out.len() as u64 <= limit);
    }
    // The content: up to the terminator's ". CR LF" (or all of it).
    let content = match end {
        Some(n) => &input[..n - 3],
        None => input,
    };
    let mut want = Vec::new();
    let mut bare = false;
    let mut rest = content;
    loop {
        let (line, next) = match rest.windows(2).position(|w| w == b"\r\n") {
            Some(p) => (&rest[..p], Some(&rest[p + 2..])),
            None => (rest, None),
        };
        match next {
            Some(r) => {
                if line.contains(&b'\r') || line.contains(&b'\n') {
                    bare = true;
                }
                want.extend_from_slice(line.strip_prefix(b".").unwrap_or(line));
                want.push(b'\n');
                rest = r;
            }
            None => {
                // An unfinished last line (no terminator yet): a CR at its
                // end still waits for its LF.
                if end.is_none() {
                    let l = line.strip_suffix(b"\r").unwrap_or(line);
                    if l.contains(&b'\r') || l.contains(&b'\n') {
                        bare = true;
                    }
                    want.extend_from_slice(l.strip_prefix(b".").unwrap_or(l));
                }
                break;
            }
        }
    }
    assert_eq!(data.bare, bare, "bare CR/LF detection wrong");
    if !data.bare {
        let over = limit > 0 && want.len() as u64 > limit;
        assert_eq!(data.over, over, "databytes");
        if !over {
            assert_eq!(out, want, "stored message differs");
            let mut hops = 0;
            for l in want.split(|&c| c == b'\n') {
                if l.is_empty() {
                    break;
                }
                let l = l.to_ascii_lowercase();
                if l.starts_with(b"received:") || l.starts_with(b"delivered-to:") {
                    hops += 1;
                }
            }
            if end.is_some() {
                assert_eq!(data.hops.count, hops, "hop count");
                // Counting the stored message in chunks (as forward does) agrees.
                let mut h = pipemail::header::Hops::default();
                for c in want.chunks(chunk.max(1)) {
                    h.feed(c);
                }
                assert_eq!(h.count, hops, "hop count of the stored message");
            }
        }
    }
}

/// BDAT framing (smtp::bdat::parse) and BDAT content through the DATA
/// state machine in chunked mode (smtp::data::Data::chunked).
///
/// The first line after the first byte is also a BDAT argument; the first byte
/// picks how the rest is cut into feeds (1 to 16 bytes) and databytes (as
/// in smtp_data). Properties: an accepted argument is digits (the size,
/// leading zeros aside) and nothing else or " LAST" in any case; the
/// content is never ended early (no terminator), cutting it differently
/// changes nothing, the stored bytes have no CR, bare is exactly "a CR not
/// before an LF, or an LF not after a CR" (a CR at the very end counts),
/// and good content is stored as the content with CR LF as LF, a `.`
/// kept, and an LF after an unfinished last line; over is exactly "more
/// than databytes".
pub fn smtp_bdat(d: &[u8]) {
    let first = d.get(1..).unwrap_or(b"").split(|&c| c == b'\n').next();
    let line = first.unwrap_or(b"");
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if let Some((n, last)) = pipemail::smtp::bdat::parse(line) {
        let digits = line.split(|&c| c == b' ').next().unwrap_or(b"");
        assert!(!digits.is_empty() && digits.iter().all(u8::is_ascii_digit));
        let nz = digits
            .iter()
            .position(|&c| c != b'0')
            .unwrap_or(digits.len() - 1);
        assert_eq!(&digits[nz..], n.to_string().as_bytes());
        let rest = &line[digits.len()..];
        assert_eq!(last, !rest.is_empty());
        assert!(rest.is_empty() || rest.eq_ignore_ascii_case(b" LAST"));
    }
    let (sel, input) = match d.split_first() {
        Some((s, i)) => (*s, i),
        None => (0, d),
    };
    let chunk = (sel & 0x0f) as usize + 1;
    let limit = match sel >> 4 {
        0..=7 => 0,
        n => (n as u64 - 7) * 8,
    };
    let run = |size: usize| {
        let mut data = pipemail::smtp::data::Data::chunked(limit);
        let mut out = Vec::new();
        for c in input.chunks(size.max(1)) {
            assert_eq!(data.feed(c, &mut out), None, "BDAT content ended early");
        }
        data.last(&mut out);
        (out, data)
    };
    let (out, data) = run(chunk);
    let (whole_out, whole) = run(input.len());
    assert_eq!(out, whole_out, "cutting changes BDAT content");
    assert_eq!(
        (data.bare, data.over, data.stored),
        (whole.bare, whole.over, whole.stored)
    );
    assert!(!out.contains(&b'\r'), "CR in the stored message");
    let mut want = Vec::new();
    let mut bare = false;
    let mut i = 0;
    while i < input.len() {
        match input[i] {
            b'\r' if input.get(i + 1) == Some(&b'\n') => {
                want.push(b'\n');
                i += 1;
            }
            b'\r' | b'\n' => bare = true,
            c => want.push(c),
        }
        i += 1;
    }
    if want.last().is_some_and(|&c| c != b'\n') {
        want.push(b'\n');
    }
    assert_eq!(data.bare, bare, "bare CR/LF judged wrong");
    if !bare {
        let over = limit > 0 && want.len() as u64 > limit;
        assert_eq!(data.over, over, "databytes judged wrong");
        if !over {
            assert!(out == want, "BDAT content stored wrong");
        }
    }
    if limit > 0 {
        assert!(out.len() as u64 <= limit);
    }
}

fn feed_data(
    input: &[u8],
    limit: u64,
    chunk: usize,
) -> (Option<usize>, Vec<u8>, pipemail::smtp::data::Data) {
    let mut data = pipemail::smtp::data::Data::new(limit);
    let mut out = Vec::new();
    let mut off = 0;
    for c in input.chunks(chunk) {
        if let Some(n) = data.feed(c, &mut out) {
            return (Some(off + n), out, data);
        }
        off += c.len();
    }
    (None, out, data)
}

/// The SMTP command line checks and the path parser (smtp::path), SASL
/// PLAIN and base64 of smtp::auth.
///
/// Properties: a line bad_bytes passes is UTF-8 without control bytes but
/// tab; an accepted path has no NUL or control byte, fits MAX_ADDR and
/// MAX_DOMAIN, and goes through the queue envelope and back unchanged;
/// parameters are non-empty and blank-free; base64 round-trips.
pub fn smtp_path(d: &[u8]) {
    use pipemail::smtp::{self, auth, path};
    if smtp::bad_bytes(d).is_none() {
        let s = std::str::from_utf8(d).expect("bad_bytes passed non-UTF-8");
        assert!(!s.bytes().any(|c| (c < 0x20 && c != b'\t') || c == 0x7f));
    }
    let safe = smtp::safe(d);
    assert!(safe.len() <= 200 && !safe.iter().any(|&c| c <= b' ' || c >= 0x7f));
    match path::parse(d) {
        Ok(p) => {
            let a = &p.addr;
            assert!(a.len() <= path::MAX_ADDR);
            assert!(
                !a.iter().any(|&c| c < 0x20 || c == 0x7f),
                "control byte in an address"
            );
            if let Some(at) = a.iter().rposition(|&c| c == b'@') {
                assert!(a.len() - at - 1 <= path::MAX_DOMAIN);
            }
            for prm in &p.params {
                assert!(!prm.is_empty() && !prm.contains(&b' '));
                if let Some((k, _)) = path::param(prm) {
                    assert!(!k.is_empty() && !k.iter().any(|c| c.is_ascii_lowercase()));
                }
            }
            if !a.is_empty() {
                let env = queue::Envelope {
                    sender: a.clone(),
                    recipients: vec![a.clone()],
                    dsn: Default::default(),
                };
                assert_eq!(queue::parse_envelope(&env.encode()), Ok(env));
            }
        }
        Err(path::PathError::NoDomain(l)) => assert!(l.len() <= path::MAX_ADDR),
        Err(_) => {}
    }
    let e = auth::b64encode(d);
    assert_eq!(auth::b64decode(&e).as_deref(), Some(d));
    let _ = auth::b64decode(d);
    if let Some((u, p)) = auth::plain(d) {
        assert!(!u.contains(&0) && !p.contains(&0));
    }
    let hosts = vec![b"example.org".to_vec(), b".example.net".to_vec()];
    let _ = smtp::rcpthosts_has(&hosts, d);
    let _ = smtp::badmailfrom_has(&hosts, d);
}

/// tcp-serve's rules file (rules::parse, Rules::lookup). The input is the
/// file; addresses looked up come from its last 4 and 16 bytes and a few
/// fixed ones.
///
/// Properties: no panic; a rule found names a line of the file; an IPv4
/// address and its IPv4-mapped IPv6 form find the same rule; variable
/// names are non-empty and have no `=`.
pub fn rules(d: &[u8]) {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
    let Ok(r) = pipemail::rules::parse(d) else {
        return;
    };
    let lines = d.split(|&c| c == b'\n').count();
    let mut v4 = [127, 0, 0, 1];
    if d.len() >= 4 {
        v4.copy_from_slice(&d[d.len() - 4..]);
    }
    let mut v6 = [0u8; 16];
    if d.len() >= 16 {
        v6.copy_from_slice(&d[d.len() - 16..]);
    }
    let ips = [
        IpAddr::V4(Ipv4Addr::from(v4)),
        IpAddr::V6(Ipv6Addr::from(v6)),
        IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
        IpAddr::V6(Ipv6Addr::LOCALHOST),
    ];
    for ip in ips {
        if let Some(rule) = r.lookup(ip) {
            assert!(rule.line >= 1 && rule.line <= lines);
            for (k, _) in &rule.vars {
                assert!(!k.is_empty() && !k.contains(&b'='));
            }
        }
    }
    let a = r.lookup(ips[0]).map(|x| x.line);
    let mapped = IpAddr::V6(Ipv4Addr::from(v4).to_ipv6_mapped());
    assert_eq!(
        r.lookup(mapped).map(|x| x.line),
        a,
        "mapped address differs"
    );
}

/// Header parsing and RFC 2047 (header.rs).
///
/// Properties: header_end's offsets are ordered and inside the input, and
/// the same with all input at once as found incrementally; every field lies
/// in the header; decoding never adds a CR, LF or NUL (no header
/// injection through encoded words); phrase() of 8-bit text decodes back
/// to it; addresses, qualify and envelope_form never panic.
pub fn header(d: &[u8]) {
    use pipemail::header as h;
    let (hl, bs) = h::header_end(d, true).expect("eof gives an end");
    assert!(hl <= bs && bs <= d.len());
    if let Some((a, b)) = h::header_end(d, false) {
        assert_eq!((a, b), (hl, bs), "header_end depends on eof");
    }
    let head = &d[..hl];
    for f in h::fields(head) {
        assert!(f.raw.len() <= head.len());
        assert!(f.value.len() < f.raw.len());
        let u = h::unfold(f.value);
        assert!(!u.contains(&b'\n'));
    }
    let count = |v: &[u8], c: u8| v.iter().filter(|&&x| x == c).count();
    let dec = h::decode(d);
    for c in [b'\n', b'\r', 0] {
        assert!(count(&dec, c) <= count(d, c), "decode added byte {}", c);
    }
    for a in h::addresses(d) {
        assert!(a.end <= d.len());
        let _ = h::envelope_form(&a.addr);
    }
    let _ = h::qualify(d, b"example.org");
    let _ = h::values(head, b"to", true);
    if d.iter().any(|&c| c >= 0x80) && !d.iter().any(|&c| c < 0x20 || c == 0x7f) {
        assert_eq!(h::decode(&h::phrase(d)), d, "phrase does not decode back");
    }
}

/// The submission reader (submit::input::Input, what mail-inject and
/// sendmail read the message with). The first input byte picks the read
/// size, the piece size and whether a lone `.` line ends the input.
///
/// Properties: no piece is empty or longer than asked; the pieces joined
/// are the input with CR LF as LF (a CR is never split from its LF) and,
/// with the dot rule, cut before the first line that is just `.`; the
/// result does not depend on how the reads are sized.
pub fn submit_input(d: &[u8]) {
    let (sel, msg) = match d.split_first() {
        Some((s, m)) => (*s, m),
        None => (0, d),
    };
    let read = (sel & 0x07) as usize + 1;
    let max = ((sel >> 3) & 0x0f) as usize + 2;
    let dot = sel & 0x80 != 0;
    let got = input_pieces(msg, read, max, dot);
    let mut want = Vec::new();
    let mut rest = msg;
    while !rest.is_empty() {
        let (line, next, lf) = match rest.iter().position(|&c| c == b'\n') {
            Some(i) => (&rest[..i], &rest[i + 1..], true),
            None => (rest, &b""[..], false),
        };
        if lf {
            let l = line.strip_suffix(b"\r").unwrap_or(line);
            if dot && l == b"." {
                break;
            }
            want.extend_from_slice(l);
            want.push(b'\n');
        } else {
            if dot && (line == b"." || line == b".\r") {
                break;
            }
            want.extend_from_slice(line);
        }
        rest = next;
    }
    assert_eq!(got, want, "submission input differs");
    assert_eq!(
        input_pieces(msg, msg.len().max(1), max, dot),
        got,
        "read size matters"
    );
}

struct Trickle<'a>(&'a [u8], usize);

impl std::io::Read for Trickle<'_> {
    fn read(&mut self, b: &mut [u8]) -> std::io::Result<usize> {
        let n = self.0.len().min(self.1).min(b.len());
        b[..n].copy_from_slice(&self.0[..n]);
        self.0 = &self.0[n..];
        Ok(n)
    }
}

fn input_pieces(msg: &[u8], read: usize, max: usize, dot: bool) -> Vec<u8> {
    let mut i = pipemail::submit::input::Input::new(Trickle(msg, read), dot);
    let mut out = Vec::new();
    while let Some(p) = i.next(max).expect("read from a slice") {
        assert!(
            !p.is_empty() && p.len() <= max.max(3),
            "piece of {} bytes",
            p.len()
        );
        out.extend_from_slice(p);
    }
    assert!(i.at_end());
    out
}

/// queue-run's own records and report parsing (queuerun::store Info and
/// Rec, run::parse_remote, bounce::status/diagnostic/header_of,
/// spawn::take_fields, valid_id). The first byte is the recipient count
/// for parse_remote; the rest is the bytes.
///
/// Properties: whatever decodes re-encodes to something that decodes to
/// the same; parse_remote gives exactly one K/Z/D per recipient, never K
/// for a recipient the report does not name; a bounce status is `5.x.y`;
/// the Diagnostic-Code text is one printable line; a valid id can never
/// name another directory.
pub fn queuerun(d: &[u8]) {
    use pipemail::queuerun::{bounce, run, spawn, store, valid_id};
    let (n, b) = match d.split_first() {
        Some((n, b)) => ((*n % 8) as usize, b),
        None => (0, d),
    };
    if let Some(i) = store::Info::decode(b) {
        let e = i.encode();
        assert_eq!(
            store::Info::decode(&e).as_ref(),
            Some(&i),
            "info round trip"
        );
        assert!(!i.rcpts.is_empty());
    }
    for r in b.split(|&c| c == 0) {
        if let Some(rec) = store::Rec::decode(r) {
            let e = rec.encode();
            assert_eq!(e.last(), Some(&0));
            assert_eq!(
                store::Rec::decode(&e[..e.len() - 1]).as_ref(),
                Some(&rec),
                "rec round trip"
            );
        }
    }
    let reps = run::parse_remote(b, n, Some(0));
    assert_eq!(reps.len(), n);
    let recs = b.split(|&c| c == 0).filter(|r| !r.is_empty()).count();
    for (i, (l, _)) in reps.iter().enumerate() {
        assert!(matches!(l, b'K' | b'Z' | b'D'));
        if *l == b'K' {
            assert!(i + 1 < recs, "K for a recipient without its own report");
        }
    }
    assert!(run::parse_remote(b, n, Some(111))
        .iter()
        .all(|(l, _)| *l == b'Z'));
    let st = bounce::status(b);
    let parts: Vec<&[u8]> = st.split(|&c| c == b'.').collect();
    assert_eq!(parts.len(), 3);
    assert_eq!(parts[0], b"5");
    let diag = bounce::diagnostic(b);
    assert!(
        !diag.iter().any(|&c| c < 0x20 || c > 0x7e),
        "diagnostic not one printable line"
    );
    assert!(b.starts_with(bounce::header_of(b)));
    let mut buf = b.to_vec();
    if spawn::take_reply(&mut buf).is_some() {
        assert!(buf.len() < b.len(), "a reply taken consumes bytes");
    } else {
        assert_eq!(buf, b, "an incomplete reply is left alone");
    }
    if valid_id(b) {
        assert!(!b.contains(&b'/') && b != b"." && b != b"..");
    }
}

/// IMAP command argument parsers (imap::parse Cursor, fetch::parse_items,
/// search::parse) and modified UTF-7. The first byte picks the parser;
/// the rest is the command text after the verb.
///
/// Properties: no panic; the cursor never passes the end; a FETCH section
/// never names part 0; UTF-7 round-trips (decode(encode(s)) == s, and a
/// decodable name re-encodes to a name that decodes the same);
/// literal_at_end only sees a `}` at the end.
pub fn imap(d: &[u8]) {
    use pipemail::imap::{fetch, parse, search};
    use pipemail::maildir::utf7;
    let (sel, b) = match d.split_first() {
        Some((s, b)) => (*s, b),
        None => (0, d),
    };
    let mut c = parse::Cursor::new(b);
    match sel % 9 {
        0 => {
            if let Ok(items) = fetch::parse_items(&mut c) {
                for it in items {
                    if let fetch::Item::Section { sec, partial, .. } = it {
                        assert!(!sec.parts.contains(&0), "section part 0");
                        let _ = fetch::label(&sec);
                        if let Some((_, n)) = partial {
                            let _ = n;
                        }
                    }
                }
            }
        }
        1 => {
            let _ = search::parse(&mut c);
        }
        2 => {
            if let Ok(s) = c.seqset() {
                for n in [0, 1, 2, 100, u32::MAX] {
                    let _ = s.contains(n, 50);
                }
            }
        }
        3 => {
            let _ = c.flag_list(sel & 0x80 != 0);
        }
        4 => {
            let _ = c.astring();
            let _ = c.sp();
            let _ = c.list_mailbox();
        }
        5 => {
            let _ = c.date_time();
            let _ = parse::parse_date_time(b);
            let _ = parse::parse_date(b);
        }
        6 => {
            let _ = c.tag();
            let _ = c.sp();
            let _ = c.atom();
            let _ = c.sp();
            let _ = c.string();
            let _ = c.end();
        }
        7 => {
            if let Some(s) = utf7::decode(b) {
                let e = utf7::encode(&s);
                assert_eq!(
                    utf7::decode(&e).as_deref(),
                    Some(s.as_str()),
                    "utf7 re-encode"
                );
            }
            if let Ok(s) = std::str::from_utf8(b) {
                assert_eq!(
                    utf7::decode(&utf7::encode(s)).as_deref(),
                    Some(s),
                    "utf7 round trip"
                );
            }
        }
        _ => {
            if let Some((_, _)) = parse::literal_at_end(b) {
                assert_eq!(b.last(), Some(&b'}'));
            }
            assert!(parse::tag_of(b).len() <= 64);
        }
    }
    assert!(c.i <= b.len(), "cursor past the end");
}

/// The IMAP command reader with size limits (imap::parse::Reader::command).
/// The first byte picks the limits (imap-login's, or small ones so that
/// every limit is reached); the rest is what the client sends.
///
/// Properties: every command read fits the limits (each line segment, all
/// segments together, each literal, the whole); its last segment announces
/// no literal; the reader always moves forward or ends; the answers do not
/// depend on how the input arrives (1, 7 or all bytes a read); after an
/// answer that ends the connection nothing more is read.
pub fn imap_command(d: &[u8]) {
    use pipemail::imap::parse::{Limits, Reader};
    let (sel, b) = match d.split_first() {
        Some((s, b)) => (*s, b),
        None => (0, d),
    };
    let lim = if sel & 0x80 != 0 {
        Limits::LOGIN
    } else {
        let text = 4 + (sel & 0x0f) as usize * 8;
        Limits {
            line: 4 + ((sel >> 4) & 0x07) as usize * 6,
            text,
            literal: (sel & 0x03) as usize * 5,
            total: text + 12,
        }
    };
    let answers = |chunk: usize| {
        let mut r = Reader::from_bytes(b.to_vec(), chunk);
        let mut v = Vec::new();
        for _ in 0..=b.len() + 1 {
            let before = r.consumed();
            let mut conts = 0;
            let a = r
                .command(lim, &mut || {
                    conts += 1;
                    Ok(())
                })
                .expect("reading bytes never fails");
            let s = format!("{:?} after {} continuations", input_text(&a), conts);
            let end = !matches!(a, Input::Cmd(_) | Input::TooLong(_) | Input::TooBig(_));
            if let Input::Cmd(c) = &a {
                command_fits(c, lim);
            }
            v.push(s);
            if end {
                return v;
            }
            assert!(r.consumed() > before, "no progress");
        }
        panic!("more answers than bytes");
    };
    let one = answers(1);
    assert_eq!(answers(7), one, "answers depend on the read size");
    assert_eq!(
        answers(b.len().max(1)),
        one,
        "answers depend on the read size"
    );
}

use pipemail::imap::parse::Input;

fn input_text(a: &Input) -> (&'static str, Vec<u8>) {
    match a {
        Input::Cmd(c) => ("cmd", c.clone()),
        Input::TooLong(t) => ("toolong", t.clone()),
        Input::TooBig(t) => ("toobig", t.clone()),
        Input::TooBigPlus(t) => ("toobigplus", t.clone()),
        Input::TooMuch(t) => ("toomuch", t.clone()),
        Input::Eof => ("eof", Vec::new()),
        Input::Timeout => ("timeout", Vec::new()),
    }
}

/// Walks a command as the reader built it (segment, CRLF, literal, ...).
fn command_fits(c: &[u8], lim: pipemail::imap::parse::Limits) {
    use pipemail::imap::parse::literal_at_end;
    assert!(c.len() <= lim.total, "command of {} bytes", c.len());
    let (mut i, mut text) = (0, 0);
    loop {
        let lf = c[i..].iter().position(|&x| x == b'\n');
        let seg = match lf {
            Some(k) => &c[i..i + k - 1],
            None => &c[i..],
        };
        assert!(seg.len() <= lim.line, "segment of {} bytes", seg.len());
        text += seg.len();
        let Some(k) = lf else {
            assert!(literal_at_end(seg).is_none(), "literal left open");
            break;
        };
        let (n, _) = literal_at_end(seg).expect("a CRLF only after a literal");
        assert!(n <= lim.literal, "literal of {} bytes", n);
        i += k + 1 + n;
        assert!(i <= c.len(), "literal past the end");
    }
    assert!(text <= lim.text, "text of {} bytes", text);
}

/// The MIME tree (mime::parse) and what IMAP builds from it: BODY,
/// BODYSTRUCTURE, ENVELOPE and BODY[section] (imap::fetch).
///
/// Properties: every part lies inside its parent and the message, with
/// start <= body <= end; the tree respects MAX_DEPTH; BODYSTRUCTURE and
/// ENVELOPE are well-formed IMAP data (balanced parentheses, closed quoted
/// strings, literals of the length they say, no CR or LF outside a
/// literal); sections of existing parts lie in the message.
pub fn mime(d: &[u8]) {
    use pipemail::imap::fetch;
    use pipemail::mime;
    let root = mime::parse(d);
    check_part(&root, 0, d.len(), 0);
    for ext in [false, true] {
        let mut out = Vec::new();
        fetch::body_structure(&mut out, d, &root, ext);
        imap_data_ok(&out);
    }
    let mut out = Vec::new();
    fetch::envelope(&mut out, root.header(d));
    imap_data_ok(&out);
    let secs: &[&[u32]] = &[&[], &[1], &[2], &[1, 1], &[1, 2], &[2, 1], &[1, 1, 1]];
    for nums in secs {
        for kind in [
            fetch::Kind::All,
            fetch::Kind::Header,
            fetch::Kind::Text,
            fetch::Kind::Mime,
            fetch::Kind::Fields(vec![b"subject".to_vec(), b"to".to_vec()], false),
            fetch::Kind::Fields(vec![b"subject".to_vec()], true),
        ] {
            let s = fetch::Section {
                parts: nums.to_vec(),
                kind,
            };
            if let Some(b) = fetch::section_bytes(d, &root, &s) {
                assert!(b.len() <= d.len() + 2);
            }
        }
    }
    let _ = pipemail::header::address_list(d);
    let _ = pipemail::header::decode(d);
    let _ = mime::qp_decode(d);
    let _ = pipemail::date::date_ymd(d);
}

fn check_part(p: &pipemail::mime::Part, lo: usize, hi: usize, depth: usize) {
    assert!(
        depth <= pipemail::mime::MAX_DEPTH + 1,
        "tree deeper than MAX_DEPTH"
    );
    assert!(
        lo <= p.start && p.start <= p.body && p.body <= p.end && p.end <= hi,
        "part outside its parent"
    );
    for c in &p.parts {
        check_part(c, p.start, p.end, depth + 1);
    }
}

/// IMAP response data syntax, loosely: quoted strings, literals, parens.
fn imap_data_ok(b: &[u8]) {
    let mut depth = 0i64;
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'"' => {
                i += 1;
                loop {
                    let c = *b.get(i).expect("unclosed quoted string");
                    assert!(c != b'\r' && c != b'\n', "CR/LF in a quoted string");
                    i += 1;
                    if c == b'\\' {
                        i += 1;
                    } else if c == b'"' {
                        break;
                    }
                }
                continue;
            }
            b'{' => {
                let close = i + b[i..].iter().position(|&c| c == b'}').expect("literal");
                let n: usize = std::str::from_utf8(&b[i + 1..close])
                    .expect("literal length")
                    .parse()
                    .expect("literal length");
                assert_eq!(&b[close + 1..close + 3], b"\r\n");
                i = close + 3 + n;
                assert!(i <= b.len(), "literal past the end");
                continue;
            }
            b'(' => depth += 1,
            b')' => {
                depth -= 1;
                assert!(depth >= 0, "unbalanced )");
            }
            b'\r' | b'\n' => panic!("CR/LF outside a literal"),
            _ => {}
        }
        i += 1;
    }
    assert_eq!(depth, 0, "unbalanced (");
}

/// DSN parameters (RFC 3461): xtext, NOTIFY, RET, ORCPT, ENVID.
///
/// Properties: encoding gives only xchars and `+XX` and decodes back to
/// the input; whatever decodes re-encodes to something that decodes the
/// same; a NOTIFY that parses re-encodes to an equal value; ORCPT and
/// ENVID values that parse respect their limits and carry no control byte.
pub fn dsn_xtext(d: &[u8]) {
    use pipemail::smtp::dsn;
    let e = dsn::xtext_encode(d);
    assert!(e.iter().all(|&c| (33..=126).contains(&c) && c != b'='));
    assert_eq!(dsn::xtext_decode(&e).as_deref(), Some(d));
    if let Some(x) = dsn::xtext_decode(d) {
        assert!(x.len() <= d.len());
        assert_eq!(dsn::xtext_decode(&dsn::xtext_encode(&x)), Some(x));
    }
    if let Some(n) = dsn::Notify::parse(d) {
        assert_eq!(dsn::Notify::parse(&n.encode()), Some(n));
    }
    let _ = dsn::Ret::parse(d);
    if let Some((ty, a)) = dsn::parse_orcpt(d) {
        assert!(d.len() <= dsn::MAX_ORCPT && !ty.is_empty() && !a.is_empty());
        assert!(!a.iter().any(|&c| c < 32 || c == 127));
        assert!(std::str::from_utf8(&a).is_ok());
    }
    if let Some(v) = dsn::parse_envid(d) {
        assert!(d.len() <= dsn::MAX_ENVID);
        assert!(v.iter().all(|&c| (32..=126).contains(&c)));
    }
}

/// smtp::dsn::Dsn (the text of $PIPEMAIL_DSN and of the queue's D
/// records) and the version 2 drop-file section that carries it.
///
/// Properties: text that decodes encodes to a canonical text that decodes
/// to the same; the wire parameters of every line parse back with the
/// parsers smtp-recv uses; a drop file of version 2 with those parameters
/// and an envelope of as many recipients parses back to the same envelope
/// and parameters; a D record that does not fit the envelope is refused.
pub fn dsn_params(d: &[u8]) {
    use pipemail::smtp::dsn::{self, Dsn, Notify, Ret};
    let Some(x) = Dsn::decode(d) else {
        return;
    };
    let t = x.encode();
    assert!(t.len() <= d.len() + 2 * x.rcpts.len() + 2, "encoding grew");
    assert_eq!(Dsn::decode(&t).as_ref(), Some(&x), "dsn round trip");
    let words = |p: Vec<u8>| -> Vec<(Vec<u8>, Vec<u8>)> {
        if p.is_empty() {
            return Vec::new();
        }
        p.split(|&c| c == b' ')
            .map(|w| {
                let eq = w.iter().position(|&c| c == b'=').expect("KEY=value");
                (w[..eq].to_vec(), w[eq + 1..].to_vec())
            })
            .collect()
    };
    for (k, v) in words(x.mail_params()) {
        match &k[..] {
            b"RET" => assert_eq!(Ret::parse(&v), x.ret),
            b"ENVID" => assert_eq!(dsn::parse_envid(&v), x.envid),
            _ => panic!("unknown MAIL parameter"),
        }
    }
    for i in 0..x.rcpts.len() {
        for (k, v) in words(x.rcpt_params(i)) {
            match &k[..] {
                b"NOTIFY" => assert_eq!(Notify::parse(&v), x.rcpts[i].notify),
                b"ORCPT" => assert_eq!(dsn::parse_orcpt(&v), x.rcpts[i].orcpt),
                _ => panic!("unknown RCPT parameter"),
            }
        }
    }
    let n = x.rcpts.len().max(1);
    let env = queue::Envelope {
        sender: b"a@b".to_vec(),
        recipients: (0..n).map(|i| format!("r{}@x", i).into_bytes()).collect(),
        dsn: x.clone(),
    };
    let tr = queue::trailer("7.7.d", &env.encode(), &x, 0);
    let (off, ver) =
        queue::tail_offset(&tr[tr.len() - queue::TAIL_LEN..], tr.len() as u64).expect("a tail");
    assert_eq!((off, ver), (0, if x.is_empty() { 1 } else { 2 }));
    let sec = &tr[..tr.len() - queue::TAIL_LEN];
    let got = queue::parse_section("7.7.d", ver, sec).expect("section parses");
    assert_eq!(got.recipients, env.recipients);
    if !x.is_empty() {
        assert_eq!(got.dsn, x.clone().fit(n));
    }
    let wrong = queue::Envelope {
        recipients: vec![b"r@x".to_vec(); n + 1],
        ..env
    };
    let tr = queue::trailer("7.7.d", &wrong.encode(), &x, 0);
    let sec = &tr[..tr.len() - queue::TAIL_LEN];
    let p = queue::parse_section("7.7.d", 2, sec);
    if x.rcpts.is_empty() {
        assert!(p.is_some());
    } else {
        assert!(
            p.is_none(),
            "a D record of {} recipients for {}",
            x.rcpts.len(),
            n + 1
        );
    }
}

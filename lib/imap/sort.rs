//! SORT and THREAD (RFC 5256): the sort keys of a message, base subject
//! extraction, the sort itself, and the ORDEREDSUBJECT and REFERENCES
//! threading algorithms. Message numbers here are indexes into the
//! folder; the session turns them into sequence numbers or UIDs.

use super::parse::{Cursor, R};
use super::store::Folder;
use std::cmp::Ordering;
use std::collections::HashMap;

/// What SORT and THREAD need of one message.
#[derive(Default, Clone)]
pub struct Info {
    pub arrival: i64,
    /// The Date: field as seconds since the epoch, else the arrival.
    pub sent: i64,
    pub size: u64,
    /// Base subject (RFC 5256 §2.1), upper-cased for comparison.
    pub subject: Vec<u8>,
    /// The subject was a reply or a forward (`Re:`, `Fwd:`, `(fwd)`...).
    pub reply: bool,
    pub from: Vec<u8>,
    pub to: Vec<u8>,
    pub cc: Vec<u8>,
    pub message_id: Option<Vec<u8>>,
    /// References, else the first message-id of In-Reply-To.
    pub refs: Vec<Vec<u8>>,
}

/// One sort criterion: (key, reversed).
pub type Crit = (Vec<u8>, bool);

/// `(criterion ...)` of SORT.
pub fn criteria(c: &mut Cursor) -> R<Vec<Crit>> {
    c.expect(b'(')?;
    let mut v = Vec::new();
    let mut rev = false;
    loop {
        let w = c.word()?;
        match &w[..] {
            b"REVERSE" => {
                if rev {
                    return Err("REVERSE twice");
                }
                rev = true;
                c.sp()?;
                continue;
            }
            b"ARRIVAL" | b"CC" | b"DATE" | b"FROM" | b"SIZE" | b"SUBJECT" | b"TO" => {
                v.push((w, rev));
                rev = false;
            }
            _ => return Err("unknown sort criterion"),
        }
        if c.eat(b')') {
            return Ok(v);
        }
        c.sp()?;
    }
}

/// The sort keys of message `i`; None when its file is gone.
pub fn info(f: &mut Folder, i: usize) -> std::io::Result<Option<Info>> {
    let d = match f.read(i)? {
        Some(d) => d,
        None => return Ok(None),
    };
    let h = &d[..crate::header::body_start(&d, 0, d.len())];
    let fields = crate::header::unfolded(h);
    let last = |n: &[u8]| {
        fields
            .iter()
            .rev()
            .find(|(k, _)| k.eq_ignore_ascii_case(n))
            .map(|(_, v)| v.clone())
    };
    // The first address of all such fields (Dovecot joins repeated ones):
    // its mailbox, or a group's name.
    let first_mailbox = |n: &[u8]| {
        let all: Vec<&[u8]> = fields
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(n))
            .map(|(_, v)| &v[..])
            .collect();
        match crate::header::address_list(&all.join(&b','))
            .into_iter()
            .next()
        {
            Some(crate::header::Address::Mailbox { mailbox, .. }) => mailbox.to_ascii_uppercase(),
            Some(crate::header::Address::GroupStart(g)) => g.to_ascii_uppercase(),
            _ => Vec::new(),
        }
    };
    let arrival = f.date(i);
    let (subject, reply) = base_subject(&last(b"subject").unwrap_or_default());
    let refs = match last(b"references") {
        Some(r) if !msg_ids(&r).is_empty() => msg_ids(&r),
        _ => msg_ids(&last(b"in-reply-to").unwrap_or_default())
            .into_iter()
            .take(1)
            .collect(),
    };
    Ok(Some(Info {
        arrival,
        sent: last(b"date").and_then(|v| sent_date(&v)).unwrap_or(arrival),
        size: f.size(i)?,
        subject,
        reply,
        from: first_mailbox(b"from"),
        to: first_mailbox(b"to"),
        cc: first_mailbox(b"cc"),
        message_id: last(b"message-id").and_then(|v| msg_ids(&v).into_iter().next()),
        refs,
    }))
}

/// The `<...>` message-ids in a field, in order.
fn msg_ids(v: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(a) = memchr::memchr(b'<', &v[i..]) {
        let s = i + a + 1;
        match memchr::memchr(b'>', &v[s..]) {
            Some(e) => {
                let id: Vec<u8> = v[s..s + e]
                    .iter()
                    .filter(|c| !c.is_ascii_whitespace())
                    .copied()
                    .collect();
                if !id.is_empty() && !id.contains(&b'<') {
                    out.push(id);
                }
                i = s + e + 1;
            }
            None => break,
        }
    }
    out
}

/// An RFC 5322 date-time as seconds since the epoch (zone applied).
pub fn sent_date(v: &[u8]) -> Option<i64> {
    let (y, m, d) = crate::date::date_ymd(v)?;
    let words: Vec<&[u8]> = v
        .split(|&c| c == b' ' || c == b',' || c == b'\t')
        .filter(|w| !w.is_empty())
        .collect();
    let t = words.iter().position(|w| w.contains(&b':'))?;
    let hms: Vec<i64> = words[t]
        .split(|&c| c == b':')
        .map(|x| crate::parse::number(x).map(|n| n as i64))
        .collect::<Option<Vec<_>>>()?;
    let (hh, mm, ss) = (hms[0], *hms.get(1)?, *hms.get(2).unwrap_or(&0));
    let off = match words.get(t + 1) {
        Some(z) if z.len() == 5 && (z[0] == b'+' || z[0] == b'-') => {
            let n = crate::parse::number(&z[1..])? as i64;
            let o = (n / 100) * 3600 + (n % 100) * 60;
            if z[0] == b'-' {
                -o
            } else {
                o
            }
        }
        _ => 0,
    };
    Some(super::parse::days_from_civil(y, m, d) * 86400 + hh * 3600 + mm * 60 + ss - off)
}

/// Base subject (RFC 5256 §2.1) upper-cased, and whether the subject was a
/// reply or forward.
pub fn base_subject(raw: &[u8]) -> (Vec<u8>, bool) {
    // (1) decoded, blanks collapsed to one space.
    let mut s = Vec::new();
    for &c in crate::header::decode(raw).iter() {
        let c = if c == b'\t' || c == b'\r' || c == b'\n' {
            b' '
        } else {
            c
        };
        if !(c == b' ' && s.last() == Some(&b' ')) {
            s.push(c);
        }
    }
    let mut s = s.to_ascii_uppercase();
    let mut reply = false;
    loop {
        // (2) trailers: `(FWD)` and blanks.
        loop {
            if s.last() == Some(&b' ') {
                s.pop();
            } else if s.ends_with(b"(FWD)") {
                s.truncate(s.len() - 5);
                reply = true;
            } else {
                break;
            }
        }
        // (3) and (4), until nothing changes.
        loop {
            let before = s.len();
            while s.first() == Some(&b' ') {
                s.remove(0);
            }
            if let Some(n) = refwd(&s) {
                s.drain(..n);
                reply = true;
            }
            if let Some(n) = blob(&s) {
                if n < s.len() {
                    s.drain(..n);
                }
            }
            if s.len() == before {
                break;
            }
        }
        // (6) `[FWD: ...]`.
        if s.starts_with(b"[FWD:") && s.ends_with(b"]") {
            s = s[5..s.len() - 1].to_vec();
            reply = true;
            continue;
        }
        return (s, reply);
    }
}

/// Length of a leading subj-blob: `[` no brackets `]` and blanks.
fn blob(s: &[u8]) -> Option<usize> {
    if s.first() != Some(&b'[') {
        return None;
    }
    let e = s[1..].iter().position(|&c| c == b'[' || c == b']')? + 1;
    if s[e] != b']' {
        return None;
    }
    let mut n = e + 1;
    while s.get(n) == Some(&b' ') {
        n += 1;
    }
    Some(n)
}

/// Length of a leading subj-refwd with its blobs: `*blob (RE|FW|FWD)
/// *WSP [blob] :`.
fn refwd(s: &[u8]) -> Option<usize> {
    let mut n = 0;
    while let Some(b) = blob(&s[n..]) {
        n += b;
    }
    let r = &s[n..];
    n += if r.starts_with(b"RE") || r.starts_with(b"FW") {
        if r.starts_with(b"FWD") {
            3
        } else {
            2
        }
    } else {
        return None;
    };
    while s.get(n) == Some(&b' ') {
        n += 1;
    }
    if let Some(b) = blob(&s[n..]) {
        n += b;
    }
    (s.get(n) == Some(&b':')).then_some(n + 1)
}

fn by(c: &Crit, a: &Info, b: &Info) -> Ordering {
    let o = match &c.0[..] {
        b"ARRIVAL" => a.arrival.cmp(&b.arrival),
        b"CC" => a.cc.cmp(&b.cc),
        b"DATE" => a.sent.cmp(&b.sent),
        b"FROM" => a.from.cmp(&b.from),
        b"SIZE" => a.size.cmp(&b.size),
        b"SUBJECT" => a.subject.cmp(&b.subject),
        _ => a.to.cmp(&b.to),
    };
    if c.1 {
        o.reverse()
    } else {
        o
    }
}

/// Sorts `msgs` (index, keys) by `crit`; equal ones by message number.
pub fn sort(msgs: &mut [(usize, Info)], crit: &[Crit]) {
    msgs.sort_by(|(i, a), (j, b)| {
        crit.iter()
            .map(|c| by(c, a, b))
            .find(|o| o.is_ne())
            .unwrap_or_else(|| i.cmp(j))
    });
}

/// A thread tree node: a message (index) or a dummy, and its children.
struct Node {
    msg: Option<usize>,
    kids: Vec<Node>,
}

/// Sent date of a node: its message's, or for a dummy its first child's.
fn node_date(n: &Node, info: &HashMap<usize, &Info>) -> (i64, usize) {
    match n.msg {
        Some(m) => (info[&m].sent, m),
        None => n.kids.first().map(|k| node_date(k, info)).unwrap_or((0, 0)),
    }
}

fn sort_nodes(v: &mut [Node], info: &HashMap<usize, &Info>) {
    for n in v.iter_mut() {
        sort_nodes(&mut n.kids, info);
    }
    v.sort_by_key(|n| node_date(n, info));
}

/// `(a b (c)(d))`: a chain until a node with several children.
fn put(out: &mut Vec<u8>, n: &Node, seq: &dyn Fn(usize) -> u32, open: bool) {
    if open {
        out.push(b'(');
    }
    if let Some(m) = n.msg {
        out.extend_from_slice(seq(m).to_string().as_bytes());
    }
    match n.kids.len() {
        0 => {}
        1 if n.msg.is_some() => {
            out.push(b' ');
            put(out, &n.kids[0], seq, false);
        }
        _ => {
            if n.msg.is_some() {
                out.push(b' ');
            }
            for k in &n.kids {
                put(out, k, seq, true);
            }
        }
    }
    if open {
        out.push(b')');
    }
}

/// THREAD=ORDEREDSUBJECT: by base subject, then sent date; the first
/// message of a subject is the parent of the others.
pub fn ordered_subject(msgs: &[(usize, Info)], seq: &dyn Fn(usize) -> u32) -> Vec<u8> {
    let info: HashMap<usize, &Info> = msgs.iter().map(|(i, m)| (*i, m)).collect();
    let mut v: Vec<&(usize, Info)> = msgs.iter().collect();
    v.sort_by(|(i, a), (j, b)| (&a.subject, a.sent, i).cmp(&(&b.subject, b.sent, j)));
    let mut roots: Vec<Node> = Vec::new();
    let mut last: Option<&[u8]> = None;
    for (i, m) in v {
        let node = Node {
            msg: Some(*i),
            kids: Vec::new(),
        };
        if last == Some(&m.subject[..]) {
            roots.last_mut().unwrap().kids.push(node);
        } else {
            roots.push(node);
            last = Some(&m.subject);
        }
    }
    sort_nodes(&mut roots, &info);
    let mut out = Vec::new();
    for r in &roots {
        put(&mut out, r, seq, true);
    }
    out
}

/// THREAD=REFERENCES (RFC 5256 §3).
pub fn references(msgs: &[(usize, Info)], seq: &dyn Fn(usize) -> u32) -> Vec<u8> {
    let info: HashMap<usize, &Info> = msgs.iter().map(|(i, m)| (*i, m)).collect();
    // Containers in an arena: message, parent, children.
    let mut msg: Vec<Option<usize>> = Vec::new();
    let mut parent: Vec<Option<usize>> = Vec::new();
    let mut by_id: HashMap<Vec<u8>, usize> = HashMap::new();
    let new = |msg: &mut Vec<Option<usize>>, parent: &mut Vec<Option<usize>>| {
        msg.push(None);
        parent.push(None);
        msg.len() - 1
    };
    let ancestor = |parent: &[Option<usize>], a: usize, b: usize| {
        // Whether `a` is `b` or one of its ancestors.
        let mut x = Some(b);
        while let Some(y) = x {
            if y == a {
                return true;
            }
            x = parent[y];
        }
        false
    };
    for (i, m) in msgs {
        // (1A) the message's container; a duplicate Message-ID gets its own.
        let me = match m.message_id.as_ref().and_then(|id| by_id.get(id).copied()) {
            Some(c) if msg[c].is_none() => c,
            _ => {
                let c = new(&mut msg, &mut parent);
                if let Some(id) = &m.message_id {
                    by_id.entry(id.clone()).or_insert(c);
                }
                c
            }
        };
        msg[me] = Some(*i);
        // (1B) link the references in order.
        let mut prev: Option<usize> = None;
        for r in &m.refs {
            let c = match by_id.get(r) {
                Some(&c) => c,
                None => {
                    let c = new(&mut msg, &mut parent);
                    by_id.insert(r.clone(), c);
                    c
                }
            };
            if let Some(p) = prev {
                if parent[c].is_none() && !ancestor(&parent, c, p) {
                    parent[c] = Some(p);
                }
            }
            prev = Some(c);
        }
        // (1C) the last reference is the parent, unless that makes a loop.
        match prev {
            Some(p) if !ancestor(&parent, me, p) => parent[me] = Some(p),
            _ => parent[me] = None,
        }
    }
    // Trees from the parent links, in container order.
    let n = msg.len();
    let mut kids: Vec<Vec<usize>> = vec![Vec::new(); n];
    let mut roots = Vec::new();
    for c in 0..n {
        match parent[c] {
            Some(p) => kids[p].push(c),
            None => roots.push(c),
        }
    }
    fn build(c: usize, msg: &[Option<usize>], kids: &[Vec<usize>], root: bool) -> Vec<Node> {
        let mut ks: Vec<Node> = Vec::new();
        for &k in &kids[c] {
            ks.extend(build(k, msg, kids, false));
        }
        match msg[c] {
            Some(m) => vec![Node {
                msg: Some(m),
                kids: ks,
            }],
            // (4) a dummy: dropped when childless, replaced by its children
            // unless it is a root with several.
            None if root && ks.len() > 1 => vec![Node {
                msg: None,
                kids: ks,
            }],
            None => ks,
        }
    }
    let mut top: Vec<Node> = Vec::new();
    for r in roots {
        top.extend(build(r, &msg, &kids, true));
    }
    sort_nodes(&mut top, &info);
    // (5) roots with the same base subject are gathered.
    let subject_of = |n: &Node| -> Option<(Vec<u8>, bool)> {
        let m = n.msg.or_else(|| n.kids.first().and_then(|k| k.msg))?;
        let i = info[&m];
        Some((i.subject.clone(), n.msg.is_some() && i.reply))
    };
    let mut table: HashMap<Vec<u8>, usize> = HashMap::new();
    for (k, n) in top.iter().enumerate() {
        if let Some((s, _)) = subject_of(n).filter(|(s, _)| !s.is_empty()) {
            match table.get(&s) {
                None => {
                    table.insert(s, k);
                }
                Some(&o) => {
                    let (on, nn) = (&top[o], n);
                    let better = (nn.msg.is_none() && on.msg.is_some())
                        || (on.msg.is_some()
                            && nn.msg.is_some()
                            && subject_of(on).map(|x| x.1).unwrap_or(false)
                            && !subject_of(nn).map(|x| x.1).unwrap_or(false));
                    if better {
                        table.insert(s, k);
                    }
                }
            }
        }
    }
    let mut slots: Vec<Option<Node>> = top.into_iter().map(Some).collect();
    for k in 0..slots.len() {
        let s = match slots[k].as_ref().and_then(subject_of) {
            Some((s, _)) if !s.is_empty() => s,
            _ => continue,
        };
        let t = table[&s];
        if t == k {
            continue;
        }
        let this = slots[k].take().unwrap();
        let other = slots[t].take().unwrap();
        let this_reply = subject_of(&this).map(|x| x.1).unwrap_or(false);
        let other_reply = subject_of(&other).map(|x| x.1).unwrap_or(false);
        let merged = match (other.msg.is_none(), this.msg.is_none()) {
            (true, true) => Node {
                msg: None,
                kids: other.kids.into_iter().chain(this.kids).collect(),
            },
            (true, false) => {
                let mut o = other;
                o.kids.push(this);
                o
            }
            (false, _) if this_reply && !other_reply => {
                let mut o = other;
                o.kids.push(this);
                o
            }
            _ => Node {
                msg: None,
                kids: vec![other, this],
            },
        };
        slots[t] = Some(merged);
    }
    let mut top: Vec<Node> = slots.into_iter().flatten().collect();
    sort_nodes(&mut top, &info);
    let mut out = Vec::new();
    for r in &top {
        put(&mut out, r, seq, true);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_subjects() {
        for (raw, base, reply) in [
            (
                &b"Re: Fwd: [list] hello  world (fwd)"[..],
                &b"HELLO WORLD"[..],
                true,
            ),
            (b"[Fwd: re: [x] Test]", b"TEST", true),
            (b"hello", b"HELLO", false),
            (b"[only a blob]", b"[ONLY A BLOB]", false),
            (b"re [x]: Re:   a\tb ", b"A B", true),
            (b"=?utf-8?q?Re=3A_caf=C3=A9?=", "CAFé".as_bytes(), true),
            (b"Rex: hi", b"REX: HI", false),
        ] {
            assert_eq!(base_subject(raw), (base.to_vec(), reply), "{:?}", raw);
        }
    }

    #[test]
    fn dates() {
        assert_eq!(sent_date(b"Thu, 1 Jan 1970 01:00:00 +0100"), Some(0));
        assert_eq!(sent_date(b"1 Jan 1970 00:01 GMT"), Some(60));
        assert_eq!(sent_date(b"garbage"), None);
    }
}

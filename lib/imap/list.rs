//! LIST and LSUB: RFC 3501 with LIST-EXTENDED (RFC 5258: selection and
//! return options, several patterns, CHILDINFO), CHILDREN (RFC 3348
//! attributes, always sent) and LIST-STATUS (RFC 5819). This module reads
//! the arguments and decides which names are listed with which attributes;
//! the session writes the lines and the STATUS answers.

use super::parse::{Cursor, R};
use crate::maildir::folder;
use std::path::Path;

/// A LIST or LSUB command, read.
#[derive(Default)]
pub struct Args {
    pub reference: Vec<u8>,
    pub patterns: Vec<Vec<u8>>,
    /// Selection SUBSCRIBED: only subscribed names, \NonExistent ones too.
    pub subscribed: bool,
    /// Selection RECURSIVEMATCH: parents of selected names, with CHILDINFO.
    pub recursive: bool,
    /// Selection SPECIAL-USE (RFC 6154): only folders with a special use.
    pub special: bool,
    /// Return SUBSCRIBED (implied by the selection SUBSCRIBED).
    pub ret_subscribed: bool,
    /// Return STATUS (RFC 5819): the items, upper-cased.
    pub status: Option<Vec<Vec<u8>>>,
    /// An extended LIST (options or several patterns): plain `""` patterns
    /// no longer ask for the delimiter.
    pub extended: bool,
}

/// One listed name.
pub struct Row {
    pub name: Vec<u8>,
    pub attrs: Vec<&'static [u8]>,
    /// `("CHILDINFO" ("SUBSCRIBED"))` follows the name.
    pub childinfo: bool,
    /// A folder that exists and can be selected (gets STATUS).
    pub selectable: bool,
}

/// `(item ...)` of STATUS, upper-cased, each one RFC 3501 knows.
pub fn status_items(c: &mut Cursor) -> R<Vec<Vec<u8>>> {
    c.expect(b'(')?;
    let mut items = Vec::new();
    loop {
        let w = c.word()?;
        if !matches!(
            &w[..],
            b"MESSAGES" | b"RECENT" | b"UIDNEXT" | b"UIDVALIDITY" | b"UNSEEN" | b"HIGHESTMODSEQ"
        ) {
            return Err("unknown status item");
        }
        items.push(w);
        if c.eat(b')') {
            return Ok(items);
        }
        c.sp()?;
    }
}

/// The arguments after `LIST` / `LSUB` (the space after the verb included).
pub fn parse(c: &mut Cursor, lsub: bool) -> R<Args> {
    let mut a = Args::default();
    c.sp()?;
    if !lsub && c.eat(b'(') {
        a.extended = true;
        options(c, |c| match &c.word()?[..] {
            b"SUBSCRIBED" => {
                a.subscribed = true;
                a.ret_subscribed = true;
                Ok(())
            }
            b"REMOTE" => Ok(()),
            b"SPECIAL-USE" => {
                a.special = true;
                Ok(())
            }
            b"RECURSIVEMATCH" => {
                a.recursive = true;
                Ok(())
            }
            _ => Err("unknown list selection option"),
        })?;
        if a.recursive && !a.subscribed && !a.special {
            return Err("RECURSIVEMATCH needs another selection option");
        }
        c.sp()?;
    }
    a.reference = c.list_mailbox()?;
    c.sp()?;
    if !lsub && c.eat(b'(') {
        a.extended = true;
        loop {
            a.patterns.push(c.list_mailbox()?);
            if c.eat(b')') {
                break;
            }
            c.sp()?;
        }
    } else {
        a.patterns.push(c.list_mailbox()?);
    }
    if !lsub && c.eat(b' ') {
        a.extended = true;
        if !c.word()?.eq(b"RETURN") {
            return Err("expected RETURN");
        }
        c.sp()?;
        c.expect(b'(')?;
        options(c, |c| match &c.word()?[..] {
            b"SUBSCRIBED" => {
                a.ret_subscribed = true;
                Ok(())
            }
            b"CHILDREN" | b"SPECIAL-USE" => Ok(()),
            b"STATUS" => {
                c.sp()?;
                a.status = Some(status_items(c)?);
                Ok(())
            }
            _ => Err("unknown list return option"),
        })?;
    }
    c.end()?;
    Ok(a)
}

/// A space-separated option list after its `(`, through the `)`: `one`
/// reads each option (RFC 5258's selection and return options).
fn options(c: &mut Cursor, mut one: impl FnMut(&mut Cursor) -> R<()>) -> R<()> {
    let mut first = true;
    while !c.eat(b')') {
        if !first {
            c.sp()?;
        }
        first = false;
        one(c)?;
    }
    Ok(())
}

fn is(a: &[u8], b: &[u8]) -> bool {
    a == b || (folder::is_inbox(a) && folder::is_inbox(b))
}

/// The names `a` lists, in order, with their attributes.
pub fn rows(root: &Path, a: &Args, lsub: bool) -> std::io::Result<Vec<Row>> {
    let folders = folder::folders(root)?;
    // (name, exists): INBOX, the folders, and parents that do not exist
    // themselves (\Noselect).
    let mut all: Vec<(Vec<u8>, bool)> = vec![(b"INBOX".to_vec(), true)];
    for f in &folders {
        let mut i = 0;
        while let Some(d) = memchr::memchr(b'.', &f[i..]) {
            let parent = &f[..i + d];
            if !folders.iter().any(|x| x == parent) && !all.iter().any(|(x, _)| x == parent) {
                all.push((parent.to_vec(), false));
            }
            i += d + 1;
        }
        all.push((f.clone(), true));
    }
    let subs = if lsub || a.ret_subscribed || a.subscribed {
        folder::subscriptions(root)
    } else {
        Vec::new()
    };
    // Subscribed names that exist nowhere are listed (\NonExistent) by the
    // selection SUBSCRIBED only.
    let mut gone = Vec::new();
    if a.subscribed {
        for s in &subs {
            if !all.iter().any(|(x, _)| is(x, s)) && !gone.contains(s) {
                gone.push(s.clone());
            }
        }
    }
    all.extend(gone.iter().map(|g| (g.clone(), false)));
    all[1..].sort();
    let pats: Vec<Vec<u8>> = a
        .patterns
        .iter()
        .map(|p| [&a.reference[..], p].concat())
        .collect();
    let hit = |n: &[u8]| pats.iter().any(|p| matches(p, n));
    let subscribed = |n: &[u8]| subs.iter().any(|s| is(s, n));
    let mut out = Vec::new();
    for (name, real) in &all {
        if !hit(name) {
            continue;
        }
        let mut prefix = name.clone();
        prefix.push(b'.');
        let sub = subscribed(name);
        let nonexistent = gone.contains(name);
        let mut real = *real;
        let mut childinfo = false;
        if lsub && !sub {
            // An unsubscribed parent of a subscription that `%` cut off
            // is listed \Noselect (RFC 3501 §6.3.9).
            if !subs.iter().any(|s| s.starts_with(&prefix) && !hit(s)) {
                continue;
            }
            real = false;
        }
        if a.subscribed || a.special {
            let selected = |n: &[u8]| {
                (!a.subscribed || subscribed(n)) && (!a.special || special_use(n).is_some())
            };
            if a.recursive {
                childinfo = a.subscribed && subs.iter().any(|s| s.starts_with(&prefix) && !hit(s));
            }
            if !selected(name) && !childinfo {
                continue;
            }
        }
        let children = folders.iter().any(|f| f.starts_with(&prefix));
        let mut attrs: Vec<&'static [u8]> = Vec::new();
        if nonexistent {
            attrs.push(b"\\NonExistent");
        } else if !real {
            attrs.push(b"\\Noselect");
        }
        if !lsub {
            if !nonexistent {
                attrs.push(if children {
                    b"\\HasChildren"
                } else {
                    b"\\HasNoChildren"
                });
            }
            if a.ret_subscribed && sub {
                attrs.push(b"\\Subscribed");
            }
            if let Some(u) = special_use(name) {
                attrs.push(u);
            }
        }
        out.push(Row {
            name: name.clone(),
            attrs,
            childinfo,
            selectable: real && !nonexistent,
        });
    }
    Ok(out)
}

/// LIST wildcard matching: `*` anything, `%` anything but the separator;
/// INBOX matches case-insensitively.
pub fn matches(pat: &[u8], name: &[u8]) -> bool {
    let name_cmp: Vec<u8>;
    let (pat, name) = if folder::is_inbox(name) && pat.len() >= 5 && folder::is_inbox(&pat[..5]) {
        name_cmp = b"INBOX".to_vec();
        let mut p = b"INBOX".to_vec();
        p.extend_from_slice(&pat[5..]);
        (p, &name_cmp[..])
    } else {
        (pat.to_vec(), name)
    };
    // Dynamic programming, not backtracking: a pattern of many wildcards
    // costs len(pattern) * len(name), never more.
    let (p, n) = (&pat[..], name);
    let mut row = vec![false; n.len() + 1]; // matches of p[i..] against n[j..]
    row[n.len()] = true;
    for i in (0..p.len()).rev() {
        let mut next = vec![false; n.len() + 1];
        for j in (0..=n.len()).rev() {
            next[j] = match p[i] {
                b'*' => row[j] || (j < n.len() && next[j + 1]),
                b'%' => row[j] || (j < n.len() && n[j] != b'.' && next[j + 1]),
                c => j < n.len() && n[j] == c && row[j + 1],
            };
        }
        row = next;
    }
    row[0]
}

/// RFC 6154 attribute for well-known folder names.
pub fn special_use(name: &[u8]) -> Option<&'static [u8]> {
    let l = name.to_ascii_lowercase();
    Some(match &l[..] {
        b"sent" | b"sent messages" | b"sent items" => b"\\Sent",
        b"drafts" => b"\\Drafts",
        b"trash" | b"deleted messages" => b"\\Trash",
        b"junk" | b"spam" => b"\\Junk",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn list_patterns() {
        assert!(matches(b"*", b"a.b"));
        assert!(matches(b"%", b"a"));
        assert!(!matches(b"%", b"a.b"));
        assert!(matches(b"a.%", b"a.b"));
        assert!(matches(b"inbox", b"INBOX"));
        assert!(!matches(b"x*", b"a"));
        assert!(matches(b"a*b*%", b"a.x.b"));
        assert!(!matches(b"a%b", b"a.b"));
        let evil = [b'*'; 300].iter().chain(b"z").copied().collect::<Vec<u8>>();
        assert!(!matches(&evil, &[b'a'; 500]));
    }
}

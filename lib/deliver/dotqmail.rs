//! Dot-files (pipemail-dot(5)): which file applies to an address
//! extension, and the instructions in it (qmail's dot-qmail(5) syntax).

use super::Fail;

/// One delivery instruction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Instr {
    /// `./dir/` or `/dir/`: a Maildir (path ends with `/`).
    Maildir(Vec<u8>),
    /// `./file` or `/file`: an mbox file.
    Mbox(Vec<u8>),
    /// `|command`: run by `/bin/sh -c` in the home directory.
    Program(Vec<u8>),
    /// `&addr` or a line starting with a letter or digit: forward.
    Forward(Vec<u8>),
}

/// Longest dot-file read; a bigger one is an error (temporary).
pub const MAX_FILE: usize = 1 << 20;

/// The dot-file names to try for `dash` and `ext`, in qmail's order, each
/// with the part of the extension a `-default` form stands for:
/// `.qmail-a-b-c`, `.qmail-a-b-default`, `.qmail-a-default`, `.qmail-default`.
/// The extension is lower-cased and its dots become `:`. A name that would
/// hold a `/` is never offered, so no extension reaches outside the home.
/// With an empty dash only the basic `.qmail` (plus ext) is offered.
pub fn candidates(dash: &[u8], ext: &[u8]) -> Vec<(Vec<u8>, Option<Vec<u8>>)> {
    let ext: Vec<u8> = ext
        .iter()
        .map(|&c| {
            if c == b'.' {
                b':'
            } else {
                c.to_ascii_lowercase()
            }
        })
        .collect();
    let mut v = Vec::new();
    let mut push = |name: Vec<u8>, def: Option<Vec<u8>>| {
        if !name.contains(&b'/') && !name.contains(&0) && name.len() <= 255 {
            v.push((name, def));
        }
    };
    let mut exact = b".qmail".to_vec();
    exact.extend_from_slice(dash);
    exact.extend_from_slice(&ext);
    push(exact, None);
    if dash.is_empty() {
        return v;
    }
    for i in (0..=ext.len()).rev() {
        if i == 0 || ext[i - 1] == b'-' {
            let mut name = b".qmail".to_vec();
            name.extend_from_slice(dash);
            name.extend_from_slice(&ext[..i]);
            name.extend_from_slice(b"default");
            push(name, Some(ext[i..].to_vec()));
        }
    }
    v
}

/// Parses a dot-file. `forward_only` (the file's user-execute bit, or a
/// `+list` line) allows only forwards and comments. Trailing blanks are
/// cut; blank lines are skipped except as the first line (an error).
pub fn parse(text: &[u8], forward_only: bool) -> Result<Vec<Instr>, Fail> {
    let mut out = Vec::new();
    let mut forward_only = forward_only;
    let body = text.strip_suffix(b"\n").unwrap_or(text);
    if body.is_empty() {
        return Ok(out);
    }
    for (n, raw) in body.split(|&c| c == b'\n').enumerate() {
        let mut line = raw;
        while let [rest @ .., b' ' | b'\t' | b'\r'] = line {
            line = rest;
        }
        if line.is_empty() {
            if n == 0 {
                return Err(Fail::temp(
                    b"Uh-oh: first line of .qmail file is blank. (#4.2.1)",
                ));
            }
            continue;
        }
        let instr = match line[0] {
            b'#' => continue,
            b'+' => {
                if line == b"+list" {
                    forward_only = true;
                }
                continue;
            }
            b'|' => Instr::Program(line[1..].to_vec()),
            b'.' | b'/' if line.ends_with(b"/") => Instr::Maildir(line.to_vec()),
            b'.' | b'/' => Instr::Mbox(line.to_vec()),
            b'&' => Instr::Forward(check_addr(&line[1..])?),
            _ => Instr::Forward(check_addr(line)?),
        };
        if forward_only && !matches!(instr, Instr::Forward(_)) {
            return Err(Fail::temp(b"Uh-oh: .qmail has file or program delivery but is forward-only (x bit set). (#4.7.0)"));
        }
        out.push(instr);
    }
    Ok(out)
}

/// A forward target must be a bare address: no blanks, controls or `<>`.
fn check_addr(a: &[u8]) -> Result<Vec<u8>, Fail> {
    let bad = a.is_empty()
        || a.len() > crate::queue::MAX_ADDR
        || a.iter()
            .any(|&c| c <= b' ' || c == 0x7f || c == b'<' || c == b'>' || c == b'(' || c == b',');
    if bad {
        let mut t = b"Uh-oh: bad forward address in .qmail file: ".to_vec();
        crate::log::escape_into(&mut t, &a[..a.len().min(100)]);
        t.extend_from_slice(b" (#4.7.0)");
        return Err(Fail::temp(&t));
    }
    Ok(a.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(dash: &str, ext: &str) -> Vec<(String, Option<String>)> {
        candidates(dash.as_bytes(), ext.as_bytes())
            .into_iter()
            .map(|(n, d)| {
                (
                    String::from_utf8(n).unwrap(),
                    d.map(|d| String::from_utf8(d).unwrap()),
                )
            })
            .collect()
    }

    #[test]
    fn lookup_order_is_qmails() {
        let s = |x: &str| x.to_string();
        assert_eq!(
            names("-", "A-b.c-D"),
            vec![
                (s(".qmail-a-b:c-d"), None),
                (s(".qmail-a-b:c-default"), Some(s("d"))),
                (s(".qmail-a-default"), Some(s("b:c-d"))),
                (s(".qmail-default"), Some(s("a-b:c-d"))),
            ]
        );
        assert_eq!(names("", ""), vec![(s(".qmail"), None)]);
        assert_eq!(
            names("-", ""),
            vec![(s(".qmail-"), None), (s(".qmail-default"), Some(s("")))]
        );
        assert_eq!(
            names("-", "x-"),
            vec![
                (s(".qmail-x-"), None),
                (s(".qmail-x-default"), Some(s(""))),
                (s(".qmail-default"), Some(s("x-")))
            ]
        );
    }

    #[test]
    fn no_name_leaves_the_home() {
        for (n, _) in candidates(b"-", b"../x-y/../../etc/passwd") {
            assert!(!n.contains(&b'/'), "{:?}", String::from_utf8_lossy(&n));
            assert!(n.starts_with(b".qmail-"));
        }
        assert_eq!(names("-", "../x").len(), 1); // only .qmail-default
        assert_eq!(names("-", "a-../x")[0].0, ".qmail-a-default");
    }

    #[test]
    fn parses_every_instruction_kind() {
        let t = b"# comment\n./Maildir/\n./mbox  \n/var/mail/joe\n|preline cat >/dev/null\n&joe@example.org\nbob@example.net\n\n";
        assert_eq!(
            parse(t, false).unwrap(),
            vec![
                Instr::Maildir(b"./Maildir/".to_vec()),
                Instr::Mbox(b"./mbox".to_vec()),
                Instr::Mbox(b"/var/mail/joe".to_vec()),
                Instr::Program(b"preline cat >/dev/null".to_vec()),
                Instr::Forward(b"joe@example.org".to_vec()),
                Instr::Forward(b"bob@example.net".to_vec()),
            ]
        );
        assert_eq!(parse(b"", false).unwrap(), vec![]);
        assert_eq!(
            parse(b"./Maildir/", false).unwrap(),
            vec![Instr::Maildir(b"./Maildir/".to_vec())]
        );
    }

    #[test]
    fn errors_are_temporary() {
        assert_eq!(parse(b"\n./Maildir/\n", false).unwrap_err().code, 111);
        assert_eq!(parse(b"./Maildir/\n", true).unwrap_err().code, 111);
        assert_eq!(parse(b"+list\n|cat\n", false).unwrap_err().code, 111);
        assert_eq!(
            parse(b"&a@b\n", true).unwrap(),
            vec![Instr::Forward(b"a@b".to_vec())]
        );
        assert_eq!(parse(b"&a b@c\n", false).unwrap_err().code, 111);
        assert_eq!(parse(b"&\n", false).unwrap_err().code, 111);
    }
}

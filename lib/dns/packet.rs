//! DNS messages (RFC 1035): building a query and parsing an answer.
//!
//! Everything here works on untrusted bytes: every length is checked
//! against the end of the packet, compression pointers must point strictly
//! backwards (so a loop is impossible) and their number is limited, and a
//! name longer than 255 bytes is refused. A hostile packet is an error,
//! never a panic or a hang.

pub const TYPE_A: u16 = 1;
pub const TYPE_CNAME: u16 = 5;
pub const TYPE_PTR: u16 = 12;
pub const TYPE_MX: u16 = 15;
pub const TYPE_TXT: u16 = 16;
pub const TYPE_AAAA: u16 = 28;
pub const TYPE_OPT: u16 = 41;
pub const CLASS_IN: u16 = 1;

pub const RCODE_OK: u8 = 0;
pub const RCODE_FORMERR: u8 = 1;
pub const RCODE_SERVFAIL: u8 = 2;
pub const RCODE_NXDOMAIN: u8 = 3;

/// The UDP payload size we announce with EDNS0 (RFC 6891; 1232 is the
/// DNS flag day 2020 value that avoids IP fragmentation).
pub const EDNS_SIZE: u16 = 1232;

const MAX_NAME: usize = 255;
const MAX_POINTERS: usize = 64;

/// Why a packet was refused.
#[derive(Debug, PartialEq, Eq, Clone)]
pub enum Malformed {
    /// Not an answer to our question (wrong id, question or flags): ignore it.
    NotOurs,
    /// Ours, but broken.
    Bad(&'static str),
}

/// One resource record of the answer section, its data still undecoded.
#[derive(Debug, Clone)]
pub struct Record {
    pub name: Vec<u8>,
    pub rtype: u16,
    pub class: u16,
    /// Offset of the rdata in the packet (names in it may point backwards).
    pub rdata: usize,
    pub rdlen: usize,
}

/// A parsed answer.
#[derive(Debug)]
pub struct Answer {
    pub rcode: u8,
    pub truncated: bool,
    pub authoritative: bool,
    pub answers: Vec<Record>,
}

/// Encodes a domain name (dots between labels, an optional final dot).
/// Labels are 1 to 63 bytes, the whole name at most 255.
pub fn encode_name(name: &[u8]) -> Option<Vec<u8>> {
    let name = name.strip_suffix(b".").unwrap_or(name);
    let mut out = Vec::with_capacity(name.len() + 2);
    if !name.is_empty() {
        for label in name.split(|&c| c == b'.') {
            if label.is_empty() || label.len() > 63 {
                return None;
            }
            out.push(label.len() as u8);
            out.extend_from_slice(label);
        }
    }
    out.push(0);
    if out.len() > MAX_NAME {
        return None;
    }
    Some(out)
}

/// A query for `name`/`qtype` with id `id`, recursion desired, EDNS0.
pub fn query(id: u16, name: &[u8], qtype: u16) -> Option<Vec<u8>> {
    let qname = encode_name(name)?;
    let mut p = Vec::with_capacity(12 + qname.len() + 4 + 11);
    p.extend_from_slice(&id.to_be_bytes());
    p.extend_from_slice(&[0x01, 0x00]); // RD
    p.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 1]); // qd=1 an=0 ns=0 ar=1
    p.extend_from_slice(&qname);
    p.extend_from_slice(&qtype.to_be_bytes());
    p.extend_from_slice(&CLASS_IN.to_be_bytes());
    // OPT pseudo-record: root name, type OPT, class = payload size, ttl 0, no data.
    p.push(0);
    p.extend_from_slice(&TYPE_OPT.to_be_bytes());
    p.extend_from_slice(&EDNS_SIZE.to_be_bytes());
    p.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
    Some(p)
}

fn u16_at(p: &[u8], at: usize) -> Result<u16, Malformed> {
    match p.get(at..at + 2) {
        Some(b) => Ok(u16::from_be_bytes([b[0], b[1]])),
        None => Err(Malformed::Bad("packet too short")),
    }
}

/// Reads the (possibly compressed) name at `at`: the name in dotted form,
/// lower-cased, without the final dot ("" for the root), and the offset
/// just after it in the packet.
pub fn read_name(p: &[u8], at: usize) -> Result<(Vec<u8>, usize), Malformed> {
    let bad = Malformed::Bad;
    let mut name = Vec::new();
    let mut pos = at;
    let mut after = None;
    let mut pointers = 0;
    let mut wire_len = 1;
    loop {
        let len = *p.get(pos).ok_or(bad("name past the end"))? as usize;
        match len & 0xc0 {
            0x00 => {
                if len == 0 {
                    return Ok((name, after.unwrap_or(pos + 1)));
                }
                let label = p
                    .get(pos + 1..pos + 1 + len)
                    .ok_or(bad("label past the end"))?;
                wire_len += len + 1;
                if wire_len > MAX_NAME {
                    return Err(bad("name too long"));
                }
                if !name.is_empty() {
                    name.push(b'.');
                }
                name.extend(label.iter().map(|c| c.to_ascii_lowercase()));
                pos += 1 + len;
            }
            0xc0 => {
                let target =
                    (u16_at(p, pos).map_err(|_| bad("pointer past the end"))? & 0x3fff) as usize;
                // Strictly backwards: every jump lowers pos, so no loop can form.
                if target >= pos {
                    return Err(bad("compression pointer does not point backwards"));
                }
                pointers += 1;
                if pointers > MAX_POINTERS {
                    return Err(bad("too many compression pointers"));
                }
                if after.is_none() {
                    after = Some(pos + 2);
                }
                pos = target;
            }
            _ => return Err(bad("unknown label type")),
        }
    }
}

/// Parses `p` as the answer to the query `q` (id, question, class and
/// type must match). Records of the answer section are returned
/// undecoded; use the `rdata_*` helpers.
pub fn parse(p: &[u8], q: &[u8]) -> Result<Answer, Malformed> {
    // Until the id and the question match, a datagram is anybody's: a
    // short or garbled one is ignored like a foreign one, so it cannot end
    // the wait for the real answer.
    if p.len() < 12 || q.len() < 12 || p[0..2] != q[0..2] {
        return Err(Malformed::NotOurs);
    }
    if p[2] & 0x80 == 0 || (p[2] >> 3) & 0x0f != 0 {
        return Err(Malformed::NotOurs); // not a response, or another opcode
    }
    let truncated = p[2] & 0x02 != 0;
    let authoritative = p[2] & 0x04 != 0;
    let rcode = p[3] & 0x0f;
    let qd = u16_at(p, 4)?;
    let an = u16_at(p, 6)? as usize;
    if qd != 1 {
        // Some servers omit the question in a FORMERR/truncated reply.
        if qd == 0 && (truncated || rcode != RCODE_OK) {
            return Ok(Answer {
                rcode,
                truncated,
                authoritative,
                answers: Vec::new(),
            });
        }
        return Err(Malformed::NotOurs);
    }
    let (qname, mut pos) = read_name(p, 12).map_err(|_| Malformed::NotOurs)?;
    let (ourname, qend) = read_name(q, 12).map_err(|_| Malformed::NotOurs)?;
    if qname != ourname || p.get(pos..pos + 4) != q.get(qend..qend + 4) {
        return Err(Malformed::NotOurs);
    }
    pos += 4;
    let mut answers = Vec::with_capacity(an.min(64));
    if truncated {
        return Ok(Answer {
            rcode,
            truncated,
            authoritative,
            answers,
        });
    }
    for _ in 0..an {
        let (name, at) = read_name(p, pos)?;
        let rtype = u16_at(p, at)?;
        let class = u16_at(p, at + 2)?;
        let rdlen = u16_at(p, at + 8)? as usize;
        let rdata = at + 10;
        if rdata + rdlen > p.len() {
            return Err(Malformed::Bad("record data past the end"));
        }
        answers.push(Record {
            name,
            rtype,
            class,
            rdata,
            rdlen,
        });
        pos = rdata + rdlen;
    }
    Ok(Answer {
        rcode,
        truncated,
        authoritative,
        answers,
    })
}

/// The data of `r` as bytes.
pub fn rdata<'a>(p: &'a [u8], r: &Record) -> &'a [u8] {
    &p[r.rdata..r.rdata + r.rdlen]
}

/// A name that is the whole rdata (CNAME, PTR); it must end inside it.
pub fn rdata_name(p: &[u8], r: &Record) -> Result<Vec<u8>, Malformed> {
    let (n, end) = read_name(p, r.rdata)?;
    if end != r.rdata + r.rdlen {
        return Err(Malformed::Bad("name does not fill its record"));
    }
    Ok(n)
}

/// MX rdata: preference and exchange.
pub fn rdata_mx(p: &[u8], r: &Record) -> Result<(u16, Vec<u8>), Malformed> {
    if r.rdlen < 3 {
        return Err(Malformed::Bad("MX record too short"));
    }
    let pref = u16_at(p, r.rdata)?;
    let (n, end) = read_name(p, r.rdata + 2)?;
    if end != r.rdata + r.rdlen {
        return Err(Malformed::Bad("name does not fill its record"));
    }
    Ok((pref, n))
}

/// TXT rdata: its character-strings joined.
pub fn rdata_txt(p: &[u8], r: &Record) -> Result<Vec<u8>, Malformed> {
    let d = rdata(p, r);
    let mut out = Vec::with_capacity(d.len());
    let mut i = 0;
    while i < d.len() {
        let n = d[i] as usize;
        let s = d
            .get(i + 1..i + 1 + n)
            .ok_or(Malformed::Bad("TXT string past its record"))?;
        out.extend_from_slice(s);
        i += 1 + n;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q() -> Vec<u8> {
        query(0x1234, b"example.org", TYPE_MX).unwrap()
    }

    /// A reply to q() with the given answer bytes appended.
    fn reply(an: u16, rest: &[u8]) -> Vec<u8> {
        let q = q();
        let mut p = vec![0x12, 0x34, 0x81, 0x80, 0, 1];
        p.extend_from_slice(&an.to_be_bytes());
        p.extend_from_slice(&[0, 0, 0, 0]);
        p.extend_from_slice(&q[12..12 + 13 + 4]);
        p.extend_from_slice(rest);
        p
    }

    #[test]
    fn encodes_names() {
        assert_eq!(encode_name(b"a.bc.").unwrap(), b"\x01a\x02bc\x00");
        assert_eq!(encode_name(b"").unwrap(), b"\x00");
        assert!(encode_name(b"a..b").is_none());
        assert!(encode_name(&[b'x'; 64]).is_none());
        let long: Vec<u8> = std::iter::repeat(b"abcdefghi.".to_vec())
            .take(26)
            .flatten()
            .collect();
        assert!(encode_name(&long).is_none());
    }

    #[test]
    fn parses_an_mx_answer_with_compression() {
        // name = pointer to the question name (offset 12), MX 10 mail.<ptr 12>
        let mut rr = vec![0xc0, 12, 0, 15, 0, 1, 0, 0, 0, 60, 0, 9, 0, 10, 4];
        rr.extend_from_slice(b"mail");
        rr.extend_from_slice(&[0xc0, 12]);
        let p = reply(1, &rr);
        let a = parse(&p, &q()).unwrap();
        assert_eq!(a.rcode, 0);
        assert_eq!(a.answers.len(), 1);
        assert_eq!(a.answers[0].name, b"example.org");
        assert_eq!(
            rdata_mx(&p, &a.answers[0]).unwrap(),
            (10, b"mail.example.org".to_vec())
        );
    }

    #[test]
    fn refuses_a_pointer_loop() {
        // The record's name is a pointer to itself.
        let at = 12 + 13 + 4;
        let rr = vec![0xc0, at as u8, 0, 15, 0, 1, 0, 0, 0, 60, 0, 0];
        let p = reply(1, &rr);
        assert!(matches!(parse(&p, &q()), Err(Malformed::Bad(_))));
    }

    #[test]
    fn refuses_a_two_pointer_loop_and_forward_pointers() {
        let at = (12 + 13 + 4) as u8;
        // label "a" then pointer forward to the next pointer, which points back.
        let rr = vec![
            1,
            b'a',
            0xc0,
            at + 4,
            0xc0,
            at,
            0,
            15,
            0,
            1,
            0,
            0,
            0,
            60,
            0,
            0,
        ];
        let p = reply(1, &rr);
        assert!(matches!(parse(&p, &q()), Err(Malformed::Bad(_))));
        let mut p = reply(1, &[0xc0, 200]);
        p.resize(300, 0);
        assert!(matches!(parse(&p, &q()), Err(Malformed::Bad(_))));
    }

    #[test]
    fn refuses_lengths_past_the_end() {
        // rdlength 50 with 2 bytes of data
        let rr = vec![0xc0, 12, 0, 15, 0, 1, 0, 0, 0, 60, 0, 50, 0, 10];
        assert!(matches!(
            parse(&reply(1, &rr), &q()),
            Err(Malformed::Bad(_))
        ));
        // a label longer than what is left
        let rr = vec![30, b'a', b'b'];
        assert!(matches!(
            parse(&reply(1, &rr), &q()),
            Err(Malformed::Bad(_))
        ));
        // answer count larger than the records present
        assert!(matches!(
            parse(&reply(3, &[]), &q()),
            Err(Malformed::Bad(_))
        ));
        // a record cut inside its fixed part
        assert!(matches!(
            parse(&reply(1, &[0xc0, 12, 0, 15, 0]), &q()),
            Err(Malformed::Bad(_))
        ));
        // MX whose name runs past its rdata
        let mut rr = vec![0xc0, 12, 0, 15, 0, 1, 0, 0, 0, 60, 0, 3, 0, 10, 4];
        rr.extend_from_slice(b"mail\x00");
        let p = reply(1, &rr);
        let a = parse(&p, &q()).unwrap();
        assert!(rdata_mx(&p, &a.answers[0]).is_err());
        // TXT string longer than its record
        let rr = vec![0xc0, 12, 0, 16, 0, 1, 0, 0, 0, 60, 0, 3, 9, b'a', b'b'];
        let p = reply(1, &rr);
        let a = parse(&p, &q()).unwrap();
        assert!(rdata_txt(&p, &a.answers[0]).is_err());
    }

    #[test]
    fn refuses_truncated_headers_and_foreign_answers() {
        // Short or garbled before the question matched: anybody's datagram,
        // ignored like a foreign one (it must not end the try).
        let p = reply(1, &[]);
        for n in 0..12 {
            assert_eq!(parse(&p[..n], &q()).unwrap_err(), Malformed::NotOurs);
        }
        let mut p = p[..12].to_vec();
        p.extend_from_slice(&[63, b'a']);
        assert_eq!(parse(&p, &q()).unwrap_err(), Malformed::NotOurs);
        let mut p = reply(0, &[]);
        p[1] = 0x35; // wrong id
        assert_eq!(parse(&p, &q()).unwrap_err(), Malformed::NotOurs);
        let mut p = reply(0, &[]);
        p[12 + 1] = b'X'; // another question name
        assert_eq!(parse(&p, &q()).unwrap_err(), Malformed::NotOurs);
        let mut p = reply(0, &[]);
        p[12 + 13 + 1] = 1; // another type
        assert_eq!(parse(&p, &q()).unwrap_err(), Malformed::NotOurs);
        let mut p = reply(0, &[]);
        p[2] = 0x01; // a query, not a response
        assert_eq!(parse(&p, &q()).unwrap_err(), Malformed::NotOurs);
    }

    #[test]
    fn never_panics_on_random_bytes() {
        let q = q();
        let mut seed = 12345u64;
        for n in 0..20000 {
            let len = (n % 90) + 12;
            let mut p = reply(1, &[]);
            p.resize(len.max(p.len()), 0);
            for b in p.iter_mut().skip(4) {
                seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                if (seed >> 60) < 3 {
                    *b = (seed >> 33) as u8;
                }
            }
            if let Ok(a) = parse(&p, &q) {
                for r in &a.answers {
                    let _ = rdata_mx(&p, r);
                    let _ = rdata_txt(&p, r);
                    let _ = rdata_name(&p, r);
                }
            }
        }
    }
}

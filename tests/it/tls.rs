//! TLS (issue 12): tls-wrap in front of smtp-recv, pop3-login and
//! imap-login, implicit and STARTTLS (UCSPI-TLS), driven by real clients:
//! Python's smtplib/poplib/imaplib with ssl, openssl s_client, curl,
//! swaks, msmtp and fetchmail. The clients connect from 127.0.0.2 while a
//! rule opens the relay for 127.0.0.1, so the client's real address must
//! survive the wrapper. Built on the e2e harness (a scratch system, real
//! queue and deliveries, every process stopped by pid).

use crate::common::*;
use crate::e2e::{find, passwd, split_fields};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// A peer program is there; under CI=true a missing one fails the test.
fn have(tool: &str, args: &[&str]) -> bool {
    let ok = Command::new(tool)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "{tool} is missing (CI=true)"
        );
        eprintln!("skipped: {tool} is missing");
    }
    ok
}

/// A system with ann (password sesame), a certificate made by
/// scripts/make-cert, and relay rules opening the relay for 127.0.0.1.
fn system(tag: &str) -> Option<(Sys, PathBuf, PathBuf)> {
    if !have("python3", &["-c", "import ssl, smtplib, poplib, imaplib"]) {
        return None;
    }
    let s = Sys::new(tag, &["ann"]);
    if !passwd(&s) {
        return None;
    }
    let dir = s.base.join("tls");
    let st = Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/make-cert"))
        .arg(&dir)
        .arg("mail.example.org")
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success(), "make-cert");
    if s.root {
        // The SMTP wrapper runs as the servers' uid.
        chown(&dir.join("key.pem"), s.uid, s.gid);
    }
    let rules = s.base.join("smtp.rules");
    std::fs::write(&rules, "127.0.0.1:allow,RELAYCLIENT=\"\"\n").unwrap();
    Some((s, dir.join("cert.pem"), dir.join("key.pem")))
}

fn tls_env(cert: &Path, key: &Path) -> Vec<(String, String)> {
    vec![
        ("CERTFILE".into(), cert.to_string_lossy().into_owned()),
        ("KEYFILE".into(), key.to_string_lossy().into_owned()),
        (
            "SMTPAUTH".into(),
            bin("check-password").to_string_lossy().into_owned(),
        ),
        ("CHECKPASSWORD_DELAY".into(), "50".into()),
    ]
}

fn envs(v: &[(String, String)]) -> Vec<(&str, &str)> {
    v.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

fn p(name: &str) -> String {
    bin(name).to_string_lossy().into_owned()
}

/// tcp-serve -x rules [tls-wrap [-d]] smtp-recv; returns the port.
fn smtp(s: &mut Sys, name: &str, cert: &Path, key: &Path, delayed: bool) -> u16 {
    let e = tls_env(cert, key);
    let rules = s.base.join("smtp.rules").to_string_lossy().into_owned();
    let mut prog = vec![p("tls-wrap")];
    if delayed {
        prog.push("-d".into());
    }
    prog.push(p("smtp-recv"));
    s.serve(name, &envs(&e), &["-x", &rules], &prog, true)
}

/// tcp-serve [tls-wrap [-d]] pop3-login or imap-login (root: check-password
/// switches to the user).
fn login_server(s: &mut Sys, name: &str, cert: &Path, key: &Path, delayed: bool) -> u16 {
    let e = tls_env(cert, key);
    let mut prog = vec![p("tls-wrap")];
    if delayed {
        prog.push("-d".into());
    }
    if name.starts_with("pop3") {
        prog.extend([p("pop3-login"), "localhost".into()]);
    } else {
        prog.push(p("imap-login"));
    }
    prog.extend([
        p("check-password"),
        p(if name.starts_with("pop3") {
            "pop3d"
        } else {
            "imapd"
        }),
        "Maildir".into(),
    ]);
    s.serve(name, &envs(&e), &[], &prog, false)
}

const MSG: &[u8] = b"From: Ann <ann@mail.example.org>\r\nTo: ann@mail.example.org\r\n\
Subject: over TLS\r\n\r\n.leading dot\r\n8-bit caf\xc3\xa9\r\nlast line\r\n";

/// Waits for `n` messages in ann's Maildir; checks each is MSG exactly
/// after the four lines the system adds (with `exact`; else that its body
/// arrived: swaks and msmtp add to the message), and returns smtp-recv's
/// Received fields.
fn arrived(s: &Sys, n: usize, exact: bool) -> Vec<String> {
    wait_until(30, "the messages in ann's Maildir", || {
        s.mail_of("ann").len() >= n
    });
    let mut rec = Vec::new();
    for m in s.mail_of("ann") {
        let (names, rest) = split_fields(&m, 4);
        assert_eq!(
            names,
            ["Return-Path", "Delivered-To", "Received", "Received"]
        );
        if exact {
            assert_eq!(rest, lf(MSG), "byte-exact");
        } else {
            assert!(find(rest, b"\n\n.leading dot\n8-bit caf\xc3\xa9\nlast line\n").is_some());
        }
        let i = find(&m, b"\nReceived: from ").unwrap() + 1;
        let e = find(&m[i..], b"\nFrom: ").unwrap() + i;
        rec.push(String::from_utf8_lossy(&m[i..e]).into_owned());
    }
    rec
}

const SMTP_PY: &str = r#"
import smtplib, ssl, sys
mode, port, cafile, path = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
ctx = ssl.create_default_context(cafile=cafile)
src = ('127.0.0.2', 0)
if mode == 'starttls':
    s = smtplib.SMTP('127.0.0.1', port, timeout=30, source_address=src)
    s.ehlo('client.example')
    print('clear', s.has_extn('starttls'), s.has_extn('auth'))
    print('auth in clear', s.docmd('AUTH', 'PLAIN AGFubgBzZXNhbWU='))
    print('starttls', s.starttls(context=ctx)[0])
else:
    s = smtplib.SMTP_SSL('127.0.0.1', port, timeout=30, context=ctx, source_address=src)
s.ehlo('client.example')
print('tls', s.has_extn('starttls'), s.has_extn('auth'))
print('relay', s.mail('ann@mail.example.org')[0], s.rcpt('x@remote.example'))
s.rset()
print('login', s.login('ann', 'sesame')[0])
print('relay', s.mail('ann@mail.example.org')[0], s.rcpt('x@remote.example')[0])
s.rset()
print('send', s.sendmail('ann@mail.example.org', ['ann@mail.example.org'], open(path, 'rb').read()))
s.quit()
"#;

#[test]
fn smtplib_starttls_and_smtps_keep_the_clients_address_and_deliver_byte_exact() {
    let Some((mut s, cert, key)) = system("tls-smtplib") else {
        return;
    };
    let port = smtp(&mut s, "smtp", &cert, &key, true);
    let sport = smtp(&mut s, "smtps", &cert, &key, false);
    s.queue(&[]);
    let m = s.base.join("m");
    std::fs::write(&m, MSG).unwrap();
    let c = cert.to_str().unwrap();
    let out = py(
        SMTP_PY,
        &["starttls", &port.to_string(), c, m.to_str().unwrap()],
    );
    assert_eq!(
        out,
        "clear True False\n\
auth in clear (538, b'5.7.11 encryption required for requested authentication mechanism')\n\
starttls 220\n\
tls False True\n\
relay 250 (554, b'5.7.1 relaying denied')\n\
login 235\n\
relay 250 250\n\
send {}\n"
    );
    let out = py(
        SMTP_PY,
        &["implicit", &sport.to_string(), c, m.to_str().unwrap()],
    );
    assert_eq!(
        out,
        "tls False True\n\
relay 250 (554, b'5.7.1 relaying denied')\n\
login 235\n\
relay 250 250\n\
send {}\n"
    );
    let rec = arrived(&s, 2, true);
    for r in &rec {
        assert!(r.contains("[127.0.0.2])"), "{r}");
        assert!(r.contains("(AUTH ann)"), "{r}");
        assert!(r.contains(" with ESMTPSA (TLSv1."), "{r}");
    }
    let log = s.log_text("smtp");
    assert!(log.contains("tls-wrap: pid "), "{log}");
    assert!(log.contains("info: tls protocol=TLSv1.3"), "{log}");
    assert!(log.contains("remote=127.0.0.2"), "{log}");
}

/// CVE-2011-0411: a command pipelined behind STARTTLS in the same packet
/// must not be answered inside TLS.
const INJECT_PY: &str = r#"
import socket, ssl, sys
port, cafile = int(sys.argv[1]), sys.argv[2]
c = socket.create_connection(('127.0.0.1', port), timeout=30)
f = c.makefile('rb')
def reply():
    lines = []
    while True:
        l = f.readline()
        lines.append(l)
        if l[3:4] != b'-':
            return b''.join(lines)
print(reply()[:4])
c.sendall(b'EHLO x\r\n'); reply()
c.sendall(b'STARTTLS\r\nRSET\r\n')
print(reply())
ctx = ssl.create_default_context(cafile=cafile)
t = ctx.wrap_socket(c, server_hostname='127.0.0.1')
t.settimeout(1)
try:
    print('unasked', t.recv(100))
except socket.timeout:
    print('nothing unasked')
t.settimeout(30)
t.sendall(b'NOOP\r\n')
print(t.recv(100))
t.sendall(b'QUIT\r\n')
print(t.recv(100)[:4])
"#;

#[test]
fn commands_pipelined_behind_starttls_are_discarded() {
    let Some((mut s, cert, key)) = system("tls-inject") else {
        return;
    };
    let port = smtp(&mut s, "smtp", &cert, &key, true);
    let out = py(INJECT_PY, &[&port.to_string(), cert.to_str().unwrap()]);
    assert_eq!(
        out,
        "b'220 '\nb'220 2.0.0 ready to start TLS\\r\\n'\nnothing unasked\n\
b'250 2.0.0 ok\\r\\n'\nb'221 '\n"
    );
    assert!(s
        .log_text("smtp")
        .contains("discarded 6 bytes sent after STARTTLS remote=127.0.0.1"));
}

const POP_IMAP_PY: &str = r#"
import poplib, imaplib, ssl, sys
mode, pport, iport, cafile, path = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
want = open(path, 'rb').read()
ctx = ssl.create_default_context(cafile=cafile)
if mode == 'starttls':
    p = poplib.POP3('127.0.0.1', pport, timeout=30)
    caps = p.capa()
    print('pop clear', 'STLS' in caps, 'USER' in caps)
    try:
        p.user('ann')
    except poplib.error_proto as e:
        print('pop user in clear', e)
    print('pop stls', p.stls(context=ctx))
    caps = p.capa()
    print('pop tls', 'STLS' in caps, 'USER' in caps)
else:
    p = poplib.POP3_SSL('127.0.0.1', pport, timeout=30, context=ctx)
p.user('ann'); p.pass_('sesame')
lines = p.retr(1)[1]
print('pop same', b'\n'.join(lines) + b'\n' == want)
p.quit()
if mode == 'starttls':
    m = imaplib.IMAP4('127.0.0.1', iport, timeout=30)
    print('imap clear', 'STARTTLS' in m.capabilities, 'LOGINDISABLED' in m.capabilities)
    try:
        m.login('ann', 'sesame')
    except m.error as e:
        print('imap login in clear', e)
    print('imap starttls', m.starttls(ssl_context=ctx)[0])
    print('imap tls', 'STARTTLS' in m.capabilities, 'AUTH=PLAIN' in m.capabilities)
else:
    m = imaplib.IMAP4_SSL('127.0.0.1', iport, timeout=30, ssl_context=ctx)
print('imap login', m.login('ann', 'sesame')[0])
m.select('INBOX')
typ, d = m.fetch('1', '(BODY.PEEK[])')
print('imap same', d[0][1].replace(b'\r\n', b'\n') == want)
m.logout()
"#;

/// A message in ann's Maildir/new, as stored (LF line ends); returns a
/// copy's path (the servers move the original to cur/).
fn deliver(s: &Sys) -> PathBuf {
    let d = s.user_home("ann").join("Maildir");
    std::fs::write(d.join("new").join("1700000000.1.test"), lf(MSG)).unwrap();
    let f = s.base.join("want");
    std::fs::write(&f, lf(MSG)).unwrap();
    if s.root {
        chown_r(&d, s.uid, s.gid);
    }
    f
}

#[test]
fn poplib_and_imaplib_stls_starttls_and_implicit_log_in_and_read_byte_exact() {
    let Some((mut s, cert, key)) = system("tls-popimap") else {
        return;
    };
    let f = deliver(&s);
    let pop = login_server(&mut s, "pop3", &cert, &key, true);
    let imap = login_server(&mut s, "imap", &cert, &key, true);
    let pops = login_server(&mut s, "pop3s", &cert, &key, false);
    let imaps = login_server(&mut s, "imaps", &cert, &key, false);
    let c = cert.to_str().unwrap();
    let f = f.to_str().unwrap();
    let out = py(
        POP_IMAP_PY,
        &["starttls", &pop.to_string(), &imap.to_string(), c, f],
    );
    assert_eq!(
        out,
        "pop clear True False\n\
pop user in clear b'-ERR [AUTH] plaintext authentication disallowed on an unencrypted connection, use STLS'\n\
pop stls b'+OK begin TLS negotiation'\n\
pop tls False True\n\
pop same True\n\
imap clear True True\n\
imap login in clear b'[PRIVACYREQUIRED] Plaintext authentication disallowed.'\n\
imap starttls OK\n\
imap tls False True\n\
imap login OK\n\
imap same True\n"
    );
    let out = py(
        POP_IMAP_PY,
        &["implicit", &pops.to_string(), &imaps.to_string(), c, f],
    );
    assert_eq!(out, "pop same True\nimap login OK\nimap same True\n");
}

/// Runs a client with `input` on stdin (else /dev/null); returns
/// (success, stdout+stderr).
fn client(c: &mut Command, input: Option<&Path>) -> (bool, String) {
    let i = match input {
        Some(p) => Stdio::from(std::fs::File::open(p).unwrap()),
        None => Stdio::null(),
    };
    let o = c.stdin(i).output().unwrap();
    let mut t = String::from_utf8_lossy(&o.stdout).into_owned();
    t.push_str(&String::from_utf8_lossy(&o.stderr));
    (o.status.success(), t)
}

#[test]
fn openssl_s_client_starttls_and_implicit() {
    if !have("openssl", &["version"]) {
        return;
    }
    let Some((mut s, cert, key)) = system("tls-sclient") else {
        return;
    };
    let ports = [
        ("smtp", smtp(&mut s, "smtp", &cert, &key, true)),
        ("smtps", smtp(&mut s, "smtps", &cert, &key, false)),
        ("pop3", login_server(&mut s, "pop3", &cert, &key, true)),
        ("imap", login_server(&mut s, "imap", &cert, &key, true)),
        ("imaps", login_server(&mut s, "imaps", &cert, &key, false)),
    ];
    for (proto, port) in ports {
        let input = match proto {
            "smtp" | "smtps" => "EHLO c.example\nQUIT\n",
            "pop3" => "CAPA\nQUIT\n",
            _ => "a CAPABILITY\na LOGOUT\n",
        };
        let inp = s.base.join(format!("{proto}.in"));
        std::fs::write(&inp, input).unwrap();
        let mut c = Command::new("openssl");
        c.args(["s_client", "-connect", &format!("127.0.0.1:{port}")])
            .args(["-CAfile", cert.to_str().unwrap(), "-verify_return_error"])
            .args(["-crlf", "-quiet", "-ign_eof"])
            .stdin(std::fs::File::open(&inp).unwrap());
        if !proto.ends_with('s') {
            c.args(["-starttls", proto]);
        }
        let o = c.output().unwrap();
        let out = String::from_utf8_lossy(&o.stdout).into_owned();
        match proto {
            "smtp" | "smtps" => {
                assert!(out.contains("250 AUTH PLAIN LOGIN\r\n"), "{proto}: {out}");
                assert!(!out.contains("STARTTLS"), "{proto}: {out}");
                assert!(
                    out.ends_with("221 2.0.0 mail.example.org closing connection\r\n"),
                    "{proto}: {out}"
                );
            }
            "pop3" => {
                assert!(out.contains("\r\nUSER\r\nSASL PLAIN\r\n"), "{out}");
                assert!(!out.contains("STLS"), "{out}");
                assert!(out.ends_with("+OK bye\r\n"), "{out}");
            }
            _ => {
                assert!(
                    out.contains(
                        "* CAPABILITY IMAP4rev1 LITERAL+ SASL-IR ID ENABLE IDLE AUTH=PLAIN\r\n"
                    ),
                    "{proto}: {out}"
                );
                assert!(
                    out.ends_with("a OK Logout completed.\r\n"),
                    "{proto}: {out}"
                );
            }
        }
    }
}

#[test]
fn curl_swaks_msmtp_and_fetchmail_with_their_tls_defaults() {
    if !have("curl", &["--version"]) || !have("swaks", &["--version"]) {
        return;
    }
    if !have("msmtp", &["--version"]) || !have("fetchmail", &["--version"]) {
        return;
    }
    let Some((mut s, cert, key)) = system("tls-clients") else {
        return;
    };
    let smtp_port = smtp(&mut s, "smtp", &cert, &key, true);
    let smtps_port = smtp(&mut s, "smtps", &cert, &key, false);
    s.queue(&[]);
    let m = s.base.join("m");
    std::fs::write(&m, MSG).unwrap();
    let c = cert.to_str().unwrap();
    let mut sent = 0;
    for url in [
        format!("smtp://127.0.0.1:{smtp_port}"),
        format!("smtps://127.0.0.1:{smtps_port}"),
    ] {
        let (ok, t) = client(
            Command::new("curl")
                .args(["-sS", "--ssl-reqd", "--cacert", c, &url])
                .args(["-u", "ann:sesame", "--mail-from", "ann@mail.example.org"])
                .args([
                    "--mail-rcpt",
                    "ann@mail.example.org",
                    "-T",
                    m.to_str().unwrap(),
                ]),
            None,
        );
        assert!(ok, "curl {url}: {t}");
        sent += 1;
    }
    let (ok, t) = client(
        Command::new("swaks")
            .args([
                "--server",
                "127.0.0.1",
                "--port",
                &smtp_port.to_string(),
                "--tls",
            ])
            .args([
                "--auth",
                "PLAIN",
                "--auth-user",
                "ann",
                "--auth-password",
                "sesame",
            ])
            .args([
                "--from",
                "ann@mail.example.org",
                "--to",
                "ann@mail.example.org",
            ])
            .args(["--data", &format!("@{}", m.display())]),
        None,
    );
    assert!(
        ok && t.contains("<-  220 2.0.0 ready to start TLS") && t.contains("~> AUTH PLAIN"),
        "{t}"
    );
    sent += 1;
    for (port, starttls) in [(smtp_port, "on"), (smtps_port, "off")] {
        let conf = s.base.join(format!("msmtprc-{port}"));
        std::fs::write(
            &conf,
            format!(
                "account default\nhost 127.0.0.1\nport {port}\ntls on\ntls_starttls {starttls}\n\
tls_trust_file {c}\nauth on\nuser ann\npassword sesame\nfrom ann@mail.example.org\n"
            ),
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&conf, std::fs::Permissions::from_mode(0o600)).unwrap();
        let (ok, t) = client(
            Command::new("msmtp").args(["-C", conf.to_str().unwrap(), "ann@mail.example.org"]),
            Some(&m),
        );
        assert!(ok, "msmtp: {t}");
        sent += 1;
    }
    let rec = arrived(&s, sent, false);
    assert!(
        rec.iter().all(|r| r.contains("with ESMTPSA (TLSv1.")),
        "{rec:?}"
    );
    // Reading back: curl pop3/imap and pop3s/imaps, then fetchmail (which
    // insists on STLS and a verified certificate by default).
    let pop = login_server(&mut s, "pop3", &cert, &key, true);
    let pops = login_server(&mut s, "pop3s", &cert, &key, false);
    let imap = login_server(&mut s, "imap", &cert, &key, true);
    let imaps = login_server(&mut s, "imaps", &cert, &key, false);
    let first = {
        let d = s.user_home("ann").join("Maildir/new");
        let mut f = crate::common::files(&d);
        f.sort();
        std::fs::read(d.join(&f[0])).unwrap()
    };
    for url in [
        format!("pop3://127.0.0.1:{pop}/1"),
        format!("pop3s://127.0.0.1:{pops}/1"),
        format!("imap://127.0.0.1:{imap}/INBOX;UID=1"),
        format!("imaps://127.0.0.1:{imaps}/INBOX;UID=1"),
    ] {
        let o = Command::new("curl")
            .args(["-sS", "--ssl-reqd", "--cacert", c, "-u", "ann:sesame", &url])
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "curl {url}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert_eq!(lf(&o.stdout), first, "{url}");
    }
    let out = s.base.join("fetched");
    let rc = s.base.join("fetchmailrc");
    std::fs::write(
        &rc,
        format!(
            "poll localhost protocol pop3 port {pop}\n  user \"ann\" password \"sesame\" \
sslcertfile \"{c}\" sslcertck keep\n  mda \"/bin/sh -c 'cat >> {}'\"\n",
            out.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&rc, std::fs::Permissions::from_mode(0o600)).unwrap();
    let (ok, t) = client(
        Command::new("fetchmail")
            .args(["-f", rc.to_str().unwrap(), "-v", "--nosyslog"])
            .env("HOME", &s.base),
        None,
    );
    assert!(ok, "fetchmail: {t}");
    assert!(t.contains("STLS"), "fetchmail used STLS: {t}");
    let got = std::fs::read(&out).unwrap();
    assert!(
        find(&got, &lf(MSG)).is_some(),
        "{}",
        String::from_utf8_lossy(&got)
    );
}

// ---------------------------------------------------------------------------
// remote-send: opportunistic STARTTLS, control/remotetls, AUTH to a smarthost.

const TLS_PEER_PY: &str = include_str!("tls/tls_peer.py");

/// remote-send HOST s@example.org x@HOST; returns the report records.
fn remote_send(s: &Sys, host: &str, cafile: &Path) -> Vec<String> {
    let h = s.home.to_string_lossy().into_owned();
    let ca = cafile.to_string_lossy().into_owned();
    // OpenSSL's default trust store, for the verify policies.
    let env = [
        ("PIPEMAIL_HOME", h.as_str()),
        ("SSL_CERT_FILE", ca.as_str()),
    ];
    let rcpt = format!("x@{host}");
    let o = crate::common::run("remote-send", &[host, "s@example.org", &rcpt], &env, MSG_LF);
    assert_eq!(o.status.code(), Some(0));
    let mut v: Vec<String> = o
        .stdout
        .split(|&c| c == 0)
        .map(|r| String::from_utf8_lossy(r).into_owned())
        .collect();
    assert_eq!(v.pop().as_deref(), Some(""));
    v
}

const MSG_LF: &[u8] = b"Subject: out\n\n.dot\nbody\n";

#[test]
fn remote_send_uses_starttls_when_offered_and_obeys_control_remotetls() {
    let Some((mut s, cert, key)) = system("tls-remote") else {
        return;
    };
    if !have("python3", &["-c", "import aiosmtpd"]) {
        return;
    }
    let (c, k) = (cert.to_str().unwrap(), key.to_str().unwrap());
    let tls_out = s.base.join("tls.out");
    let plain_out = s.base.join("plain.out");
    let tp = s.start_py("tlspeer", TLS_PEER_PY, &[tls_out.to_str().unwrap(), c, k]);
    let pp = s.start_py(
        "plainpeer",
        TLS_PEER_PY,
        &[plain_out.to_str().unwrap(), c, k, "plain"],
    );
    s.control(
        "smtproutes",
        &format!(
            "tls.example:127.0.0.1:{tp}\nsmart.example:[127.0.0.1]:{tp}\nwrongname.example:127.0.0.1:{tp}\n\
plain.example:127.0.0.1:{pp}\nmust.example:127.0.0.1:{pp}\nauthplain.example:[127.0.0.1]:{pp}\n"
        ),
    );
    s.control(
        "remotetls",
        "must.example:encrypt\nsmart.example:verify=mail.example.org\nwrongname.example:verify\n",
    );
    s.control("remoteauth", "[127.0.0.1]:ann:sesame\n");
    let read =
        |p: &Path| String::from_utf8_lossy(&std::fs::read(p).unwrap_or_default()).into_owned();
    // Offered: used (the peer's record says so), even without a policy line.
    let r = remote_send(&s, "tls.example", &cert);
    assert!(
        r[0] == "r" && r[1].starts_with("K127.0.0.1 accepted message."),
        "{r:?}"
    );
    let got = read(&tls_out);
    assert!(
        got.starts_with("TLS TLSv1.3 AUTH none\nMAIL s@example.org\nRCPT x@tls.example\n\n"),
        "{got}"
    );
    assert!(
        got.ends_with("Subject: out\r\n\r\n.dot\r\nbody\r\n"),
        "{got:?}"
    );
    // Not offered: clear text.
    let r = remote_send(&s, "plain.example", &cert);
    assert!(r[1].starts_with('K'), "{r:?}");
    assert!(read(&plain_out).starts_with("TLS none AUTH none\n"));
    // Required and not offered: deferred, nothing sent.
    let before = read(&plain_out);
    let r = remote_send(&s, "must.example", &cert);
    assert_eq!(
        r,
        ["Z".to_string() + "Connected to 127.0.0.1 but it does not offer STARTTLS, and control/remotetls requires TLS. (#4.7.5)\n"]
    );
    // A password never goes in clear text.
    let r = remote_send(&s, "authplain.example", &cert);
    assert_eq!(
        r,
        ["Z".to_string()
            + "Connected to 127.0.0.1 but I will not send a password without TLS. (#4.7.5)\n"]
    );
    assert_eq!(read(&plain_out), before);
    // A verified smarthost (the certificate names mail.example.org) with
    // AUTH over TLS.
    let r = remote_send(&s, "smart.example", &cert);
    assert!(r[1].starts_with('K'), "{r:?}");
    assert!(
        read(&tls_out).contains("TLS TLSv1.3 AUTH ann\nMAIL s@example.org\nRCPT x@smart.example\n")
    );
    // verify without a name checks the relay's name (127.0.0.1 is in the
    // certificate too), so use a CA that did not sign it: deferred.
    let other = s.base.join("other");
    Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/make-cert"))
        .arg(&other)
        .stdout(Stdio::null())
        .status()
        .unwrap();
    let n = read(&tls_out).len();
    let r = remote_send(&s, "wrongname.example", &other.join("cert.pem"));
    assert_eq!(r.len(), 1, "{r:?}");
    assert!(
        r[0].starts_with("ZTLS with 127.0.0.1 failed: certificate verification failed"),
        "{r:?}"
    );
    assert_eq!(read(&tls_out).len(), n, "nothing sent");
}

// ---------------------------------------------------------------------------
// Submission (RFC 6409) on 587 (STARTTLS) and 465 (implicit TLS).

const SUBMIT_PY: &str = r#"
import smtplib, ssl, sys
mode, port, cafile = sys.argv[1], int(sys.argv[2]), sys.argv[3]
ctx = ssl.create_default_context(cafile=cafile)
if mode == '587':
    s = smtplib.SMTP('127.0.0.1', port, timeout=30)
    s.starttls(context=ctx)
else:
    s = smtplib.SMTP_SSL('127.0.0.1', port, timeout=30, context=ctx)
s.ehlo('laptop.example')
print('mail before auth', s.docmd('MAIL', 'FROM:<ann@mail.example.org>'))
print('login', s.login('ann', 'sesame')[0])
print('send', s.sendmail('ann@mail.example.org', ['ann@mail.example.org'], b'Subject: no date\r\n\r\nbody ' + mode.encode() + b'\r\n'))
print('relay', s.mail('ann@mail.example.org')[0], s.rcpt('x@remote.example')[0])
s.quit()
"#;

#[test]
fn submission_needs_auth_relays_for_it_and_adds_date_and_message_id() {
    let Some((mut s, cert, key)) = system("tls-submit") else {
        return;
    };
    let mut e = tls_env(&cert, &key);
    e.push(("SUBMISSION".into(), "1".into()));
    let p587 = s.serve(
        "587",
        &envs(&e),
        &[],
        &[p("tls-wrap"), "-d".into(), p("smtp-recv")],
        true,
    );
    let p465 = s.serve(
        "465",
        &envs(&e),
        &[],
        &[p("tls-wrap"), p("smtp-recv")],
        true,
    );
    s.queue(&[]);
    for (mode, port) in [("587", p587), ("465", p465)] {
        let out = py(
            SUBMIT_PY,
            &[mode, &port.to_string(), cert.to_str().unwrap()],
        );
        assert_eq!(
            out,
            "mail before auth (530, b'5.7.0 authentication required')\n\
login 235\nsend {}\nrelay 250 250\n"
        );
    }
    wait_until(30, "two messages", || s.mail_of("ann").len() == 2);
    for m in s.mail_of("ann") {
        let (names, rest) = split_fields(&m, 7);
        assert_eq!(
            names,
            [
                "Return-Path",
                "Delivered-To",
                "Received",
                "Received",
                "Subject",
                "Date",
                "Message-ID"
            ]
        );
        assert!(
            find(&m, b"\nMessage-ID: <").is_some()
                && find(&m, b"@mail.example.org>\n\nbody ").is_some()
        );
        assert!(
            rest.starts_with(b"\nbody "),
            "{}",
            String::from_utf8_lossy(&m)
        );
    }
}

// ---------------------------------------------------------------------------
// tls-wrap itself: exec'd (not linked into tcp-serve), SNI, the program's
// environment, and a certificate that cannot be loaded.

const SNI_PY: &str = r#"
import socket, ssl, sys
port = int(sys.argv[1])
for arg in sys.argv[2:]:
    name, want = arg.split('=')
    want = ssl.PEM_cert_to_DER_cert(open(want).read())
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with socket.create_connection(('127.0.0.1', port), 10) as s:
        with ctx.wrap_socket(s, server_hostname=name) as t:
            der = t.getpeercert(binary_form=True)
            data = b''
            while True:
                b = t.recv(1000)
                if not b: break
                data += b
            print(name, t.version(), 'its certificate' if der == want else 'WRONG certificate', data.decode().strip())
"#;

#[test]
fn tls_wrap_exec_path_sni_environment_and_bad_certificates() {
    let Some((mut s, cert, key)) = system("tls-wrapself") else {
        return;
    };
    let other = s.base.join("other");
    Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/make-cert"))
        .arg(&other)
        .arg("other.example")
        .stdout(Stdio::null())
        .status()
        .unwrap();
    let mut e = tls_env(&cert, &key);
    e.push((
        "CERTFILE:other.example".into(),
        other.join("cert.pem").to_string_lossy().into_owned(),
    ));
    e.push((
        "KEYFILE:other.example".into(),
        other.join("key.pem").to_string_lossy().into_owned(),
    ));
    // Through env(1), so tcp-serve execs tls-wrap instead of linking it
    // (sh would drop the CERTFILE:name variables).
    let show = "echo proto=$SSL_PROTOCOL sni=$SSL_TLS_SNI_SERVERNAME ip=$TCPREMOTEIP cert=${CERTFILE:-none}";
    let prog = vec![
        "/usr/bin/env".into(),
        p("tls-wrap"),
        "/bin/sh".into(),
        "-c".into(),
        show.into(),
    ];
    let port = s.serve("wrap", &envs(&e), &[], &prog, false);
    let o1 = format!("other.example={}", other.join("cert.pem").display());
    let o2 = format!("mail.example.org={}", cert.display());
    let out = py(SNI_PY, &[&port.to_string(), &o1, &o2]);
    assert_eq!(
        out,
        "other.example TLSv1.3 its certificate proto=TLSv1.3 sni=other.example ip=127.0.0.1 cert=none\n\
mail.example.org TLSv1.3 its certificate proto=TLSv1.3 sni=mail.example.org ip=127.0.0.1 cert=none\n"
    );
    let log = s.log_text("wrap");
    assert!(log.contains("tls-wrap: pid "), "{log}");
    // A key that is not there: tcp-serve refuses to start (linked), and
    // tls-wrap alone exits 111 with the reason.
    let bad = [
        ("CERTFILE", cert.to_str().unwrap()),
        ("KEYFILE", "/nonexistent/key.pem"),
    ];
    let o = crate::common::run(
        "tcp-serve",
        &["127.0.0.1", "0", &p("tls-wrap"), "/bin/true"],
        &bad,
        b"",
    );
    assert_eq!(o.status.code(), Some(111));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.starts_with(
            "tcp-serve: fatal: unable to set up TLS: unable to load key /nonexistent/key.pem"
        ),
        "{err}"
    );
    let o = crate::common::run("tls-wrap", &["/bin/true"], &bad, b"");
    assert_eq!(o.status.code(), Some(111));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains(": fatal: unable to set up TLS: unable to load key /nonexistent/key.pem"),
        "{err}"
    );
    let o = crate::common::run("tls-wrap", &["-t", "x", "/bin/true"], &bad, b"");
    assert_eq!(o.status.code(), Some(100));
}

const SILENT_PY: &str = r#"
import socket, sys, time
c = socket.create_connection(('127.0.0.1', int(sys.argv[1])), 10)
c.settimeout(10)
t = time.time()
print('closed' if c.recv(100) == b'' else 'data', 0.9 < time.time() - t < 5)
"#;

#[test]
fn a_silent_client_is_dropped_at_the_handshake_deadline() {
    let Some((mut s, cert, key)) = system("tls-deadline") else {
        return;
    };
    let e = tls_env(&cert, &key);
    let port = s.serve(
        "wrap",
        &envs(&e),
        &[],
        &[p("tls-wrap"), "-t".into(), "1".into(), "/bin/true".into()],
        true,
    );
    assert_eq!(py(SILENT_PY, &[&port.to_string()]), "closed True\n");
    let log = s.log_text("wrap");
    assert!(
        log.contains("handshake failed remote=127.0.0.1: handshake timed out"),
        "{log}"
    );
}

/// After the go-ahead, bytes that are not a TLS handshake end the session:
/// nothing sent in clear after STARTTLS/STLS is ever answered.
const AFTER_GO_PY: &str = r#"
import socket, sys
def talk(port, greet_cmd, cmd, extra):
    c = socket.create_connection(('127.0.0.1', port), timeout=10)
    f = c.makefile('rb')
    f.readline()
    if greet_cmd:
        c.sendall(greet_cmd)
        while f.readline()[3:4] == b'-': pass
    c.sendall(cmd + extra)
    go = f.readline()
    try:
        c.sendall(b'NOOP\r\n')
        rest = f.read()
    except ConnectionResetError:
        rest = b''
    return go, rest
print(*talk(int(sys.argv[1]), b'EHLO x\r\n', b'STARTTLS\r\n', b''))
print(*talk(int(sys.argv[2]), None, b'STLS\r\n', b'USER ann\r\n'))
"#;

#[test]
fn clear_text_after_the_go_ahead_fails_the_handshake_and_is_never_answered() {
    let Some((mut s, cert, key)) = system("tls-aftergo") else {
        return;
    };
    let smtp_port = smtp(&mut s, "smtp", &cert, &key, true);
    let pop = login_server(&mut s, "pop3", &cert, &key, true);
    let out = py(AFTER_GO_PY, &[&smtp_port.to_string(), &pop.to_string()]);
    assert_eq!(
        out,
        "b'220 2.0.0 ready to start TLS\\r\\n' b''\nb'+OK begin TLS negotiation\\r\\n' b''\n"
    );
    let log = s.log_text("smtp");
    assert!(log.contains("handshake failed remote=127.0.0.1"), "{log}");
    assert!(
        log.contains("STARTTLS failed remote=127.0.0.1: the TLS handshake failed"),
        "{log}"
    );
    assert!(s
        .log_text("pop3")
        .contains("handshake failed remote=127.0.0.1"));
}

/// No program links OpenSSL: tls-wrap and remote-send load libssl.so.3 at
/// run time, so building needs no libssl-dev and the rest never load it.
#[test]
fn no_program_links_openssl() {
    for b in [
        "tls-wrap",
        "remote-send",
        "smtp-recv",
        "pop3-login",
        "imap-login",
        "tcp-serve",
    ] {
        let o = Command::new("ldd").arg(bin(b)).output().unwrap();
        let t = String::from_utf8_lossy(&o.stdout);
        assert!(o.status.success() && t.contains("libc.so"), "{b}: {t}");
        assert!(
            !t.contains("libssl") && !t.contains("libcrypto"),
            "{b}: {t}"
        );
    }
}

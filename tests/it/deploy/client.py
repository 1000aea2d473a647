# The clients of the deploy tests: SMTP (raw and smtplib), submission with
# AUTH, POP3 and IMAP with a wrong and a right password, against
# 127.0.0.1 SMTP SUBMISSION POP3 IMAP. Every byte read is kept and checked to
# be protocol: a log line in the stream fails the run. Messages come from
# MSG1 and MSG2 (CRLF files). Every service must offer STARTTLS (STLS) and
# refuse passwords before it; the certificate is verified against CAFILE
# (the installed self-signed cert.pem) for the name localhost. Prints "ok"
# when everything held.
import base64, re, smtplib, socket, ssl, sys

smtp, sub, pop, imap = (int(a) for a in sys.argv[1:5])
msg1, msg2 = open(sys.argv[5], 'rb').read(), open(sys.argv[6], 'rb').read()
ctx = ssl.create_default_context(cafile=sys.argv[7])
USER, PASS = 'ann', 'sesame'


class Conn:
    def __init__(self, port):
        self.s = socket.create_connection(('127.0.0.1', port), timeout=30)
        self.f = self.s.makefile('rb')
        self.read = []

    def line(self):
        l = self.f.readline()
        self.read.append(l)
        return l

    def send(self, b):
        self.s.sendall(b)

    def starttls(self):
        self.s = ctx.wrap_socket(self.s, server_hostname='localhost')
        self.f = self.s.makefile('rb')

    def rest(self):
        r = self.f.read()
        self.read.append(r)
        return r


def check(cond, what, c):
    if not cond:
        raise SystemExit('FAILED: %s; read so far: %r' % (what, b''.join(c.read)))


def smtp_reply(c):
    # A reply: lines "ddd-..." then "ddd ...", nothing else.
    lines = []
    while True:
        l = c.line()
        check(re.fullmatch(rb'[2-5]\d\d[ -][^\r\n]*\r\n', l), 'SMTP reply line %r' % l, c)
        lines.append(l)
        if l[3:4] == b' ':
            return lines


# --- SMTP (25): the greeting is the first byte; smtplib sends a message.
c = Conn(smtp)
g = smtp_reply(c)
check(len(g) == 1 and g[0].startswith(b'220 '), 'greeting', c)
c.send(b'QUIT\r\n')
check(smtp_reply(c)[0].startswith(b'221 '), 'QUIT', c)
check(c.rest() == b'', 'nothing after 221', c)
s = smtplib.SMTP('127.0.0.1', smtp, timeout=30)
s.ehlo()
if not s.has_extn('starttls'):
    raise SystemExit('FAILED: port 25 does not offer STARTTLS')
s.starttls(context=ctx)
s.ehlo()
s.sendmail('someone@example.org', ['ann@localhost'], msg1)
s.quit()

# --- submission (587): AUTH required, wrong then right password.
c = Conn(sub)
check(smtp_reply(c)[0].startswith(b'220 '), 'submission greeting', c)
c.send(b'EHLO client.example\r\n')
e = smtp_reply(c)
check(any(l[4:] == b'STARTTLS\r\n' for l in e) and not any(b'AUTH' in l for l in e), 'STARTTLS, no AUTH before TLS', c)
c.send(b'AUTH PLAIN ' + base64.b64encode(b'\0' + USER.encode() + b'\0' + PASS.encode()) + b'\r\n')
check(smtp_reply(c)[0].startswith(b'538 5.7.11 '), 'AUTH refused before TLS', c)
c.send(b'STARTTLS\r\n')
check(smtp_reply(c)[0].startswith(b'220 '), 'STARTTLS go ahead', c)
c.starttls()
c.send(b'EHLO client.example\r\n')
check(any(b'AUTH PLAIN LOGIN' in l for l in smtp_reply(c)), 'AUTH offered over TLS', c)
c.send(b'MAIL FROM:<ann@localhost>\r\n')
check(smtp_reply(c) == [b'530 5.7.0 authentication required\r\n'], 'MAIL before AUTH', c)
bad = base64.b64encode(b'\0' + USER.encode() + b'\0wrong')
c.send(b'AUTH PLAIN ' + bad + b'\r\n')
check(smtp_reply(c) == [b'535 5.7.8 authentication credentials invalid\r\n'], 'wrong password', c)
nobody = base64.b64encode(b'\0nosuchuser\0wrong')
c.send(b'AUTH PLAIN ' + nobody + b'\r\n')
check(smtp_reply(c) == [b'535 5.7.8 authentication credentials invalid\r\n'], 'unknown user: same reply', c)
good = base64.b64encode(b'\0' + USER.encode() + b'\0' + PASS.encode())
c.send(b'AUTH PLAIN ' + good + b'\r\n')
check(smtp_reply(c)[0].startswith(b'235 '), 'right password', c)
for cmd, code in [(b'MAIL FROM:<ann@localhost>', b'250'), (b'RCPT TO:<ann@localhost>', b'250'), (b'DATA', b'354')]:
    c.send(cmd + b'\r\n')
    check(smtp_reply(c)[-1].startswith(code), cmd.decode(), c)
c.send(msg2 + b'.\r\n')
check(smtp_reply(c)[0].startswith(b'250 '), 'message accepted', c)
c.send(b'QUIT\r\n')
smtp_reply(c)
check(c.rest() == b'', 'nothing after QUIT', c)

# --- POP3 (110)
c = Conn(pop)
g = c.line()
check(re.fullmatch(rb'\+OK <[^<>\r\n]+>\r\n', g), 'POP3 greeting', c)
c.send(b'USER ' + USER.encode() + b'\r\n')
check(c.line() == b'-ERR [AUTH] plaintext authentication disallowed on an unencrypted connection, use STLS\r\n', 'USER before STLS', c)
c.send(b'STLS\r\n')
check(c.line() == b'+OK begin TLS negotiation\r\n', 'STLS', c)
c.starttls()
for who, pw in [(b'nosuchuser', b'wrong'), (USER.encode(), b'wrong')]:
    c.send(b'USER ' + who + b'\r\n')
    check(c.line().startswith(b'+OK'), 'USER', c)
    c.send(b'PASS ' + pw + b'\r\n')
    check(c.line() == b'-ERR [AUTH] authorization failed\r\n', 'failed login reply', c)
c.send(b'USER ' + USER.encode() + b'\r\nPASS ' + PASS.encode() + b'\r\n')
check(c.line().startswith(b'+OK'), 'USER', c)
check(c.line().startswith(b'+OK'), 'PASS right', c)
c.send(b'STAT\r\n')
check(re.fullmatch(rb'\+OK \d+ \d+\r\n', c.line()), 'STAT', c)
c.send(b'QUIT\r\n')
check(c.line().startswith(b'+OK'), 'QUIT', c)
check(c.rest() == b'', 'nothing after QUIT', c)

# --- IMAP (143)
c = Conn(imap)
check(re.fullmatch(rb'\* OK [^\r\n]*\r\n', c.line()), 'IMAP greeting', c)


def tagged(tag):
    out = []
    while True:
        l = c.line()
        check(re.fullmatch(rb'(\* |' + tag + rb' )[^\r\n]*\r\n', l), 'IMAP line %r' % l, c)
        out.append(l)
        if l.startswith(tag + b' '):
            return out


c.send(b'a00 CAPABILITY\r\n')
caps = tagged(b'a00')[0]
check(b' STARTTLS' in caps and b' LOGINDISABLED' in caps and b'AUTH=PLAIN' not in caps, 'STARTTLS, LOGINDISABLED', c)
c.send(b'a0 STARTTLS\r\n')
check(tagged(b'a0') == [b'a0 OK Begin TLS negotiation now.\r\n'], 'STARTTLS', c)
c.starttls()
c.send(b'a1 LOGIN nosuchuser wrong\r\n')
r1 = tagged(b'a1')
c.send(b'a2 LOGIN ' + USER.encode() + b' wrong\r\n')
r2 = tagged(b'a2')
check(r1 == [b'a1 NO [AUTHENTICATIONFAILED] Authentication failed.\r\n'] and
      r2 == [b'a2 NO [AUTHENTICATIONFAILED] Authentication failed.\r\n'], 'failed logins alike', c)
c.send(b'a3 LOGIN ' + USER.encode() + b' ' + PASS.encode() + b'\r\n')
check(tagged(b'a3')[-1].startswith(b'a3 OK'), 'right password', c)
c.send(b'a4 SELECT INBOX\r\n')
check(tagged(b'a4')[-1].startswith(b'a4 OK'), 'SELECT', c)
c.send(b'a5 LOGOUT\r\n')
check(tagged(b'a5')[-1].startswith(b'a5 OK'), 'LOGOUT', c)
check(c.rest() == b'', 'nothing after LOGOUT', c)
print('ok')

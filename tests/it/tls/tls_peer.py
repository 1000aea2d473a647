# A TLS-capable SMTP peer on aiosmtpd for remote-send's STARTTLS tests:
#   tls_peer.py OUTFILE CERT KEY [plain]
# Binds 127.0.0.1 on a free port and prints it. Offers STARTTLS (unless
# "plain") and AUTH PLAIN/LOGIN after TLS (ann/sesame). Each message is
# appended to OUTFILE as
#   TLS <version or none> AUTH <login or none> / MAIL <from> / RCPT <to>...
#   / a blank line / the content
import sys, ssl, asyncio
from aiosmtpd.smtp import SMTP, AuthResult

out, cert, key = sys.argv[1], sys.argv[2], sys.argv[3]
plain = len(sys.argv) > 4
ctx = None
if not plain:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)

def auth(server, session, envelope, mechanism, data):
    ok = data.login == b'ann' and data.password == b'sesame'
    return AuthResult(success=ok, auth_data=data.login)

class Handler:
    async def handle_DATA(self, server, session, envelope):
        v = session.ssl.get('ssl_object').version() if session.ssl else 'none'
        who = session.auth_data.decode() if session.authenticated else 'none'
        rec = ('TLS %s AUTH %s\nMAIL %s\n' % (v, who, envelope.mail_from)).encode()
        for r in envelope.rcpt_tos:
            rec += ('RCPT %s\n' % r).encode()
        rec += b'\n' + envelope.original_content
        with open(out, 'ab') as f:
            f.write(rec)
        print('delivered tls=%s auth=%s' % (v, who), file=sys.stderr, flush=True)
        return '250 2.0.0 queued'

async def main():
    loop = asyncio.get_running_loop()
    srv = await loop.create_server(
        lambda: SMTP(Handler(), hostname='peer.test', decode_data=False, tls_context=ctx,
                     require_starttls=False, authenticator=auth, auth_require_tls=True,
                     auth_required=False),
        '127.0.0.1', 0)
    print(srv.sockets[0].getsockname()[1], flush=True)
    await srv.serve_forever()

asyncio.run(main())

# The test SMTP peer on aiosmtpd (remote-send's far end, the queue's relay
# sink): smtp_peer.py ADDR PORT OUTFILE [SIZELIMIT [utf8]].
# Binds ADDR:PORT (0: a free port) and prints the port. SIZELIMIT defaults
# to 64 MiB; "utf8" enables SMTPUTF8. RCPT: local parts starting "temp" get
# 450 4.2.1, "perm" 550 5.1.1. End of DATA: a recipient starting "datatemp"
# gives 451 4.3.0, "dataperm" 554 5.6.0. Each accepted message is appended
# to OUTFILE as
#   MAIL <from> <options> / RCPT <to>... / a blank line / the content
# (as received: CRLF line ends, dot-unstuffed), in one write, flushed
# before the 250 goes out.
import sys, asyncio
from aiosmtpd.smtp import SMTP

addr, port, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
size = int(sys.argv[4]) if len(sys.argv) > 4 else 64 << 20
utf8 = len(sys.argv) > 5

class Handler:
    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        session.host_name = hostname
        return responses[:-1] + ['250-PIPELINING', responses[-1]]
    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        local = address.split('@')[0]
        if local.startswith('temp'):
            return '450 4.2.1 mailbox busy'
        if local.startswith('perm'):
            return '550 5.1.1 no such user'
        envelope.rcpt_tos.append(address)
        return '250 2.1.5 ok'
    async def handle_DATA(self, server, session, envelope):
        locals_ = [r.split('@')[0] for r in envelope.rcpt_tos]
        if any(l.startswith('datatemp') for l in locals_):
            return '451 4.3.0 try later'
        if any(l.startswith('dataperm') for l in locals_):
            return '554 5.6.0 content rejected'
        rec = ('MAIL %s %s\n' % (envelope.mail_from, ' '.join(envelope.mail_options))).encode()
        for r in envelope.rcpt_tos:
            rec += ('RCPT %s\n' % r).encode()
        rec += b'\n' + envelope.original_content
        with open(out, 'ab') as f:
            f.write(rec)
        return '250 2.0.0 queued as 42'

async def main():
    loop = asyncio.get_running_loop()
    srv = await loop.create_server(
        lambda: SMTP(Handler(), hostname='peer.test', data_size_limit=size, enable_SMTPUTF8=utf8, decode_data=False),
        addr, port)
    print(srv.sockets[0].getsockname()[1], flush=True)
    await srv.serve_forever()

asyncio.run(main())

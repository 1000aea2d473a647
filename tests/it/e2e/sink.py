# An SMTP sink on aiosmtpd for the end-to-end tests:
#   sink.py ADDR PORT OUTFILE
# Binds ADDR:PORT (0: a free port) and prints the port. RCPT to a local part
# that starts with "perm" gets 550 5.1.1, "temp" 450 4.2.1. Each accepted
# message is appended to OUTFILE as
#   MAIL <from> <options> / RCPT <to>... / a blank line / the content
# (the content as received: CRLF line ends, dot-unstuffed). Every record is
# written in one write and flushed before the 250 goes out.
import sys, asyncio
from aiosmtpd.smtp import SMTP

addr, port, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]

class Handler:
    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        session.host_name = hostname
        return responses[:-1] + ['250-PIPELINING', responses[-1]]
    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        local = address.split('@')[0]
        if local.startswith('perm'):
            return '550 5.1.1 no such user'
        if local.startswith('temp'):
            return '450 4.2.1 mailbox busy'
        envelope.rcpt_tos.append(address)
        return '250 2.1.5 ok'
    async def handle_DATA(self, server, session, envelope):
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
        lambda: SMTP(Handler(), hostname='sink.test', data_size_limit=64 << 20, decode_data=False),
        addr, port)
    print(srv.sockets[0].getsockname()[1], flush=True)
    await srv.serve_forever()

asyncio.run(main())

# The test SMTP peer on aiosmtpd (remote-send's far end, the queue's relay
# sink): smtp_peer.py ADDR PORT OUTFILE [SIZELIMIT] [utf8] [dsn].
# Binds ADDR:PORT (0: a free port) and prints the port. SIZELIMIT defaults
# to 64 MiB; "utf8" enables SMTPUTF8; "dsn" offers DSN (RFC 3461) and
# takes its parameters (aiosmtpd itself knows none of them). RCPT: local
# parts starting "temp" get 450 4.2.1, "perm" 550 5.1.1. End of DATA: a
# recipient starting "datatemp" gives 451 4.3.0, "dataperm" 554 5.6.0.
# Each accepted message is appended to OUTFILE as
#   MAIL <from> <options> / RCPT <to>... / a blank line / the content
# (as received: CRLF line ends, dot-unstuffed), in one write, flushed
# before the 250 goes out. Every MAIL and RCPT command line is appended,
# as received, to OUTFILE.cmds.
import sys, asyncio
from aiosmtpd.smtp import SMTP

addr, port, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
opts = sys.argv[4:]
size = int(opts[0]) if opts and opts[0].isdigit() else 64 << 20
utf8 = 'utf8' in opts
dsn = 'dsn' in opts

def without(arg, keys):
    return ' '.join(w for w in arg.split(' ') if w.split('=')[0].upper() not in keys)

class Recorder(SMTP):
    def _cmd(self, verb, arg):
        with open(out + '.cmds', 'ab') as f:
            f.write(('%s %s\n' % (verb, arg)).encode())
    async def smtp_MAIL(self, arg):
        self._cmd('MAIL', arg)
        await super().smtp_MAIL(without(arg, {'RET', 'ENVID'}) if dsn and arg else arg)
    async def smtp_RCPT(self, arg):
        self._cmd('RCPT', arg)
        await super().smtp_RCPT(without(arg, {'NOTIFY', 'ORCPT'}) if dsn and arg else arg)

class Handler:
    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        session.host_name = hostname
        return responses[:-1] + ['250-PIPELINING'] + (['250-DSN'] if dsn else []) + [responses[-1]]
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
        lambda: Recorder(Handler(), hostname='peer.test', data_size_limit=size, enable_SMTPUTF8=utf8, decode_data=False),
        addr, port)
    print(srv.sockets[0].getsockname()[1], flush=True)
    await srv.serve_forever()

asyncio.run(main())

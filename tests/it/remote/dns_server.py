# A test DNS server: dns_server.py ZONE.json ADDR. Serves UDP and TCP on
# one free port of ADDR and prints the port. The zone maps a lower-case
# name to {"MX": [[pref, host]], "A": [...], "AAAA": [...], "TXT": [...],
# "PTR": [...], "CNAME": "target", "special": S}; S is "servfail", "drop"
# (never answer), "tc" (truncated over UDP, full over TCP), "loop" (an
# answer whose name is a compression pointer to itself) or "badid" (a
# reply with a wrong id first, then the right one).
import sys, socket, threading, json, struct
from dnslib import DNSRecord, RR, QTYPE, RCODE, MX, A, AAAA, CNAME, TXT, PTR

zone = json.load(open(sys.argv[1]))
RD = {'MX': lambda v: MX(v[1], v[0]), 'A': A, 'AAAA': AAAA, 'TXT': TXT, 'PTR': PTR}

def answer(data, tcp):
    q = DNSRecord.parse(data)
    name = str(q.q.qname).rstrip('.').lower()
    qt = QTYPE[q.q.qtype]
    r = q.reply()
    e = zone.get(name)
    if e is None:
        r.header.rcode = RCODE.NXDOMAIN
        return [r.pack()]
    sp = e.get('special')
    if sp == 'drop':
        return []
    if sp == 'servfail':
        r.header.rcode = RCODE.SERVFAIL
        return [r.pack()]
    if sp == 'tc' and not tcp:
        r.header.tc = 1
        return [r.pack()]
    if sp == 'loop':
        p = bytearray(r.pack())
        p[6:8] = b'\x00\x01'
        at = len(p)
        p += bytes([0xc0 | (at >> 8), at & 0xff]) + b'\x00\x01\x00\x01\x00\x00\x00\x3c\x00\x04\x7f\x00\x00\x01'
        return [bytes(p)]
    cur, hops = name, 0
    while hops < 20:
        e = zone.get(cur, {})
        if 'CNAME' in e:
            r.add_answer(RR(cur, QTYPE.CNAME, rdata=CNAME(e['CNAME']), ttl=60))
            cur = e['CNAME'].rstrip('.').lower()
            hops += 1
            continue
        for v in e.get(qt, []):
            r.add_answer(RR(cur, getattr(QTYPE, qt), rdata=RD[qt](v), ttl=60))
        break
    out = [r.pack()]
    if sp == 'badid':
        bad = bytearray(out[0])
        bad[0] ^= 0xff
        out.insert(0, bytes(bad))
    return out

def udp(s):
    while True:
        data, peer = s.recvfrom(65535)
        try:
            for p in answer(data, False):
                s.sendto(p, peer)
        except Exception as ex:
            print('udp error', ex, file=sys.stderr)

def tcp_conn(c):
    try:
        n = struct.unpack('>H', c.recv(2))[0]
        data = b''
        while len(data) < n:
            data += c.recv(n - len(data))
        for p in answer(data, True)[-1:]:
            c.sendall(struct.pack('>H', len(p)) + p)
    except Exception as ex:
        print('tcp error', ex, file=sys.stderr)
    c.close()

def tcp(s):
    while True:
        c, _ = s.accept()
        threading.Thread(target=tcp_conn, args=(c,), daemon=True).start()

addr = sys.argv[2]
for _ in range(50):
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.bind((addr, 0))
    port = u.getsockname()[1]
    t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        t.bind((addr, port))
        break
    except OSError:
        u.close(); t.close()
t.listen(16)
threading.Thread(target=udp, args=(u,), daemon=True).start()
print(port, flush=True)
tcp(t)

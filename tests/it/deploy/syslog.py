# Run inside a private mount namespace with a fresh /dev: receives syslog
# datagrams on /dev/log while PROG runs with descriptor 2 a socket.
# Prints: exit code, the bytes that reached the socket, the syslog message.
import socket, subprocess, sys

log = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
log.bind('/dev/log')
log.settimeout(10)
a, b = socket.socketpair()
p = subprocess.run(sys.argv[1:], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                   stderr=b.fileno(), env={})
b.close()
a.settimeout(5)
leaked = a.recv(4096)
print(p.returncode)
print(repr(leaked))
print(log.recv(4096).decode('ascii', 'replace'))

"""One flow from a lab pod: try-flow.py tcp|udp DST_IP PORT TIMEOUT_SECONDS.

Exit 0 when the echo came back, 1 when it did not (refused, dropped, timed out).
"""
import socket
import sys

proto, dst, port, timeout = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
payload = b"calisnap-e2e"
try:
    if proto == "tcp":
        with socket.create_connection((dst, port), timeout=timeout) as s:
            s.settimeout(timeout)
            s.sendall(payload)
            ok = s.recv(64) == payload
    else:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(timeout)
            s.sendto(payload, (dst, port))
            data, _ = s.recvfrom(64)
            ok = data == payload
except OSError:
    ok = False
sys.exit(0 if ok else 1)

"""Echo server for one lab pod: echoes TCP and UDP on the ports given as tcp:N / udp:N.

Run inside the pod's network namespace by tests/common/netns.rs. Prints "ready" once
every socket is bound, then serves until killed.
"""
import socket
import sys
import threading


def serve_tcp(sock):
    while True:
        conn, _ = sock.accept()
        threading.Thread(target=echo_tcp, args=(conn,), daemon=True).start()


def echo_tcp(conn):
    with conn:
        conn.settimeout(5)
        try:
            data = conn.recv(4096)
            if data:
                conn.sendall(data)
        except OSError:
            pass


def serve_udp(sock):
    while True:
        data, peer = sock.recvfrom(4096)
        sock.sendto(data, peer)


def main():
    workers = []
    for spec in sys.argv[1:]:
        proto, port = spec.split(":")
        if proto == "tcp":
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("0.0.0.0", int(port)))
            s.listen(64)
            workers.append((serve_tcp, s))
        else:
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.bind(("0.0.0.0", int(port)))
            workers.append((serve_udp, s))
    for fn, s in workers:
        threading.Thread(target=fn, args=(s,), daemon=True).start()
    print("ready", flush=True)
    threading.Event().wait()


main()

#!/usr/bin/env python3
"""Tools for bench/net/stampede.sh (Python 3 standard library only).

  tls_probe.py echo PORT SECONDS      one connected TLS device: a line every 20 ms, its echo
                                      round trip; prints {"sent","echoed","p50_ms","p99_ms","max_ms"}
  tls_probe.py slowloris PORT N SECONDS
                                      N TCP connections trickling a ClientHello (the record
                                      header, then one byte per second); a connection the server
                                      closes is opened again. Prints {"opened","closed_by_server"}
"""
import json, resource, selectors, socket, ssl, sys, time


def echo(port, seconds):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=30))
    s.settimeout(30)
    lat, sent, buf = [], 0, b""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        t0 = time.monotonic()
        s.sendall(b"probe-%d\n" % sent)
        sent += 1
        while b"\n" not in buf:
            chunk = s.recv(4096)
            if not chunk:
                raise SystemExit("closed by server")
            buf += chunk
        buf = buf.split(b"\n", 1)[1]
        lat.append((time.monotonic() - t0) * 1000)
        time.sleep(max(0, 0.02 - (time.monotonic() - t0)))
    lat.sort()
    pick = lambda q: round(lat[min(len(lat) - 1, int(q * len(lat)))], 2)
    print(json.dumps({"sent": sent, "echoed": len(lat), "p50_ms": pick(0.5), "p99_ms": pick(0.99),
                      "max_ms": round(lat[-1], 2)}))


# A ClientHello's record header and the start of its handshake header: a 512-byte record.
HELLO_START = bytes([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xFC, 0x03, 0x03])


def slowloris(port, n, seconds):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    sel = selectors.DefaultSelector()
    conns = {}  # socket -> bytes sent
    opened = closed = 0

    def open_one():
        nonlocal opened
        s = socket.socket()
        s.setblocking(False)
        s.connect_ex(("127.0.0.1", port))
        conns[s] = 0
        sel.register(s, selectors.EVENT_READ)
        opened += 1

    for _ in range(n):
        open_one()
    end = time.monotonic() + seconds
    next_tick = time.monotonic()
    while time.monotonic() < end:
        for key, _ in sel.select(timeout=0.1):
            s = key.fileobj
            try:
                data = s.recv(4096)
            except OSError:
                data = b""
            if not data:  # closed by the server (a timeout): open another
                sel.unregister(s)
                s.close()
                del conns[s]
                closed += 1
                open_one()
        if time.monotonic() >= next_tick:
            next_tick += 1.0
            for s in list(conns):
                i = conns[s]
                try:
                    if i == 0:
                        s.send(HELLO_START[:5])
                        conns[s] = 5
                    elif i < len(HELLO_START):
                        s.send(HELLO_START[i:i + 1])
                        conns[s] = i + 1
                    else:
                        s.send(b"\x00")
                except OSError:
                    pass
    for s in conns:
        s.close()
    print(json.dumps({"opened": opened, "closed_by_server": closed}))


if __name__ == "__main__":
    if sys.argv[1] == "echo":
        echo(int(sys.argv[2]), float(sys.argv[3]))
    else:
        slowloris(int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]))

#!/usr/bin/env python3
"""Tiny echo server speaking the Warren device protocol, for testing warren-loadgen without a gateway.

codec line : every line received (CR stripped, empty lines ignored) is sent back + LF.
codec frame: DATA -> PUSH with the same payload (to_device_seq 1, 2, ...) and cumulative ACKs at most
             every 5 ms; PING -> PONG; PUSH_ACK is checked (cumulative, not beyond what was pushed).

Plain TCP or TLS (--cert/--key; --client-ca to require client certificates). --workers N forks N
processes sharing the port (SO_REUSEPORT). --fault injects protocol errors so that the loadgen's checks
can be seen to work. Loopback only. Python standard library only.

  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
      -subj /CN=localhost -keyout /tmp/key.pem -out /tmp/cert.pem
  python3 apps/loadgen/tools/echo_server.py --port 7001 --codec frame --cert /tmp/cert.pem --key /tmp/key.pem
"""
import argparse
import asyncio
import os
import signal
import socket
import ssl
import struct
import sys

HDR = struct.Struct(">BQI")
DATA, ACK, PUSH, PUSH_ACK, PING, PONG = 1, 2, 3, 4, 5, 6


class LineEcho(asyncio.Protocol):
    def connection_made(self, transport):
        self.t = transport
        self.buf = b""

    def data_received(self, data):
        self.buf += data
        if b"\n" not in self.buf:
            return
        *lines, self.buf = self.buf.split(b"\n")
        out = []
        for line in lines:
            if line.endswith(b"\r"):
                line = line[:-1]
            if line:
                if ARGS.fault == "echo":
                    line = line[::-1]
                out.append(line + b"\n")
        if out:
            self.t.write(b"".join(out))

    def connection_lost(self, exc):
        pass


class FrameEcho(asyncio.Protocol):
    def connection_made(self, transport):
        self.t = transport
        self.buf = bytearray()
        self.accepted = 0  # last DATA id accepted
        self.acked = 0  # last DATA id acknowledged
        self.pushed = 0  # last to_device_seq sent
        self.push_acked = 0
        self.ack_timer = None
        self.loop = asyncio.get_running_loop()

    def flush_ack(self):
        self.ack_timer = None
        if self.accepted == self.acked or self.t.is_closing():
            return
        skipped = self.accepted - self.acked - 1
        if ARGS.fault == "ack":
            skipped += 1
        self.t.write(HDR.pack(ACK, self.accepted, 4) + struct.pack(">I", skipped))
        self.acked = self.accepted

    def data_received(self, data):
        self.buf += data
        out = []
        pos = 0
        n = len(self.buf)
        while n - pos >= 13:
            typ, fid, ln = HDR.unpack_from(self.buf, pos)
            if ln > 1 << 20:
                self.t.abort()
                return
            if n - pos - 13 < ln:
                break
            payload = bytes(self.buf[pos + 13 : pos + 13 + ln])
            pos += 13 + ln
            if typ == DATA:
                if fid != self.accepted + 1:
                    print(f"bad DATA id {fid} after {self.accepted}", file=sys.stderr)
                    self.t.abort()
                    return
                self.accepted = fid
                self.pushed += 2 if ARGS.fault == "push" else 1
                out.append(HDR.pack(PUSH, self.pushed, len(payload)) + payload)
            elif typ == PUSH_ACK:
                if fid > self.pushed or fid < self.push_acked:
                    print(f"bad PUSH_ACK {fid} (pushed {self.pushed})", file=sys.stderr)
                self.push_acked = fid
            elif typ == PING:
                out.append(HDR.pack(PONG, fid, 0))
            else:
                print(f"unexpected frame type {typ}", file=sys.stderr)
                self.t.abort()
                return
        del self.buf[:pos]
        if out:
            self.t.write(b"".join(out))
        if self.accepted != self.acked and self.ack_timer is None:
            self.ack_timer = self.loop.call_later(0.005, self.flush_ack)

    def connection_lost(self, exc):
        if self.ack_timer:
            self.ack_timer.cancel()


def make_ssl():
    if not ARGS.cert:
        return None
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(ARGS.cert, ARGS.key)
    if ARGS.client_ca:
        ctx.load_verify_locations(ARGS.client_ca)
        ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


async def serve(sock):
    loop = asyncio.get_running_loop()
    proto = LineEcho if ARGS.codec == "line" else FrameEcho
    ctx = make_ssl()
    extra = {"ssl_handshake_timeout": 10} if ctx else {}
    server = await loop.create_server(proto, sock=sock, ssl=ctx, backlog=ARGS.backlog, **extra)
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    async with server:
        await stop.wait()


def main():
    global ARGS
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=7001)
    p.add_argument("--codec", choices=["line", "frame"], default="line")
    p.add_argument("--cert")
    p.add_argument("--key")
    p.add_argument("--client-ca", help="require client certificates signed by this CA (mTLS)")
    p.add_argument("--workers", type=int, default=1, help="processes sharing the port (SO_REUSEPORT)")
    p.add_argument("--backlog", type=int, default=4096)
    p.add_argument("--fault", choices=["none", "ack", "push", "echo"], default="none",
                   help="inject a protocol error: bad ACK skipped count, PUSH id gap, or corrupted echo")
    ARGS = p.parse_args()
    if ARGS.host not in ("127.0.0.1", "::1", "localhost") and not ARGS.host.startswith("127."):
        sys.exit("loopback only")
    fam = socket.AF_INET6 if ":" in ARGS.host else socket.AF_INET
    children = []
    for _ in range(max(1, ARGS.workers)):
        sock = socket.socket(fam, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((ARGS.host, ARGS.port))
        sock.listen(ARGS.backlog)
        if ARGS.workers <= 1:
            asyncio.run(serve(sock))
            return
        pid = os.fork()
        if pid == 0:
            asyncio.run(serve(sock))
            os._exit(0)
        sock.close()
        children.append(pid)
    try:
        for pid in children:
            os.waitpid(pid, 0)
    except KeyboardInterrupt:
        pass
    finally:
        for pid in children:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass


ARGS = None
if __name__ == "__main__":
    main()

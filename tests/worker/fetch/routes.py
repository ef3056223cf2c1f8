"""What the local test servers answer, and the limits the fetch tests read with."""

from __future__ import annotations

import re
import socket
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import unquote

from harness.images import jpeg
from harness.netjail import Net
from worker.sources import SourceLimits

IMAGE = jpeg(64, 48, pattern="gradient")
MAX_BYTES = 4096
PUBLIC_IP = "93.184.216.34"  # a global address; the jail routes it to loopback
METADATA = "http://169.254.169.254/latest/meta-data/iam/security-credentials/"


def lim(private: bool = True, timeout: float = 2.0, max_bytes: int = MAX_BYTES) -> SourceLimits:
    return SourceLimits((), max_bytes, timeout, allow_private_urls=private)


def public_name(net: Net, name: str = "images.example") -> None:
    """Make `name` resolve to PUBLIC_IP and let the jail route that address to loopback."""
    net.resolve(name, PUBLIC_IP)
    net.route(PUBLIC_IP)


class Handler(BaseHTTPRequestHandler):
    """Routes: /img, /missing, /error, /empty, /host, /big, /stream-big, /slow, /drip,
    /hops/N (N redirects before the image), /to?url (redirect anywhere)."""

    release: threading.Event  # set at teardown so hanging handlers exit
    seen_hosts: list[str]

    def log_message(self, format: str, *args: Any) -> None:  # keep pytest output clean
        pass

    def _send(
        self, status: int, body: bytes = b"", length: int | None = None, **headers: str
    ) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name.replace("_", "-"), value)
        if length is not None:
            self.send_header("Content-Length", str(length))
        self.end_headers()
        if body:
            self.wfile.write(body)

    def do_GET(self) -> None:
        self.seen_hosts.append(self.headers.get("Host", ""))
        path, _, query = self.path.partition("?")
        if path == "/img":
            self._send(200, IMAGE, len(IMAGE), Content_Type="image/jpeg")
        elif path == "/missing":
            self._send(404, b"no", 2)
        elif path == "/error":
            self._send(503, b"busy", 4)
        elif path == "/empty":
            self._send(200, b"", 0)
        elif path == "/host":
            host = self.headers.get("Host", "").encode()
            self._send(200, host, len(host))
        elif path == "/big":  # honest Content-Length, over the cap
            self._send(200, b"x" * (MAX_BYTES * 2), MAX_BYTES * 2)
        elif path == "/stream-big":  # no length: only counting the stream can stop it
            self._send(200, b"x" * (MAX_BYTES * 4))
        elif path == "/slow":  # accepts, never answers
            self.release.wait(10)
        elif path == "/drip":  # a byte just inside every read timeout, forever
            self._send(200, length=10_000)
            while not self.release.wait(0.05):
                self.wfile.write(b"x")
                self.wfile.flush()
        elif m := re.fullmatch(r"/hops/(\d+)", path):
            n = int(m.group(1))
            if n == 0:
                self._send(200, IMAGE, len(IMAGE))
            else:
                self._send(302, b"", 0, Location=f"/hops/{n - 1}")  # relative Location
        elif path == "/to":  # the client percent-encodes [ ] of an IPv6 target in the query
            self._send(302, b"", 0, Location=unquote(query))
        else:
            self._send(400, b"?", 1)


# --- raw-socket behaviours: what a server does after reading the request ------------------

Behaviour = Callable[[socket.socket, threading.Event], None]
DRIP_S = 0.3  # well inside the 1 s read timeout: no single recv ever times out


def drip_status_line(conn: socket.socket, stop: threading.Event) -> None:
    for byte in b"HTTP/1.1 200 OK\r\nX-Drip: 1\r\n"[:27]:  # ~8 s unless cut off
        if stop.wait(DRIP_S):
            return
        conn.sendall(bytes([byte]))


def drip_header_lines(conn: socket.socket, stop: threading.Event) -> None:
    conn.sendall(b"HTTP/1.1 200 OK\r\n")
    for n in range(27):
        if stop.wait(DRIP_S):
            return
        conn.sendall(b"X-Drip-%d: 1\r\n" % n)


def never_answer(conn: socket.socket, stop: threading.Event) -> None:
    stop.wait(10)

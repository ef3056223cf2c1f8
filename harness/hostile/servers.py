"""The loopback servers hostile references point at: HTTP (redirects, drips, floods), silence, S3."""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote

from harness.procs import free_port

log = logging.getLogger(__name__)

MAX_BYTES = 1_000_000
BUCKET = "crackq-hostile"


class _Handler(BaseHTTPRequestHandler):
    """/img.jpg, /img.png, /missing, /big (streamed, no length), /to?URL (302 to URL)."""

    bodies: dict[str, bytes]

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        path, _, query = self.path.partition("?")
        if path in self.bodies:
            self._send(200, self.bodies[path])
        elif path == "/big":  # no Content-Length: only counting the stream can stop it
            self.send_response(200)
            self.end_headers()
            try:
                for _ in range(MAX_BYTES // 65536 + 2):
                    self.wfile.write(b"x" * 65536)
            except OSError:  # the worker hangs up once it has counted past the limit
                pass
        elif path == "/drip":  # a header line every 0.3 s, forever: only a deadline stops it
            self.wfile.write(b"HTTP/1.1 200 OK\r\n")
            try:
                for i in range(200):
                    time.sleep(0.3)
                    self.wfile.write(f"X-Drip-{i}: 1\r\n".encode())
                    self.wfile.flush()
            except OSError:  # the worker cut the connection at its deadline
                pass
        elif path == "/to":
            self.send_response(302)
            self.send_header("Location", unquote(query))  # clients encode [ ] in a query
            self.send_header("Content-Length", "0")
            self.end_headers()
        else:
            self._send(404, b"no")

    def _send(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@dataclass(frozen=True)
class Services:
    """Ports of the loopback servers the cases point at; `s3_endpoint` None without moto."""

    http_port: int
    silent_port: int
    s3_endpoint: str | None


@contextmanager
def _http_server() -> Iterator[int]:
    from harness import images

    bodies = {"/img.jpg": images.jpeg(227, 227, pattern="gradient"), "/img.png": images.png()}
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), type("H", (_Handler,), {"bodies": bodies}))
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield int(httpd.server_address[1])
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


@contextmanager
def _silent_socket() -> Iterator[int]:
    """Listens and never accepts: the kernel completes the handshake, nobody ever answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield int(sock.getsockname()[1])


@contextmanager
def _s3_server() -> Iterator[str | None]:
    """moto's S3 on loopback with one good object, or None when moto is not installed."""
    try:
        import boto3
        from moto.server import ThreadedMotoServer
    except ImportError:
        log.warning("moto not installed: the s3:// cases are left out")
        yield None
        return
    from harness import images

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    try:
        client = boto3.client("s3", endpoint_url=endpoint, **_aws_client_args())
        client.create_bucket(Bucket=BUCKET)
        client.put_object(Bucket=BUCKET, Key="good.jpg", Body=images.jpeg(227, 227))
        yield endpoint
    finally:
        server.stop()


def _aws_client_args() -> dict[str, str]:
    return {
        "region_name": "us-east-1",
        "aws_access_key_id": "testing",
        "aws_secret_access_key": "testing",
    }


@contextmanager
def loopback_services() -> Iterator[Services]:
    """The http, silent and S3 servers the cases point at, all on 127.0.0.1."""
    with _http_server() as http_port, _silent_socket() as silent_port, _s3_server() as s3:
        yield Services(http_port, silent_port, s3)

"""Local HTTP, raw-socket and TLS servers on loopback for the fetch tests to read from."""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.worker.fetch.certificates import make_ca_and_cert
from tests.worker.fetch.routes import Behaviour, Handler


@contextlib.contextmanager
def serving(tls: ssl.SSLContext | None = None) -> Iterator[ThreadingHTTPServer]:
    """A threaded server on a free loopback port with Handler's routes, stopped on exit."""
    release = threading.Event()
    handler = type("H", (Handler,), {"release": release, "seen_hosts": []})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    if tls is not None:
        httpd.socket = tls.wrap_socket(httpd.socket, server_side=True)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield httpd
    finally:
        release.set()
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


@pytest.fixture(scope="module")
def server() -> Iterator[ThreadingHTTPServer]:
    with serving() as httpd:
        yield httpd


@pytest.fixture
def base(server: ThreadingHTTPServer) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}"


@pytest.fixture
def raw_server() -> Iterator[Callable[..., int]]:
    """Start a loopback TCP server that takes one connection, reads the request and then
    runs a behaviour on the socket (TLS first when given a server context); returns its port."""
    stop = threading.Event()
    threads: list[threading.Thread] = []

    def start(behaviour: Behaviour, tls: ssl.SSLContext | None = None) -> int:
        listener = socket.create_server(("127.0.0.1", 0))
        listener.settimeout(10)

        def serve() -> None:
            with listener, contextlib.suppress(OSError):  # the client hung up: fine
                conn, _ = listener.accept()
                conn.settimeout(10)
                with tls.wrap_socket(conn, server_side=True) if tls else conn as sock:
                    sock.recv(65536)
                    behaviour(sock, stop)

        thread = threading.Thread(target=serve)
        thread.start()
        threads.append(thread)
        return int(listener.getsockname()[1])

    yield start
    stop.set()
    for thread in threads:
        thread.join(15)


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A loopback socket that listens and never accepts: the kernel completes the
    handshake, nothing ever reads the request or answers it."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        yield sock.getsockname()[1]


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """CA, certificate and key PEM files for a server named images.example."""
    pytest.importorskip("cryptography")
    return make_ca_and_cert(tmp_path_factory.mktemp("tls"), "images.example")


@pytest.fixture(scope="module")
def tls_server(tls_files: tuple[Path, Path, Path]) -> Iterator[dict[str, Any]]:
    ca_pem, cert_pem, key_pem = tls_files
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_pem, key_pem)
    sni: list[str | None] = []
    context.sni_callback = lambda sock, name, ctx: sni.append(name)  # type: ignore[assignment,misc,return-value]
    with serving(context) as httpd:
        yield {"port": httpd.server_address[1], "ca": str(ca_pem), "sni": sni}

"""http(s) reader against a real local server: redirects, limits, timeouts, SSRF, DNS pinning."""

from __future__ import annotations

import contextlib
import datetime
import os
import re
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from ipaddress import ip_address
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest

from tests.images import jpeg
from worker.addresses import is_forbidden
from worker.errors import ErrorCode, ImageError
from worker.netguard import DEADLINE_FACTOR, MAX_REDIRECTS
from worker.sources import SourceLimits, read_bytes

IMAGE = jpeg(64, 48, pattern="gradient")
MAX_BYTES = 4096
PUBLIC_IP = "93.184.216.34"  # a global address; the jail routes it to loopback
METADATA = "http://169.254.169.254/latest/meta-data/iam/security-credentials/"


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


@pytest.fixture(scope="module")
def server() -> Iterator[ThreadingHTTPServer]:
    release = threading.Event()
    handler = type("H", (Handler,), {"release": release, "seen_hosts": []})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    yield httpd
    release.set()
    httpd.shutdown()
    httpd.server_close()
    thread.join(5)


@pytest.fixture
def base(server: ThreadingHTTPServer) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}"


def lim(private: bool = True, timeout: float = 2.0, max_bytes: int = MAX_BYTES) -> SourceLimits:
    return SourceLimits((), max_bytes, timeout, allow_private_urls=private)


def code_of(ref: str, limits: SourceLimits) -> ErrorCode:
    with pytest.raises(ImageError) as info:
        read_bytes(ref, limits)
    assert ref in info.value.message
    return info.value.code


def test_fetches_the_image(base: str) -> None:
    assert read_bytes(f"{base}/img", lim()) == IMAGE


@pytest.mark.parametrize(
    ("path", "code"),
    [
        ("/missing", ErrorCode.NOT_FOUND),
        ("/error", ErrorCode.FETCH_FAILED),
        ("/empty", ErrorCode.EMPTY_FILE),
        ("/big", ErrorCode.TOO_MANY_BYTES),
        ("/stream-big", ErrorCode.TOO_MANY_BYTES),
        (f"/hops/{MAX_REDIRECTS + 1}", ErrorCode.FETCH_FAILED),
        ("/to?file:///etc/passwd", ErrorCode.UNSUPPORTED_SCHEME),
        ("/to?s3://bucket/key", ErrorCode.UNSUPPORTED_SCHEME),
    ],
)
def test_http_failures(base: str, path: str, code: ErrorCode) -> None:
    assert code_of(f"{base}{path}", lim()) == code


def test_follows_up_to_the_redirect_limit(base: str) -> None:
    assert read_bytes(f"{base}/hops/{MAX_REDIRECTS}", lim()) == IMAGE


def test_connection_refused_is_a_fetch_failure() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound but not listening: connects are refused
        assert code_of(f"http://127.0.0.1:{port}/img", lim()) == ErrorCode.FETCH_FAILED


def test_server_that_never_answers_times_out(base: str) -> None:
    started = time.monotonic()
    assert code_of(f"{base}/slow", lim(timeout=0.5)) == ErrorCode.FETCH_TIMEOUT
    assert time.monotonic() - started < 2.0


def test_dripping_server_hits_the_total_deadline(base: str) -> None:
    started = time.monotonic()
    assert code_of(f"{base}/drip", lim(timeout=0.3, max_bytes=100_000)) == ErrorCode.FETCH_TIMEOUT
    elapsed = time.monotonic() - started
    assert 0.8 < elapsed < 2.5, elapsed  # deadline is 3 x 0.3 s; no read ever timed out


# --- one deadline for the whole request, which nothing the server does can extend --------

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


@pytest.mark.parametrize(
    ("behaviour", "cut_off"),
    [(drip_status_line, True), (drip_header_lines, True), (never_answer, False)],
    ids=["status-line-drip", "header-drip", "never-answers"],
)
def test_nothing_the_server_does_outlasts_the_fetch_deadline(
    raw_server: Callable[..., int], behaviour: Behaviour, cut_off: bool
) -> None:
    """Read timeouts count per recv; only the whole-fetch deadline stops a drip."""
    ref = f"http://127.0.0.1:{raw_server(behaviour)}/a.jpg"
    started = time.monotonic()
    with pytest.raises(ImageError) as info:
        read_bytes(ref, lim(timeout=1.0))
    elapsed = time.monotonic() - started
    assert info.value.code == ErrorCode.FETCH_TIMEOUT, info.value
    assert elapsed < DEADLINE_FACTOR * 1.0 + 1.0, elapsed
    if cut_off:  # the watchdog, not a read timeout, ended it
        assert f"took longer than {DEADLINE_FACTOR * 1.0:g} s in all" in info.value.message
        assert elapsed >= DEADLINE_FACTOR * 1.0 - 0.05, elapsed


def test_a_name_lookup_that_hangs_ends_with_the_deadline(
    net: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    release = threading.Event()
    jailed = socket.getaddrinfo

    def hanging(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host == "slow-dns.example":
            release.wait(10)
        return jailed(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", hanging)
    started = time.monotonic()
    try:
        ref = "http://slow-dns.example/a.jpg"
        assert code_of(ref, lim(private=False, timeout=0.3)) == ErrorCode.FETCH_TIMEOUT
        assert time.monotonic() - started < DEADLINE_FACTOR * 0.3 + 1.0
    finally:
        release.set()
    assert net.attempts == []


def census() -> tuple[int, int]:
    return threading.active_count(), len(os.listdir("/proc/self/fd"))


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="counts descriptors in /proc")
def test_many_fetches_leave_no_threads_or_descriptors_behind(net: Any, server: Any) -> None:
    port = server.server_address[1]
    net.resolve("images.example", PUBLIC_IP)
    net.route(PUBLIC_IP)
    refs = [f"http://127.0.0.1:{port}/img", f"http://images.example:{port}/hops/1"]
    for ref in refs * 3:  # the watchdog and a resolver thread start once, then stay
        read_bytes(ref, lim(private=ref.startswith("http://127")))
    time.sleep(0.2)
    before = census()
    for ref in refs * 100:
        assert read_bytes(ref, lim(private=ref.startswith("http://127"))) == IMAGE
    give_up = time.monotonic() + 5  # the server's handler threads outlive a response briefly
    while (after := census()) > before and time.monotonic() < give_up:
        time.sleep(0.05)
    assert after[0] <= before[0], (before, after)
    assert after[1] <= before[1], (before, after)


# --- SSRF -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "ips",
    [
        ["127.0.0.1"],
        ["169.254.169.254"],
        ["10.0.0.5"],
        ["192.168.1.10"],
        ["::1"],
        ["0.0.0.0"],
        ["224.0.0.1"],
        ["100.64.0.1"],
        ["::ffff:127.0.0.1"],
        ["fe80::1"],
        ["fd00::1"],
        [PUBLIC_IP, "10.0.0.5"],  # one bad record is enough to refuse
    ],
)
def test_names_resolving_to_non_public_addresses_are_refused_before_connecting(
    net: Any, ips: list[str]
) -> None:
    net.resolve("evil.example", *ips)
    assert (
        code_of("http://evil.example/img.jpg", lim(private=False)) == ErrorCode.ADDRESS_NOT_ALLOWED
    )
    assert (
        code_of("https://evil.example:8443/x", lim(private=False)) == ErrorCode.ADDRESS_NOT_ALLOWED
    )
    assert net.lookups.count("evil.example") == 2
    assert net.attempts == []


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/",
        "http://[::1]:8080/",
        "http://169.254.169.254/latest/meta-data/",
        "http://2130706433/",  # 127.0.0.1 spelled as one number
        "http://127.1/",
        "http://0x7f000001/",
        "http://[::ffff:a9fe:a9fe]/",  # 169.254.169.254 inside IPv6
    ],
)
def test_literal_non_public_addresses_are_refused(net: Any, url: str) -> None:
    assert code_of(url, lim(private=False)) == ErrorCode.ADDRESS_NOT_ALLOWED
    assert net.attempts == []


def test_public_addresses_are_allowed() -> None:
    for ip in (PUBLIC_IP, "8.8.8.8", "2606:4700:4700::1111"):
        assert not is_forbidden(ip_address(ip))


def test_unresolvable_name_is_a_fetch_failure(net: Any) -> None:
    assert code_of("http://nowhere.invalid/x.jpg", lim(private=False)) == ErrorCode.FETCH_FAILED
    assert net.attempts == []


def test_redirect_to_metadata_is_refused_before_connecting(net: Any, server: Any) -> None:
    port = server.server_address[1]
    net.resolve("images.example", PUBLIC_IP)
    net.route(PUBLIC_IP)
    ref = f"http://images.example:{port}/to?{METADATA}"
    assert code_of(ref, lim(private=False)) == ErrorCode.ADDRESS_NOT_ALLOWED
    assert net.attempts == [(PUBLIC_IP, port)]  # the first hop only


def test_redirect_to_a_private_name_is_refused(net: Any, server: Any) -> None:
    port = server.server_address[1]
    net.resolve("images.example", PUBLIC_IP)
    net.resolve("internal.corp", "10.1.2.3")
    net.route(PUBLIC_IP)
    ref = f"http://images.example:{port}/to?http://internal.corp/admin"
    assert code_of(ref, lim(private=False)) == ErrorCode.ADDRESS_NOT_ALLOWED
    assert net.attempts == [(PUBLIC_IP, port)]


@pytest.mark.parametrize(
    "target",
    [
        "http://127.0.0.1:{port}/img",  # a server really answers there
        "http://localhost:{port}/img",
        "http://[::1]:{port}/img",
        "https://127.0.0.1:{port}/img",
        "http://0x7f000001:{port}/img",
    ],
)
def test_redirect_to_loopback_is_refused_before_connecting(
    net: Any, server: Any, target: str
) -> None:
    port = server.server_address[1]
    net.resolve("images.example", PUBLIC_IP)
    net.route(PUBLIC_IP)
    ref = f"http://images.example:{port}/to?{target.format(port=port)}"
    assert code_of(ref, lim(private=False)) == ErrorCode.ADDRESS_NOT_ALLOWED
    assert net.attempts == [(PUBLIC_IP, port)]  # the redirecting hop, never the loopback one


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A loopback socket that listens and never accepts: the kernel completes the
    handshake, nothing ever reads the request or answers it."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        yield sock.getsockname()[1]


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_socket_that_accepts_and_never_replies_times_out(
    net: Any, silent_port: int, scheme: str
) -> None:
    """https stalls in the TLS handshake, http waiting for the status line; both time out."""
    net.resolve("images.example", PUBLIC_IP)
    net.route(PUBLIC_IP)
    started = time.monotonic()
    ref = f"{scheme}://images.example:{silent_port}/a.jpg"
    assert code_of(ref, lim(private=False, timeout=0.4)) == ErrorCode.FETCH_TIMEOUT
    assert time.monotonic() - started < 1.5  # one timeout, not the OS default of minutes
    assert net.attempts == [(PUBLIC_IP, silent_port)]


def test_connects_to_the_vetted_ip_once_resolved_and_keeps_the_host_header(
    net: Any, server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DNS rebinding: the second answer for the name would be loopback; there is no second."""
    port = server.server_address[1]
    net.route(PUBLIC_IP)
    answers = iter([[PUBLIC_IP], ["127.0.0.1"], ["127.0.0.1"]])
    real = net.getaddrinfo

    def rebinding(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host == "images.example":
            net.resolve("images.example", *next(answers))
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    body = read_bytes(f"http://images.example:{port}/host", lim(private=False))
    assert body == f"images.example:{port}".encode()
    assert net.lookups.count("images.example") == 1
    assert net.attempts == [(PUBLIC_IP, port)]


# --- TLS: SNI and certificate checked against the name while connecting to the IP --------


def make_ca_and_cert(folder: Path, hostname: str) -> tuple[Path, Path, Path]:
    """A throwaway CA and a server certificate for `hostname` signed by it (PEM files)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    validity = (now - datetime.timedelta(hours=1), now + datetime.timedelta(days=1))

    def build(subject: str, issuer: str, public_key: Any, signer: Any, ca: bool) -> Any:
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(validity[0])
            .not_valid_after(validity[1])
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if ca:
            builder = builder.add_extension(
                x509.KeyUsage(False, False, False, False, False, True, True, False, False),
                critical=True,
            ).add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        else:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.DNSName(subject)]), critical=False
            ).add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(signer.public_key()),
                critical=False,
            )
        return builder.sign(signer, hashes.SHA256())

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = build("crackq test CA", "crackq test CA", ca_key.public_key(), ca_key, True)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = build(hostname, "crackq test CA", key.public_key(), ca_key, False)
    pem = serialization.Encoding.PEM
    paths = folder / "ca.pem", folder / "cert.pem", folder / "key.pem"
    paths[0].write_bytes(ca_cert.public_bytes(pem))
    paths[1].write_bytes(cert.public_bytes(pem))
    paths[2].write_bytes(
        key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return paths


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
    release = threading.Event()
    handler = type("H", (Handler,), {"release": release, "seen_hosts": []})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    yield {"port": httpd.server_address[1], "ca": str(ca_pem), "sni": sni}
    release.set()
    httpd.shutdown()
    httpd.server_close()
    thread.join(5)


def test_https_pins_the_ip_but_verifies_the_name(
    tls_server: dict[str, Any], net: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", tls_server["ca"])
    net.resolve("images.example", PUBLIC_IP)
    net.route(PUBLIC_IP)
    tls_server["sni"].clear()
    url = f"https://images.example:{tls_server['port']}/img"
    assert read_bytes(url, lim(private=False)) == IMAGE
    assert tls_server["sni"] == ["images.example"]


def test_https_refuses_a_certificate_for_another_name(
    tls_server: dict[str, Any], net: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", tls_server["ca"])
    net.resolve("other.example", PUBLIC_IP)
    net.route(PUBLIC_IP)
    url = f"https://other.example:{tls_server['port']}/img"
    assert code_of(url, lim(private=False)) == ErrorCode.FETCH_FAILED


def test_https_refuses_an_untrusted_certificate(
    tls_server: dict[str, Any], net: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "no-such-ca.pem"))
    monkeypatch.setenv("SSL_CERT_DIR", str(tmp_path))
    net.resolve("images.example", PUBLIC_IP)
    net.route(PUBLIC_IP)
    url = f"https://images.example:{tls_server['port']}/img"
    assert code_of(url, lim(private=False)) == ErrorCode.FETCH_FAILED


def test_https_header_drip_is_cut_at_the_deadline(
    tls_files: tuple[Path, Path, Path],
    raw_server: Callable[..., int],
    net: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The cut reaches a socket wrapped in TLS after it was registered."""
    ca_pem, cert_pem, key_pem = tls_files
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_pem, key_pem)
    monkeypatch.setenv("SSL_CERT_FILE", str(ca_pem))
    net.resolve("images.example", PUBLIC_IP)
    net.route(PUBLIC_IP)
    ref = f"https://images.example:{raw_server(drip_header_lines, context)}/a.jpg"
    started = time.monotonic()
    assert code_of(ref, lim(private=False, timeout=1.0)) == ErrorCode.FETCH_TIMEOUT
    assert DEADLINE_FACTOR - 0.05 <= time.monotonic() - started < DEADLINE_FACTOR + 1.0

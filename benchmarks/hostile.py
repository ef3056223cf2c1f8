"""Hostile and odd image references through one real worker: each must end as its expected row."""

from __future__ import annotations

import errno
import ipaddress
import json
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from worker.errors import ErrorCode as E

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[1]
# A global address (so the worker's guard lets it through) that the worker's network jail
# routes to loopback: the only way to reach a redirecting or silent server on this machine
# while CRACKQ_ALLOW_PRIVATE_URLS stays false.
PUBLIC_IP = "93.184.216.34"
JAIL_ENV = "HOSTILE_NETJAIL"
MAX_BYTES = 1_000_000
HTTP_TIMEOUT_S = 1.0
BUCKET = "crackq-hostile"
SUCCEEDED = "succeeded"
# fake DNS inside the worker; none of these names is ever sent to a real resolver
NAMES = {
    "images.example": PUBLIC_IP,
    "metadata.example": "169.254.169.254",
    "intranet.example": "192.168.1.10",
    "internal.example": "10.0.0.5",
}


@dataclass(frozen=True)
class Case:
    """One image reference and the row it must end as (an ErrorCode value or `succeeded`)."""

    input: str
    ref: str
    expected: E | str


# --- loopback services ------------------------------------------------------------------


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
    from tests import images

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
    from tests import images

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
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


# --- the cases --------------------------------------------------------------------------


def build_cases(tmp: Path, svc: Services) -> list[Case]:
    """Write the files under tmp/allowed (and a secret beside it) and list every case."""
    from tests import images

    root = tmp / "allowed"
    root.mkdir(parents=True, exist_ok=True)
    (tmp / "secret.jpg").write_bytes(images.jpeg(64, 64))
    files = {
        "not an image": ("doc.jpg", images.not_an_image(), E.NOT_AN_IMAGE),
        "truncated JPEG": ("truncated.jpg", images.truncated_jpeg(), E.TRUNCATED_IMAGE),
        "truncated PNG": ("truncated.png", images.truncated_png(), E.TRUNCATED_IMAGE),
        "zero bytes": ("empty.jpg", b"", E.EMPTY_FILE),
        "1x1 image": ("tiny.png", images.tiny_1x1(), E.IMAGE_TOO_SMALL),
        "bomb: 30000x30000 PNG header": ("bomb.png", images.bomb_png(30000, 30000),
                                         E.TOO_MANY_PIXELS),
        "file over the byte limit": ("huge.jpg", images.jpeg() + b"\0" * MAX_BYTES,
                                     E.TOO_MANY_BYTES),
        "CMYK JPEG": ("cmyk.jpg", images.cmyk_jpeg(), SUCCEEDED),
        "grayscale PNG": ("grey.png", images.grayscale_png(), SUCCEEDED),
        "16-bit PNG": ("wide.png", images.png16(), SUCCEEDED),
        "palette PNG with transparency": ("palette.png", images.palette_png(transparent=True),
                                          SUCCEEDED),
        "RGBA PNG": ("rgba.png", images.rgba_png(), SUCCEEDED),
        "EXIF-rotated JPEG": ("rotated.jpg", images.exif_rotated_jpeg(), SUCCEEDED),
        "tiled TIFF bomb (146 B, 46336x46336 tiles)": ("tiles.tif", images.tiled_tiff_bomb(),
                                                       E.TOO_MANY_PIXELS),
        "16-bit grey+alpha PNG": ("la16.png", images.la16_png(), SUCCEEDED),
        "GIF (not a camera format by default)": ("anim.gif", images.gif(), E.NOT_AN_IMAGE),
    }  # fmt: skip
    cases = []
    for what, (name, data, expected) in files.items():
        (root / name).write_bytes(data)
        cases.append(Case(what, str(root / name), expected))
    link = root / "escape.jpg"
    if not link.is_symlink():
        link.symlink_to(tmp / "secret.jpg")
    fifo = root / "pipe.jpg"
    if not fifo.exists():
        os.mkfifo(fifo)
    http = f"http://images.example:{svc.http_port}"
    cases += [
        Case("../ traversal", f"{root}/../secret.jpg", E.PATH_NOT_ALLOWED),
        Case("file:// with encoded ../", f"file://{root}/%2e%2e/secret.jpg", E.PATH_NOT_ALLOWED),
        Case("symlink escaping the root", str(link), E.PATH_NOT_ALLOWED),
        Case("missing file", str(root / "nope.jpg"), E.NOT_FOUND),
        Case("FIFO (would block a reader)", str(fifo), E.NOT_FOUND),
        Case("URL to loopback (a server is there)", f"http://127.0.0.1:{svc.http_port}/img.jpg",
             E.ADDRESS_NOT_ALLOWED),
        Case("URL to localhost", f"http://localhost:{svc.http_port}/img.jpg",
             E.ADDRESS_NOT_ALLOWED),
        Case("URL to 169.254.169.254", "http://169.254.169.254/latest/meta-data/",
             E.ADDRESS_NOT_ALLOWED),
        Case("URL to a private address", "http://10.0.0.5/a.jpg", E.ADDRESS_NOT_ALLOWED),
        Case("name resolving to link-local", "http://metadata.example/latest/meta-data/",
             E.ADDRESS_NOT_ALLOWED),
        Case("https name resolving to private", "https://intranet.example:8443/a.jpg",
             E.ADDRESS_NOT_ALLOWED),
        Case("redirect to 169.254.169.254",
             f"{http}/to?http://169.254.169.254/latest/meta-data/", E.ADDRESS_NOT_ALLOWED),
        Case("redirect to loopback", f"{http}/to?http://127.0.0.1:{svc.http_port}/img.jpg",
             E.ADDRESS_NOT_ALLOWED),
        Case("redirect to a private name", f"{http}/to?http://internal.example/a.jpg",
             E.ADDRESS_NOT_ALLOWED),
        Case("redirect to file://", f"{http}/to?file:///etc/passwd", E.UNSUPPORTED_SCHEME),
        Case("URL that never answers", f"http://images.example:{svc.silent_port}/a.jpg",
             E.FETCH_TIMEOUT),
        Case("URL dripping header lines past the deadline", f"{http}/drip", E.FETCH_TIMEOUT),
        Case("URL to 6to4 of 127.0.0.1", "http://[2002:7f00:1::]/a.jpg", E.ADDRESS_NOT_ALLOWED),
        Case("URL answering 404", f"{http}/missing", E.NOT_FOUND),
        Case("URL streaming past the byte limit", f"{http}/big", E.TOO_MANY_BYTES),
        Case("public URL (control)", f"{http}/img.png", SUCCEEDED),
        Case("redirect to a public URL (control)", f"{http}/to?{http}/img.jpg", SUCCEEDED),
        Case("unknown scheme ftp://", "ftp://images.example/a.jpg", E.UNSUPPORTED_SCHEME),
        Case("unknown scheme gopher://", "gopher://images.example/1", E.UNSUPPORTED_SCHEME),
        Case("malformed URL", "http://[::1/a.jpg", E.INVALID_REQUEST),
    ]  # fmt: skip
    if svc.s3_endpoint:
        cases += [
            Case("missing S3 key", f"s3://{BUCKET}/missing.jpg", E.NOT_FOUND),
            Case("missing S3 bucket", "s3://no-such-bucket-here/a.jpg", E.NOT_FOUND),
            Case("S3 object (control)", f"s3://{BUCKET}/good.jpg", SUCCEEDED),
        ]
    return cases


def good_cases(tmp: Path, svc: Services, n: int = 4) -> list[Case]:
    """Plain good images, submitted once every hostile case has its row."""
    from tests import images

    root = tmp / "allowed"
    cases = []
    for i in range(n):
        (root / f"good{i}.jpg").write_bytes(images.jpeg(227 + i, 227, pattern="noise"))
        cases.append(Case(f"good JPEG {i} after the hostile ones", str(root / f"good{i}.jpg"),
                          SUCCEEDED))  # fmt: skip
    cases.append(
        Case("good URL after the hostile ones", f"http://images.example:{svc.http_port}/img.jpg",
             SUCCEEDED)
    )  # fmt: skip
    return cases


# --- the worker's network jail ----------------------------------------------------------


def install_netjail() -> None:
    """In a worker process: fake DNS for NAMES, PUBLIC_IP routed to loopback, nothing else out.

    Runs from a sitecustomize the harness puts on the worker's PYTHONPATH. Every connect
    beyond loopback is refused and written to the jail log, which the harness reads.
    """
    raw = os.environ.get(JAIL_ENV)
    if not raw:
        return
    cfg = json.loads(raw)
    names: dict[str, str] = cfg["names"]
    routes: dict[str, str] = cfg["routes"]
    jail_log = Path(cfg["log"])
    real_getaddrinfo = socket.getaddrinfo
    real_connect, real_connect_ex = socket.socket.connect, socket.socket.connect_ex
    local_names = {"localhost", socket.gethostname()}

    def note(line: str) -> None:
        with jail_log.open("a") as f:
            f.write(f"{os.getpid()} {line}\n")

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> list[Any]:
        name = host.decode() if isinstance(host, bytes) else str(host)
        if name in names:
            ip = names[name]
            family = socket.AF_INET6 if ":" in ip else socket.AF_INET
            return [(family, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (ip, int(port or 0)))]
        if host is None or name in local_names or _numeric(name):
            return real_getaddrinfo(host, port, *args, **kwargs)
        note(f"dns {name}")
        raise socket.gaierror(socket.EAI_NONAME, f"netjail: no DNS for {name!r}")

    def check(sock: socket.socket, address: Any) -> Any:
        if sock.family not in (socket.AF_INET, socket.AF_INET6):
            return address
        host = str(address[0])
        if host in routes:
            return (routes[host], *address[1:])
        if not ipaddress.ip_address(host.split("%", 1)[0]).is_loopback:
            note(f"leak {host}:{address[1]}")
            raise OSError(errno.ENETUNREACH, f"netjail: connect to {host} blocked")
        return address

    def connect(self: socket.socket, address: Any) -> None:
        real_connect(self, check(self, address))

    def connect_ex(self: socket.socket, address: Any) -> int:
        return real_connect_ex(self, check(self, address))

    socket.getaddrinfo = getaddrinfo  # type: ignore[assignment]
    socket.socket.connect = connect  # type: ignore[method-assign,assignment]
    socket.socket.connect_ex = connect_ex  # type: ignore[method-assign,assignment]
    note("installed")


def _numeric(host: str) -> bool:
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            socket.inet_pton(family, host.split("%", 1)[0])
            return True
        except OSError:
            pass
    try:
        socket.inet_aton(host)  # 127.1, 2130706433 and friends
        return True
    except OSError:
        return False


def _jail_env(tmp: Path) -> tuple[dict[str, str], Path]:
    folder = tmp / "netjail"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sitecustomize.py").write_text(
        '"""Network jail for a hostile-input worker."""\n\n'
        "from benchmarks.hostile import install_netjail\n\ninstall_netjail()\n"
    )
    jail_log = folder / "jail.log"
    jail_log.write_text("")
    cfg = {"names": NAMES, "routes": {PUBLIC_IP: "127.0.0.1"}, "log": str(jail_log)}
    path = os.pathsep.join(filter(None, [str(folder), str(ROOT), os.environ.get("PYTHONPATH")]))
    return {"PYTHONPATH": path, JAIL_ENV: json.dumps(cfg)}, jail_log


# --- submit and collect -----------------------------------------------------------------


def _worker_env(tmp: Path, svc: Services) -> tuple[dict[str, str], Path]:
    env, jail_log = _jail_env(tmp)
    env.update(
        CRACKQ_ALLOWED_ROOTS=str(tmp / "allowed"),
        CRACKQ_ALLOW_PRIVATE_URLS="false",
        CRACKQ_HTTP_TIMEOUT_S=str(HTTP_TIMEOUT_S),
        CRACKQ_MAX_IMAGE_BYTES=str(MAX_BYTES),
        CRACKQ_BATCH_SIZE="8",
        # boto3 must never look for credentials on the metadata address
        AWS_EC2_METADATA_DISABLED="true",
        AWS_CONFIG_FILE=str(tmp / "no-aws-config"),
        AWS_SHARED_CREDENTIALS_FILE=str(tmp / "no-aws-credentials"),
        AWS_DEFAULT_REGION="us-east-1",
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
    )
    if svc.s3_endpoint:
        env["CRACKQ_S3_ENDPOINT_URL"] = svc.s3_endpoint
    return env, jail_log


def submit_and_collect(cases: list[Case], sessions: Any, timeout_s: float) -> list[dict[str, Any]]:
    """Submit every case through the producer API, wait for their rows, one table row each."""
    from sqlalchemy import select

    from db.tables import Result
    from worker.app import app
    from worker.enqueue import submit

    batch = f"hostile-{uuid.uuid4().hex[:8]}"
    sub = submit(app, sessions, [c.ref for c in cases], batch_id=batch)
    deadline = time.monotonic() + timeout_s
    while True:
        with sessions() as s:
            found = {
                r.request_id: r for r in s.scalars(select(Result).where(Result.batch_id == batch))
            }
        pending = [r for r in found.values() if r.status == "queued"]
        if (not pending and len(found) == len(cases)) or time.monotonic() > deadline:
            break
        time.sleep(0.25)
    rows = []
    for case, rid in zip(cases, sub.request_ids, strict=True):
        row = found.get(rid)
        if row is None or row.status == "queued":
            got = "queued (timed out)"
        else:
            got = row.status if row.status == SUCCEEDED else str(row.error_code)
            if row.status != SUCCEEDED:
                log.info("%s -> %s: %s", case.input, got, row.error_message)
        expected = str(getattr(case.expected, "value", case.expected))  # ErrorCode -> its value
        rows.append({"input": case.input, "expected": expected, "got": got,
                     "ok": got == expected})  # fmt: skip
    return rows


def hostile_inputs(tmp: Path, timeout_s: float = 120.0) -> list[dict[str, Any]]:
    """Every hostile/odd input through one `crackq worker`, then good ones through the same.

    Uses whatever database and broker crackq's settings point at; starts and stops its own
    worker subprocess and loopback servers. Rows: input, expected, got, ok. The last two
    rows say whether the worker survived and whether it tried to leave loopback.
    """
    from db.session import make_engine, make_sessionmaker
    from tests.procs import READY, worker
    from worker.settings import get_settings

    tmp.mkdir(parents=True, exist_ok=True)
    engine = make_engine(get_settings().database(), pool_size=2)
    with ExitStack() as stack:
        stack.callback(engine.dispose)
        svc = stack.enter_context(loopback_services())
        cases = build_cases(tmp, svc)
        env, jail_log = _worker_env(tmp, svc)
        w = stack.enter_context(worker(tmp, f"hostile-{os.getpid()}", env=env))
        w.wait_for_log(READY, 300)
        sessions = make_sessionmaker(engine)
        rows = submit_and_collect(cases, sessions, timeout_s)
        rows += submit_and_collect(good_cases(tmp, svc), sessions, timeout_s)
        assert w.proc is not None
        alive = w.proc.poll() is None
    jail = jail_log.read_text().splitlines()
    installed = any(line.endswith(" installed") for line in jail)
    escapes = sorted({line.split(" ", 1)[1] for line in jail if not line.endswith(" installed")})
    rows.append({"input": "worker still running after all of them", "expected": "running",
                 "got": "running" if alive else "exited", "ok": alive})  # fmt: skip
    rows.append({"input": "DNS or connects beyond loopback (worker jail)", "expected": "none",
                 "got": ", ".join(escapes) or ("none" if installed else "jail not installed"),
                 "ok": installed and not escapes})  # fmt: skip
    return rows


def format_table(rows: list[dict[str, Any]]) -> str:
    """The rows as a fixed-width text table (for logs and reports)."""
    widths = [max(len(str(r[k])) for r in rows + [{k: k for k in rows[0]}]) for k in rows[0]]
    lines = ["  ".join(str(k).ljust(w) for k, w in zip(rows[0], widths, strict=True))]
    for r in rows:
        lines.append("  ".join(str(v).ljust(w) for v, w in zip(r.values(), widths, strict=True)))
    return "\n".join(line.rstrip() for line in lines)

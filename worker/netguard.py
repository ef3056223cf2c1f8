"""http(s) fetch that cannot be steered inward or held open: every hop vetted and pinned, one deadline."""

from __future__ import annotations

import ipaddress
import socket
from typing import Any
from urllib.parse import SplitResult, urljoin, urlsplit

import urllib3
import urllib3.connection
import urllib3.exceptions as u3

from worker.addresses import is_forbidden
from worker.deadline import Deadline, resolve
from worker.errors import ErrorCode, ImageError

USER_AGENT = "crackq-image-fetcher/1"
MAX_REDIRECTS = 3
# One fetch, everything included (lookups, connects, TLS, status line, headers, body,
# redirects), may take this many timeouts in all. Read timeouts count per recv: a server
# dripping a byte just inside each one would otherwise hold a decode thread for ever.
DEADLINE_FACTOR = 3
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
CHUNK = 64 * 1024


def vetted_addresses(
    host: str, port: int, allow_private: bool, ref: str, deadline: Deadline
) -> list[str]:
    """Resolve `host` once; refuse the URL if ANY address is forbidden (before any connect).

    Refusing on any, not all, matters: a name with one public and one private record
    would otherwise let the connection land on the private one.
    """
    try:
        infos = resolve(host, port, deadline, ref)
    except (socket.gaierror, UnicodeError) as exc:
        raise ImageError(ErrorCode.FETCH_FAILED, f"{ref}: cannot resolve {host!r}: {exc}") from exc
    addresses: list[str] = []
    for _family, _type, _proto, _canon, sockaddr in infos:
        text = str(sockaddr[0]).split("%", 1)[0]  # drop an IPv6 zone id
        ip = ipaddress.ip_address(text)
        if not allow_private and is_forbidden(ip):
            raise ImageError(
                ErrorCode.ADDRESS_NOT_ALLOWED, f"{ref}: {host!r} resolves to non-public {ip}"
            )
        if text not in addresses:
            addresses.append(text)
    if not addresses:
        raise ImageError(ErrorCode.FETCH_FAILED, f"{ref}: {host!r} has no address")
    return addresses


def host_header(parts: SplitResult) -> str:
    """The Host header of the URL as written (the name, not the pinned IP)."""
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    return host if parts.port is None else f"{host}:{parts.port}"


class _WatchedHTTPConnection(urllib3.connection.HTTPConnection):
    """Hands its socket to the fetch's Deadline as soon as it is connected."""

    def __init__(self, *args: Any, deadline: Deadline, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.deadline = deadline

    def _new_conn(self) -> socket.socket:
        return _watched(super()._new_conn(), self.deadline)


class _WatchedHTTPSConnection(urllib3.connection.HTTPSConnection):
    """Hands its socket to the fetch's Deadline as soon as it is connected, before TLS."""

    def __init__(self, *args: Any, deadline: Deadline, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.deadline = deadline

    def _new_conn(self) -> socket.socket:
        return _watched(super()._new_conn(), self.deadline)


def _watched(sock: socket.socket, deadline: Deadline) -> socket.socket:
    try:
        deadline.watch(sock)
    except BaseException:  # e.g. no descriptor left for the dup
        sock.close()
        raise
    return sock


class _HTTPPool(urllib3.HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection


class _HTTPSPool(urllib3.HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


def open_pinned(
    parts: SplitResult, ip: str, timeout_s: float, deadline: Deadline
) -> tuple[urllib3.HTTPConnectionPool, urllib3.BaseHTTPResponse]:
    """GET the URL over a connection to `ip`, keeping Host, TLS SNI and certificate name.

    Connecting to the vetted IP rather than the name means no second DNS lookup, so a
    resolver that answers differently the second time (DNS rebinding) changes nothing.
    Redirects and retries are off: the caller vets every hop itself. Every socket goes to
    `deadline` as soon as it is connected. The caller closes the response and the pool.
    """
    hostname = parts.hostname or ""
    timeout = urllib3.Timeout(connect=timeout_s, read=timeout_s)
    pool: urllib3.HTTPConnectionPool
    if parts.scheme == "https":
        pool = _HTTPSPool(
            ip,
            parts.port or 443,
            timeout=timeout,
            retries=False,
            cert_reqs="CERT_REQUIRED",
            server_hostname=hostname,
            assert_hostname=hostname,
            deadline=deadline,
        )
    else:
        pool = _HTTPPool(ip, parts.port or 80, timeout=timeout, retries=False, deadline=deadline)
    path = parts.path or "/"
    if parts.query:
        path = f"{path}?{parts.query}"
    headers = {
        "Host": host_header(parts),
        "User-Agent": USER_AGENT,
        "Accept": "image/*",
        # a compressed body could inflate past the byte cap before we count it
        "Accept-Encoding": "identity",
    }
    try:
        response = pool.urlopen(
            "GET",
            path,
            headers=headers,
            redirect=False,
            retries=False,
            preload_content=False,
            decode_content=False,
            assert_same_host=False,
        )
    except BaseException:
        pool.close()
        raise
    return pool, response


def fetch_http(ref: str, max_bytes: int, timeout_s: float, allow_private: bool) -> bytes:
    """GET an http(s) URL, vetting and pinning every redirect hop; ImageError on failure.

    The whole fetch ends within DEADLINE_FACTOR x timeout_s, whatever the server does: the
    watchdog then shuts its sockets down, and a name lookup still running is abandoned.
    """
    deadline = Deadline(timeout_s * DEADLINE_FACTOR)
    try:
        data = _follow(ref, max_bytes, timeout_s, allow_private, deadline)
    except Exception as exc:
        if deadline.expired:  # a cut socket surfaces as any transport error
            raise deadline.error(ref) from exc
        raise
    finally:
        deadline.finish()
    if deadline.expired:  # a body without Content-Length may have been cut short
        raise deadline.error(ref)
    return data


def _follow(
    ref: str, max_bytes: int, timeout_s: float, allow_private: bool, deadline: Deadline
) -> bytes:
    url = ref
    for _hop in range(MAX_REDIRECTS + 1):
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https"):
            raise ImageError(ErrorCode.UNSUPPORTED_SCHEME, f"{ref}: redirected to {url}")
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError as exc:
            raise ImageError(ErrorCode.INVALID_REQUEST, f"{ref}: bad port in {url}") from exc
        if not parts.hostname:
            raise ImageError(ErrorCode.INVALID_REQUEST, f"{ref}: no host in {url}")
        who = ref if url == ref else f"{ref} (redirected to {url})"
        addresses = vetted_addresses(parts.hostname, port, allow_private, who, deadline)
        location, data = _get_once(parts, addresses, max_bytes, timeout_s, deadline, who)
        if location is None:
            return data
        url = urljoin(url, location)
    raise ImageError(ErrorCode.FETCH_FAILED, f"{ref}: more than {MAX_REDIRECTS} redirects")


def _get_once(
    parts: SplitResult,
    addresses: list[str],
    max_bytes: int,
    timeout_s: float,
    deadline: Deadline,
    who: str,
) -> tuple[str | None, bytes]:
    """One request: (redirect location, b"") or (None, body)."""
    timed_out = False
    for ip in addresses:  # every one already vetted; the next is tried if one is unreachable
        remaining = deadline.left()
        if remaining <= 0:
            raise deadline.error(who)
        try:
            pool, response = open_pinned(parts, ip, min(timeout_s, remaining), deadline)
        except u3.NewConnectionError:  # refused/unreachable; subclass of ConnectTimeoutError
            continue
        except u3.ConnectTimeoutError:
            timed_out = True
            continue
        except u3.ReadTimeoutError as exc:
            raise ImageError(ErrorCode.FETCH_TIMEOUT, f"{who}: no response") from exc
        except (u3.HTTPError, OSError) as exc:
            raise ImageError(ErrorCode.FETCH_FAILED, f"{who}: {exc}") from exc
        try:
            return _body(response, max_bytes, deadline, who)
        finally:
            response.close()
            pool.close()
            deadline.release()
    if timed_out:
        raise ImageError(ErrorCode.FETCH_TIMEOUT, f"{who}: connect timed out")
    raise ImageError(ErrorCode.FETCH_FAILED, f"{who}: cannot connect")


def _body(
    response: urllib3.BaseHTTPResponse, max_bytes: int, deadline: Deadline, who: str
) -> tuple[str | None, bytes]:
    status = response.status
    if status in REDIRECT_STATUSES:
        location = response.headers.get("Location")
        if not location:
            raise ImageError(ErrorCode.FETCH_FAILED, f"{who}: HTTP {status} without Location")
        return location, b""
    if status in (404, 410):
        raise ImageError(ErrorCode.NOT_FOUND, f"{who}: HTTP {status}")
    if status != 200:
        raise ImageError(ErrorCode.FETCH_FAILED, f"{who}: HTTP {status}")
    length = response.headers.get("Content-Length", "")
    if length.isdigit() and int(length) > max_bytes:
        raise ImageError(ErrorCode.TOO_MANY_BYTES, f"{who}: {length} bytes > {max_bytes}")
    chunks: list[bytes] = []
    total = 0
    try:
        # read1 returns what has arrived: the deadline is checked between reads as well
        while chunk := response.read1(CHUNK):
            chunks.append(chunk)
            total += len(chunk)
            if total > max_bytes:
                raise ImageError(ErrorCode.TOO_MANY_BYTES, f"{who}: more than {max_bytes} bytes")
            if deadline.left() < 0:
                raise deadline.error(who)
    except u3.ReadTimeoutError as exc:
        raise ImageError(ErrorCode.FETCH_TIMEOUT, f"{who}: read timed out") from exc
    except (u3.HTTPError, OSError) as exc:
        raise ImageError(ErrorCode.FETCH_FAILED, f"{who}: download failed: {exc}") from exc
    return None, b"".join(chunks)

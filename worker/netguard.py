"""http(s) fetch that cannot be steered inward: every hop's addresses vetted, the connection pinned."""

from __future__ import annotations

import ipaddress
import socket
import time
from urllib.parse import SplitResult, urljoin, urlsplit

import urllib3
import urllib3.exceptions as u3

from worker.errors import ErrorCode, ImageError

USER_AGENT = "crackq-image-fetcher/1"
MAX_REDIRECTS = 3
# One fetch, redirects included, may take this many timeouts in all: a server dripping a
# byte just inside every read timeout would otherwise hold a decode thread forever.
DEADLINE_FACTOR = 3
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
CHUNK = 64 * 1024

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def is_forbidden(ip: IPAddress) -> bool:
    """True for any address a worker must never be steered to (cloud metadata, LAN, localhost)."""
    mapped = getattr(ip, "ipv4_mapped", None)
    if mapped is not None:  # ::ffff:127.0.0.1 reaches 127.0.0.1
        return is_forbidden(mapped)
    return (
        ip.is_loopback
        or ip.is_private
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
        # not global: also shared 100.64/10 (carrier NAT) and other special-purpose ranges
        or not ip.is_global
    )


def vetted_addresses(host: str, port: int, allow_private: bool, ref: str) -> list[str]:
    """Resolve `host` once; refuse the URL if ANY address is forbidden (before any connect).

    Refusing on any, not all, matters: a name with one public and one private record
    would otherwise let the connection land on the private one.
    """
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
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


def open_pinned(
    parts: SplitResult, ip: str, timeout_s: float
) -> tuple[urllib3.HTTPConnectionPool, urllib3.BaseHTTPResponse]:
    """GET the URL over a connection to `ip`, keeping Host, TLS SNI and certificate name.

    Connecting to the vetted IP rather than the name means no second DNS lookup, so a
    resolver that answers differently the second time (DNS rebinding) changes nothing.
    Redirects and retries are off: the caller vets every hop itself. The caller closes
    the response and the pool.
    """
    hostname = parts.hostname or ""
    timeout = urllib3.Timeout(connect=timeout_s, read=timeout_s)
    pool: urllib3.HTTPConnectionPool
    if parts.scheme == "https":
        pool = urllib3.HTTPSConnectionPool(
            ip,
            parts.port or 443,
            timeout=timeout,
            retries=False,
            cert_reqs="CERT_REQUIRED",
            server_hostname=hostname,
            assert_hostname=hostname,
        )
    else:
        pool = urllib3.HTTPConnectionPool(ip, parts.port or 80, timeout=timeout, retries=False)
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
    """GET an http(s) URL, vetting and pinning every redirect hop; ImageError on failure."""
    deadline = time.monotonic() + timeout_s * DEADLINE_FACTOR
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
        addresses = vetted_addresses(parts.hostname, port, allow_private, who)
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
    deadline: float,
    who: str,
) -> tuple[str | None, bytes]:
    """One request: (redirect location, b"") or (None, body)."""
    timed_out = False
    for ip in addresses:  # every one already vetted; the next is tried if one is unreachable
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        try:
            pool, response = open_pinned(parts, ip, min(timeout_s, remaining))
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
    if timed_out or time.monotonic() >= deadline:
        raise ImageError(ErrorCode.FETCH_TIMEOUT, f"{who}: connect timed out")
    raise ImageError(ErrorCode.FETCH_FAILED, f"{who}: cannot connect")


def _body(
    response: urllib3.BaseHTTPResponse, max_bytes: int, deadline: float, who: str
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
        # read1 returns what has arrived, so the deadline is checked between small reads
        while chunk := response.read1(CHUNK):
            chunks.append(chunk)
            total += len(chunk)
            if total > max_bytes:
                raise ImageError(ErrorCode.TOO_MANY_BYTES, f"{who}: more than {max_bytes} bytes")
            if time.monotonic() > deadline:
                raise ImageError(ErrorCode.FETCH_TIMEOUT, f"{who}: download took too long")
    except u3.ReadTimeoutError as exc:
        raise ImageError(ErrorCode.FETCH_TIMEOUT, f"{who}: read timed out") from exc
    except (u3.HTTPError, OSError) as exc:
        raise ImageError(ErrorCode.FETCH_FAILED, f"{who}: download failed: {exc}") from exc
    return None, b"".join(chunks)

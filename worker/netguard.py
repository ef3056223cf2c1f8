"""http(s) fetch that cannot be steered inward or held open: every hop vetted and pinned, one deadline."""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import SplitResult, urljoin, urlsplit

import urllib3
import urllib3.exceptions as u3

from worker.addresses import is_forbidden
from worker.deadline import Deadline, resolve
from worker.errors import ErrorCode, ImageError
from worker.pinned import open_pinned

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

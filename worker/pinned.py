"""One GET over a connection pinned to a vetted IP, its socket watched by the fetch's deadline."""

from __future__ import annotations

import socket
from typing import Any
from urllib.parse import SplitResult

import urllib3
import urllib3.connection

from worker.deadline import Deadline

USER_AGENT = "crackq-image-fetcher/1"


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

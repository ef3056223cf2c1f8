"""Network jail for worker tests: no packet leaves loopback, and every connect is recorded."""

from __future__ import annotations

import errno
import ipaddress
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

REAL_GETADDRINFO = socket.getaddrinfo


def _numeric(host: str) -> bool:
    """True for any spelling the C resolver parses without DNS (incl. 2130706433, 127.1)."""
    try:
        socket.inet_aton(host)
        return True
    except OSError:
        pass
    try:
        socket.inet_pton(socket.AF_INET6, host.split("%", 1)[0])
        return True
    except OSError:
        return False


@dataclass
class Net:
    """What tests can see and arrange: connect attempts, fake DNS names, fake public hosts."""

    attempts: list[tuple[str, int]] = field(default_factory=list)
    leaks: list[tuple[str, int]] = field(default_factory=list)
    lookups: list[str] = field(default_factory=list)
    names: dict[str, list[str]] = field(default_factory=dict)
    routes: dict[str, str] = field(default_factory=dict)

    def resolve(self, name: str, *ips: str) -> None:
        """Make `name` resolve to `ips` (no real DNS is ever queried)."""
        self.names[name] = list(ips)

    def route(self, public_ip: str, loopback_ip: str = "127.0.0.1") -> None:
        """Let connects to a public-looking IP land on loopback, as if it were that host."""
        self.routes[public_ip] = loopback_ip

    def getaddrinfo(self, host: Any, port: Any, *args: Any, **kwargs: Any) -> list[Any]:
        name = host.decode() if isinstance(host, bytes) else str(host)
        self.lookups.append(name)
        if name in self.names:
            result = []
            for ip in self.names[name]:
                family = socket.AF_INET6 if ":" in ip else socket.AF_INET
                sockaddr = (ip, int(port or 0), 0, 0) if ":" in ip else (ip, int(port or 0))
                result.append((family, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", sockaddr))
            return result
        if host is None or name == "localhost" or _numeric(name):
            return REAL_GETADDRINFO(host, port, *args, **kwargs)
        raise socket.gaierror(socket.EAI_NONAME, f"test jail: no DNS for {name!r}")

    def check(self, sock: socket.socket, address: Any) -> Any:
        if sock.family not in (socket.AF_INET, socket.AF_INET6):
            return address  # unix sockets stay on this machine
        host, port = str(address[0]), int(address[1])
        self.attempts.append((host, port))
        if host in self.routes:
            return (self.routes[host], port, *address[2:])
        try:
            loopback = ipaddress.ip_address(host.split("%", 1)[0]).is_loopback
        except ValueError:
            loopback = host == "localhost"
        if not loopback:
            self.leaks.append((host, port))
            raise OSError(errno.ENETUNREACH, f"test jail: connect to {address} blocked")
        return address


@pytest.fixture(autouse=True)
def net(monkeypatch: pytest.MonkeyPatch) -> Iterator[Net]:
    """Every worker test runs jailed; a test fails if anything tried to leave loopback."""
    jail = Net()
    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex

    def connect(self: socket.socket, address: Any) -> None:
        real_connect(self, jail.check(self, address))

    def connect_ex(self: socket.socket, address: Any) -> int:
        return real_connect_ex(self, jail.check(self, address))

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
    monkeypatch.setattr(socket, "getaddrinfo", jail.getaddrinfo)
    yield jail
    assert not jail.leaks, f"connections attempted beyond loopback: {jail.leaks}"

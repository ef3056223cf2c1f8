"""The network jail: fake DNS, chosen public addresses routed to loopback, nothing else out.

Tests patch it into their own process (`monkeypatch`); a worker subprocess gets it from a
sitecustomize that `jail_env` writes, and reports what it refused in a log file.
"""

from __future__ import annotations

import errno
import ipaddress
import json
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.procs import ROOT

REAL_GETADDRINFO = socket.getaddrinfo
JAIL_ENV = "HARNESS_NETJAIL"


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
    """What the jail saw and what it was told: connect attempts, fake DNS names, fake hosts."""

    attempts: list[tuple[str, int]] = field(default_factory=list)
    leaks: list[tuple[str, int]] = field(default_factory=list)
    lookups: list[str] = field(default_factory=list)
    names: dict[str, list[str]] = field(default_factory=dict)
    routes: dict[str, str] = field(default_factory=dict)
    local_names: set[str] = field(default_factory=lambda: {"localhost"})
    log: Path | None = None

    def resolve(self, name: str, *ips: str) -> None:
        """Make `name` resolve to `ips` (no real DNS is ever queried)."""
        self.names[name] = list(ips)

    def route(self, public_ip: str, loopback_ip: str = "127.0.0.1") -> None:
        """Let connects to a public-looking IP land on loopback, as if it were that host."""
        self.routes[public_ip] = loopback_ip

    def note(self, line: str) -> None:
        """One line in the jail log (a subprocess's only way to tell its parent)."""
        if self.log is not None:
            with self.log.open("a") as f:
                f.write(f"{os.getpid()} {line}\n")

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
        if host is None or name in self.local_names or _numeric(name):
            return REAL_GETADDRINFO(host, port, *args, **kwargs)
        self.note(f"dns {name}")
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
            self.note(f"leak {host}:{port}")
            raise OSError(errno.ENETUNREACH, f"test jail: connect to {address} blocked")
        return address


def install(net: Net, set_attr: Callable[[Any, str, Any], None] = setattr) -> None:
    """Jail this process: for good by default, or undone later with `monkeypatch.setattr`."""
    real_connect, real_connect_ex = socket.socket.connect, socket.socket.connect_ex

    def connect(self: socket.socket, address: Any) -> None:
        real_connect(self, net.check(self, address))

    def connect_ex(self: socket.socket, address: Any) -> int:
        return real_connect_ex(self, net.check(self, address))

    set_attr(socket.socket, "connect", connect)
    set_attr(socket.socket, "connect_ex", connect_ex)
    set_attr(socket, "getaddrinfo", net.getaddrinfo)
    net.note("installed")


def install_from_env() -> None:
    """In a subprocess started with `jail_env`'s environment: jail it; otherwise nothing."""
    raw = os.environ.get(JAIL_ENV)
    if not raw:
        return
    cfg = json.loads(raw)
    names = {name: [ip] for name, ip in cfg["names"].items()}
    local = {"localhost", socket.gethostname()}  # Celery names its node after the host
    install(Net(names=names, routes=cfg["routes"], local_names=local, log=Path(cfg["log"])))


def jail_env(
    folder: Path, names: dict[str, str], routes: dict[str, str]
) -> tuple[dict[str, str], Path]:
    """Environment that jails every Python subprocess started with it, and its jail log."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sitecustomize.py").write_text(
        '"""Network jail for a subprocess of the test harness."""\n\n'
        "from harness.netjail import install_from_env\n\ninstall_from_env()\n"
    )
    jail_log = folder / "jail.log"
    jail_log.write_text("")
    cfg = {"names": names, "routes": routes, "log": str(jail_log)}
    path = os.pathsep.join(filter(None, [str(folder), str(ROOT), os.environ.get("PYTHONPATH")]))
    return {"PYTHONPATH": path, JAIL_ENV: json.dumps(cfg)}, jail_log


def jail_report(jail_log: Path) -> tuple[bool, list[str]]:
    """(whether the jail was installed, every DNS name or address it refused) from its log."""
    lines = jail_log.read_text().splitlines()
    installed = any(line.endswith(" installed") for line in lines)
    escapes = sorted({line.split(" ", 1)[1] for line in lines if not line.endswith(" installed")})
    return installed, escapes

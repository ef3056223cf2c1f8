"""http reader and SSRF: non-public names, literals and redirects are refused before any
connect, and a vetted address is pinned against DNS rebinding."""

from __future__ import annotations

import socket
import time
from ipaddress import ip_address
from typing import Any

import pytest

from tests.worker.fetch.routes import METADATA, PUBLIC_IP, lim, public_name
from tests.worker.reading import code_of
from worker.addresses import is_forbidden
from worker.errors import ErrorCode
from worker.sources import read_bytes


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
    public_name(net)
    ref = f"http://images.example:{port}/to?{METADATA}"
    assert code_of(ref, lim(private=False)) == ErrorCode.ADDRESS_NOT_ALLOWED
    assert net.attempts == [(PUBLIC_IP, port)]  # the first hop only


def test_redirect_to_a_private_name_is_refused(net: Any, server: Any) -> None:
    port = server.server_address[1]
    public_name(net)
    net.resolve("internal.corp", "10.1.2.3")
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
    public_name(net)
    ref = f"http://images.example:{port}/to?{target.format(port=port)}"
    assert code_of(ref, lim(private=False)) == ErrorCode.ADDRESS_NOT_ALLOWED
    assert net.attempts == [(PUBLIC_IP, port)]  # the redirecting hop, never the loopback one


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_socket_that_accepts_and_never_replies_times_out(
    net: Any, silent_port: int, scheme: str
) -> None:
    """https stalls in the TLS handshake, http waiting for the status line; both time out."""
    public_name(net)
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

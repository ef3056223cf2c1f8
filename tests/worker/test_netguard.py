"""The fetch guards on their own: the special-purpose deny list and the fetch deadline."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator
from ipaddress import ip_address

import pytest

from worker import deadline
from worker.addresses import SPECIAL_PURPOSE, is_forbidden
from worker.deadline import Deadline

REFUSED = [
    # IPv4 special-purpose registry
    "0.1.2.3",
    "10.255.0.1",
    "100.64.0.1",
    "100.127.255.254",  # carrier-grade NAT, last
    "127.0.0.1",
    "127.255.255.254",
    "169.254.169.254",  # cloud metadata
    "172.16.0.1",
    "172.31.255.255",
    "192.0.0.170",  # NAT64 discovery
    "192.0.2.1",
    "192.88.99.1",
    "192.168.1.1",
    "198.18.0.1",
    "198.19.255.255",
    "198.51.100.7",
    "203.0.113.9",
    "224.0.0.251",
    "239.255.255.250",
    "240.0.0.1",
    "255.255.255.255",
    # IPv6 special-purpose registry
    "::",
    "::1",
    "::7f00:1",  # IPv4-compatible 127.0.0.1
    "::ffff:127.0.0.1",
    "::ffff:169.254.169.254",
    "::ffff:10.0.0.1",
    "64:ff9b::7f00:1",  # NAT64 of 127.0.0.1
    "64:ff9b::a9fe:a9fe",  # NAT64 of 169.254.169.254
    "64:ff9b:1::a9fe:a9fe",  # local-use NAT64
    "100::1",
    "2001::1",  # Teredo
    "2001:db8::1",
    "2002:7f00:1::",  # 6to4 of 127.0.0.1
    "2002:a9fe:a9fe::1",  # 6to4 of 169.254.169.254
    "3fff::1",
    "5f00::1",
    "fc00::1",
    "fd12:3456::1",
    "fe80::1",
    "fec0::1",  # site-local; some Pythons call it global
    "ff02::1",
]
ALLOWED = [
    "93.184.216.34",
    "8.8.8.8",
    "1.1.1.1",
    "100.128.0.1",  # just past carrier-grade NAT
    "172.32.0.1",  # just past 172.16/12
    "198.20.0.1",  # just past benchmarking
    "::ffff:8.8.8.8",  # mapped: judged by the IPv4 address
    "2606:4700:4700::1111",
    "2001:4860:4860::8888",
    "2001:200::1",  # just past 2001::/23
    "2003::1",  # just past 6to4
]


@pytest.mark.parametrize("address", REFUSED)
def test_special_purpose_addresses_are_refused(address: str) -> None:
    assert is_forbidden(ip_address(address))


@pytest.mark.parametrize("address", REFUSED)
def test_the_explicit_list_refuses_them_whatever_the_stdlib_says(address: str) -> None:
    ip = ip_address(address)
    ip = getattr(ip, "ipv4_mapped", None) or ip
    assert any(ip in network for network in SPECIAL_PURPOSE), address


@pytest.mark.parametrize("address", ALLOWED)
def test_public_addresses_pass(address: str) -> None:
    assert not is_forbidden(ip_address(address))


# --- the deadline and its watchdog --------------------------------------------------------


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    a, b = socket.socketpair()
    a.settimeout(5)
    with a, b:
        yield a, b


def test_the_watchdog_wakes_a_blocked_recv_at_the_deadline(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    ours, _peer = pair
    deadline = Deadline(0.3)
    deadline.watch(ours)
    started = time.monotonic()
    assert ours.recv(1) == b""  # shut down: end of stream, long before the 5 s timeout
    assert 0.25 <= time.monotonic() - started < 1.5
    assert deadline.expired
    deadline.finish()


def test_a_socket_watched_after_the_deadline_is_cut_at_once(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    ours, _peer = pair
    deadline = Deadline(0.0)
    give_up = time.monotonic() + 2
    while not deadline.expired and time.monotonic() < give_up:
        time.sleep(0.01)
    deadline.watch(ours)
    assert ours.recv(1) == b""
    deadline.finish()


def test_a_finished_fetch_is_never_cut(pair: tuple[socket.socket, socket.socket]) -> None:
    ours, peer = pair
    deadline = Deadline(0.1)
    deadline.watch(ours)
    deadline.finish()
    time.sleep(0.3)
    peer.sendall(b"x")
    assert ours.recv(1) == b"x"
    assert not deadline.expired


def test_finished_deadlines_do_not_pile_up() -> None:
    for _ in range(1000):
        Deadline(60).finish()
    Deadline(60).finish()
    assert len(deadline._watchdog._heap) <= 2  # finished ones leave as new ones arrive


@pytest.mark.skipif(not hasattr(os, "fork"), reason="Celery's prefork pool forks")
def test_a_forked_child_gets_its_own_watchdog(pair: tuple[socket.socket, socket.socket]) -> None:
    Deadline(60).finish()  # the parent's watchdog thread is running
    pid = os.fork()
    if pid == 0:  # child: exit without returning into pytest
        ok = False
        try:
            ours, _peer = pair
            deadline = Deadline(0.2)
            deadline.watch(ours)
            ok = ours.recv(1) == b"" and deadline.expired
        finally:
            os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0

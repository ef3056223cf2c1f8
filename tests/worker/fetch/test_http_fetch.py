"""http reader against a real local server: answers, redirects, limits, timeouts, the deadline."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from tests.worker.fetch.routes import (
    IMAGE,
    Behaviour,
    drip_header_lines,
    drip_status_line,
    lim,
    never_answer,
    public_name,
)
from tests.worker.reading import code_of
from worker.errors import ErrorCode, ImageError
from worker.netguard import DEADLINE_FACTOR, MAX_REDIRECTS
from worker.sources import read_bytes


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
    public_name(net)
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

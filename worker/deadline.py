"""One deadline per fetch that nothing inside it can extend: a watchdog cuts its sockets."""

from __future__ import annotations

import contextlib
import heapq
import ipaddress
import itertools
import math
import os
import queue
import socket
import threading
import time
from concurrent import futures
from typing import Any

from worker.errors import ErrorCode, ImageError

RESOLVER_THREADS = 8  # name lookups in flight at once; more wait their turn, within deadline


class Deadline:
    """One fetch's time budget; when it runs out the watchdog shuts the fetch's sockets down.

    shutdown() wakes a recv blocked anywhere (TLS handshake, status line, headers, body),
    which a check between reads cannot. The sockets held are dup()s, closed only here and
    under the lock, so a shutdown can never land on a descriptor the OS has reused.
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.at = time.monotonic() + seconds
        self.expired = False  # the watchdog fired: whatever failed, failed because of it
        self.done = False
        self._socks: list[socket.socket] = []
        self._lock = threading.Lock()
        _watchdog.arm(self)

    def left(self) -> float:
        return self.at - time.monotonic()

    def error(self, who: str) -> ImageError:
        return ImageError(
            ErrorCode.FETCH_TIMEOUT, f"{who}: took longer than {self.seconds:g} s in all"
        )

    def watch(self, sock: socket.socket) -> None:
        """Shut `sock` down at the deadline, or now if that has passed."""
        dup = sock.dup()
        with self._lock:
            self._socks.append(dup)
            if self.expired:
                _cut(dup)

    def expire(self) -> None:
        with self._lock:
            if self.done:
                return
            self.expired = True
            for sock in self._socks:
                _cut(sock)

    def release(self) -> None:
        """Close the dups of the sockets this fetch has finished with."""
        with self._lock:
            for sock in self._socks:
                sock.close()
            self._socks.clear()

    def finish(self) -> None:
        with self._lock:
            self.done = True
        self.release()


def _cut(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):  # the peer may have closed it already
        sock.shutdown(socket.SHUT_RDWR)


class _Watchdog:
    """One daemon thread per process, asleep until the earliest pending deadline."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Deadline]] = []
        self._order = itertools.count()  # equal times never compare Deadlines
        self._wake = threading.Condition(threading.Lock())
        self._thread: threading.Thread | None = None
        self._sleeps_until = math.inf  # what the thread waits for; later arrivals never wake it

    def arm(self, deadline: Deadline) -> None:
        with self._wake:
            self._drop_finished()
            heapq.heappush(self._heap, (deadline.at, next(self._order), deadline))
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="crackq-fetch-watchdog", daemon=True
                )
                self._thread.start()
            elif deadline.at < self._sleeps_until:
                self._wake.notify()

    def _drop_finished(self) -> None:
        while self._heap and self._heap[0][2].done:
            heapq.heappop(self._heap)

    def _run(self) -> None:
        with self._wake:
            while True:
                self._drop_finished()
                wait = self._heap[0][0] - time.monotonic() if self._heap else None
                if wait is None or wait > 0:
                    self._sleeps_until = self._heap[0][0] if self._heap else math.inf
                    self._wake.wait(wait)
                else:
                    heapq.heappop(self._heap)[2].expire()


class _Resolver:
    """getaddrinfo on a few shared daemon threads, so a lookup that hangs costs the fetch
    no more than its deadline (the thread itself waits out the system resolver's timeout)."""

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue[tuple[str, int, futures.Future[list[Any]]]]
        self._jobs = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._threads = 0
        self._pending = 0

    def resolve(self, host: str, port: int, timeout: float) -> list[Any]:
        """getaddrinfo's answer or exception; futures.TimeoutError after `timeout` seconds."""
        job: futures.Future[list[Any]] = futures.Future()
        with self._lock:
            self._pending += 1
            if self._pending > self._threads and self._threads < RESOLVER_THREADS:
                self._threads += 1
                threading.Thread(target=self._work, name="crackq-resolver", daemon=True).start()
        self._jobs.put((host, port, job))
        return job.result(timeout)

    def _work(self) -> None:
        while True:
            host, port, job = self._jobs.get()
            try:
                job.set_result(socket.getaddrinfo(host, port, type=socket.SOCK_STREAM))
            except Exception as exc:  # the caller's to handle, if it still waits
                job.set_exception(exc)
            with self._lock:
                self._pending -= 1


_watchdog = _Watchdog()
_resolver = _Resolver()


def _fresh_threads_in_child() -> None:
    """A forked child (Celery prefork) has none of the parent's threads: start over."""
    global _watchdog, _resolver
    _watchdog, _resolver = _Watchdog(), _Resolver()


os.register_at_fork(after_in_child=_fresh_threads_in_child)


def _numeric(host: str) -> bool:
    """True for an address literal in any spelling the C library reads without DNS."""
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
        return True
    except ValueError:
        pass
    try:
        socket.inet_aton(host)  # 127.1, 0x7f000001, 2130706433
    except (OSError, ValueError):
        return False
    return not any(c.isspace() for c in host)  # inet_aton ignores anything after a space


def resolve(host: str, port: int, deadline: Deadline, who: str) -> list[Any]:
    """getaddrinfo within the deadline: literals inline, names on the resolver threads."""
    if _numeric(host):
        return socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    try:
        return _resolver.resolve(host, port, max(deadline.left(), 0.0))
    except futures.TimeoutError:
        raise deadline.error(who) from None

"""Redis of our own: a private redis-server on a loopback port, or an emptied db on the shared one."""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from harness.procs import free_port, terminate, wait_until


def leased_db(first: int = 11, last: int = 15) -> int:
    """The first Redis db number in first..last no other test session on this host holds.

    Two pytest sessions at once (two developers, or a helper beside CI) would otherwise
    flush and consume each other's queues on the same db. The lease is an exclusive lock
    on a file in the temp folder, held until this process exits.
    """
    for db in range(first, last + 1):
        path = os.path.join(tempfile.gettempdir(), f"crackq-test-redis-db-{db}.lock")
        fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        _LEASES.append(fd)  # kept open: closing it would release the lock
        return db
    raise RuntimeError(f"Redis dbs {first}..{last} are all held by other test sessions")


_LEASES: list[int] = []


@contextlib.contextmanager
def emptied_db(url: str) -> Iterator[Any]:
    """A client on the Redis db at `url`, flushed before and after: a run's private db."""
    import redis

    client = redis.Redis.from_url(url)
    client.flushdb()
    try:
        yield client
    finally:
        client.flushdb()
        client.close()


class RedisServer:
    """A private redis-server on a loopback port, persisted as docker-compose.yml does."""

    def __init__(self, folder: Path, port: int | None = None) -> None:
        self.folder = folder
        self.port = port or free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 30) -> None:
        import redis

        self.folder.mkdir(parents=True, exist_ok=True)
        argv = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1"]
        argv += ["--dir", str(self.folder), "--logfile", str(self.folder / "redis.log")]
        # "always": a write is in the AOF before Redis replies, so a SIGKILL loses nothing
        # the worker was told about. With "everysec" (docker-compose.yml) a loaded host can
        # defer the AOF write by up to 2 s, and the kill test then lost a message under load.
        argv += ["--appendonly", "yes", "--appendfsync", "always", "--save", ""]
        argv += ["--maxmemory-policy", "noeviction"]
        self.proc = subprocess.Popen(argv, start_new_session=True)
        client = redis.Redis.from_url(self.url, socket_timeout=2)

        def ready() -> bool:
            try:
                return bool(client.ping())  # LOADING while the AOF is replayed
            except (redis.ConnectionError, redis.ResponseError, redis.TimeoutError):
                assert self.proc is not None and self.proc.poll() is None, self.log()
                return False

        if not wait_until(ready, timeout_s, step=0.05):
            raise TimeoutError(f"redis-server on {self.port} did not answer:\n{self.log()}")
        client.close()

    def shutdown(self) -> None:
        """SHUTDOWN: the AOF is flushed and fsynced, nothing more is accepted."""
        import redis

        with redis.Redis.from_url(self.url) as client, contextlib.suppress(redis.ConnectionError):
            client.shutdown()  # redis-py itself swallows the expected dropped connection
        assert self.proc is not None
        self.proc.wait(30)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)

    def stop(self) -> None:
        terminate(self.proc)

    def log(self) -> str:
        path = self.folder / "redis.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

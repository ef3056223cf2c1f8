"""A private redis-server on a loopback port, persisted as docker-compose.yml persists Redis."""

from __future__ import annotations

import contextlib
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path


def wait_until(check: Callable[[], bool], timeout_s: float, step: float = 0.25) -> bool:
    """Poll `check` until it is true (True) or `timeout_s` passes (False)."""
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(step)
    return True


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
        argv += ["--appendonly", "yes", "--appendfsync", "everysec", "--save", ""]
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
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def log(self) -> str:
        path = self.folder / "redis.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])

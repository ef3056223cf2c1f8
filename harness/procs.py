"""Real crackq processes (Celery workers, Flower, servers) started as subprocesses, and waiting."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
READY = r"ready\."


class Proc:
    """A subprocess logging to a file, stopped with SIGTERM (then SIGKILL) on exit."""

    def __init__(self, argv: list[str], log_path: Path, env: dict[str, str] | None = None) -> None:
        self.argv = argv
        self.log_path = log_path
        self.env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Proc:
        self.log_file = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            self.argv,
            cwd=ROOT,
            env=self.env,
            stdout=self.log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def wait_for_log(self, pattern: str, timeout: float) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            match = re.search(pattern, self.log())
            if match:
                return match
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(
                    f"process exited ({self.proc.returncode}):\n{self.log()[-4000:]}"
                )
            time.sleep(0.2)
        raise TimeoutError(f"{pattern!r} not in log after {timeout} s:\n{self.log()[-4000:]}")

    def kill(self) -> None:
        """SIGKILL the whole process group, as a crash would."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self, timeout: float = 30) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        self.log_file.close()


def worker(
    tmp: Path,
    name: str,
    queue: str = "inference",
    env: dict[str, str] | None = None,
    extra: list[str] | None = None,
) -> Proc:
    """`crackq worker` for `queue`, named `name@localhost`, logging to tmp/name.log."""
    argv = [sys.executable, "-m", "worker.cli", "worker", "-Q", queue]
    argv += ["-n", f"{name}@localhost", "-l", "INFO", *(extra or [])]
    return Proc(argv, tmp / f"{name}.log", env)


def terminate(proc: subprocess.Popen[bytes] | None, grace_s: float = 30) -> None:
    """SIGTERM `proc` if it runs, SIGKILL it after `grace_s`; reaped either way."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(grace_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


def wait_until(check: Callable[[], bool], timeout_s: float, step: float = 0.25) -> bool:
    """Poll `check` until it is true (True) or `timeout_s` passes (False)."""
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(step)
    return True


def free_port() -> int:
    """A loopback TCP port nobody listens on right now, for a server of our own."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def console(tmp: Path, port: int, env: dict[str, str] | None = None) -> Proc:
    """`crackq ui` on 127.0.0.1:`port`, logging to tmp/console.log; wait for CONSOLE_READY."""
    argv = [sys.executable, "-m", "worker.cli", "ui", "--address", "127.0.0.1"]
    return Proc([*argv, "--port", str(port)], tmp / "console.log", env)


CONSOLE_READY = r"console on http://"


def listening(port: int, host: str = "127.0.0.1") -> bool:
    """Whether something accepts TCP connections on host:port (a server that bound)."""
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False

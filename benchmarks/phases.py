"""CPU milliseconds per photo by phase of the worker, from py-spy samples of its threads.

`Sampler` records the worker's Python stacks (py-spy, `--nonblocking`, idle threads left
out) while a benchmark runs; `split` files each sample under the first phase in `PHASES`
one of its frames names (`idle` when its innermost frame waits, `other` when none), so a Redis client built inside an ack counts as `redis_client`,
not `ack`. Samples at `rate` per second and thread are CPU time to within the sampling
error: a thread waiting for the GIL or a socket sleeps and is not sampled. OpenVINO's
own threads are not Python threads; the `model` phase is the Python thread calling it.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

# (phase, substrings of a frame `function (path:line)`), most specific first
PHASES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("redis_client", ("Redis.__init__ (redis/client.py",)),
    ("model", ("openvino_backend.py", "models/serving.py", "openvino/")),
    ("lookup", ("unfinished (worker/pipeline.py",)),
    ("write", ("write_rows (worker/pipeline.py",)),
    ("stack", ("stack (numpy/",)),
    ("resize", ("EvalPreset.__call__",)),
    ("decode", ("finish_decode (", "open_image (")),
    ("read", ("read_bytes (",)),
    ("events", ("celery/events/",)),
    ("ack", ("QoS.ack (", "QoS.reject (", "acknowledge (")),
    ("unacked", ("QoS.append (",)),
    ("upkeep", ("worker/upkeep.py",)),
    ("rows", ("predict_rows (", "log_job (", "observe_batch (")),
    (
        "parse",
        (
            "worker/batcher.py",
            "worker/messages.py",
            "celery/worker/request.py",
            "kombu/message.py",
            "kombu/serialization.py",
            "classify_task.py",
        ),
    ),  # fmt: skip
    ("receive", ("kombu/transport/", "kombu/asynchronous/", "celery/worker/loops.py")),
)


def py_spy() -> str | None:
    beside = Path(sys.executable).parent / "py-spy"
    return str(beside) if beside.exists() else shutil.which("py-spy")


class Sampler:
    """py-spy recording `pid` from `start()` until `stop()`; raw folded stacks in `out`."""

    def __init__(self, pid: int, out: Path, rate: int = 100) -> None:
        self.pid, self.out, self.rate = pid, out, rate
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        exe = py_spy()
        if exe is None:
            raise RuntimeError("py-spy not found: pip install py-spy (the dev extra)")
        argv = [exe, "record", "--pid", str(self.pid), "--rate", str(self.rate)]
        argv += ["--format", "raw", "--nonblocking", "--output", str(self.out)]
        log = self.out.with_suffix(".log").open("wb")
        self._proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)

    def stop(self) -> None:
        if self._proc is None:
            return
        self._proc.send_signal(signal.SIGINT)  # py-spy writes its file on Ctrl-C
        try:
            self._proc.wait(60)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait(10)


# Innermost frames that wait (py-spy's --nonblocking sampling reads some sleeping threads
# as running): the event loop's poll, pool threads waiting for work, condition waits.
IDLE_LEAVES = (
    "_epoll.poll (",
    ".select (",
    "Condition.wait (",
    "Event.wait (",
    "_worker (concurrent",
)


def phase_of(stack: str) -> str:
    leaf = stack.rsplit(";", 1)[-1]
    if any(mark in leaf for mark in IDLE_LEAVES):
        return "idle"
    for phase, marks in PHASES:
        if any(mark in stack for mark in marks):
            return phase
    return "other"


def split(raw: Path, images: int, rate: int = 100, cpu_ms: float | None = None) -> dict[str, Any]:
    """Sampled ms per image by phase from py-spy's raw output, and the total outside the model.

    On a busy host a runnable thread waiting for a core is sampled as running, so the
    sampled milliseconds exceed CPU time; with `cpu_ms` (the worker's measured CPU ms per
    image) each phase's share of the non-idle samples is also given as CPU ms per image.
    """
    samples: Counter[str] = Counter()
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            samples[phase_of(stack)] += int(count)
    per_image = 1000.0 / rate / max(images, 1)
    ms = {name: round(n * per_image, 3) for name, n in samples.most_common()}
    out: dict[str, Any] = {
        "sampled_ms_per_image": ms,
        "sampled_outside_model_ms_per_image": round(
            sum(v for k, v in ms.items() if k not in ("model", "idle")), 3
        ),
    }
    busy = sum(n for k, n in samples.items() if k != "idle")
    if cpu_ms is not None and busy:
        scaled = {k: round(cpu_ms * n / busy, 3) for k, n in samples.most_common() if k != "idle"}
        out["cpu_ms_per_image"] = scaled
        out["cpu_outside_model_ms_per_image"] = round(
            sum(v for k, v in scaled.items() if k != "model"), 3
        )
    return {**out, "samples": sum(samples.values()), "rate_hz": rate}

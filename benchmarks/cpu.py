"""CPU time spent by the worker and by the services it talks to, read from /proc.

On a 2-core machine every millisecond the broker, the database or the message path
spends is a millisecond the model does not get; CPU milliseconds per image show where
they go, whatever the machine's speed.
"""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK")
SERVICES = {"redis-server": "redis", "postgres": "postgres"}


def _stat(pid: int) -> tuple[str, list[str]] | None:
    """(command name, the fields after it) of /proc/<pid>/stat; None if it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    name = raw[raw.index("(") + 1 : raw.rindex(")")]
    return name, raw[raw.rindex(")") + 2 :].split()


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of `pid`, all its threads together."""
    found = _stat(pid)
    if found is None:
        return 0.0
    fields = found[1]  # fields[11] is utime, [12] stime (stat fields 14 and 15)
    return (int(fields[11]) + int(fields[12])) / TICK


def services_cpu_s() -> dict[str, float]:
    """CPU seconds of every Redis and PostgreSQL server process on this host.

    Backends that already exited are counted through their parent's cutime/cstime, so a
    difference of two readings covers short-lived connections too.
    """
    totals = dict.fromkeys(SERVICES.values(), 0.0)
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        found = _stat(int(entry))
        if found is None:
            continue
        name, fields = found
        service = next((v for k, v in SERVICES.items() if name.startswith(k)), None)
        if service is not None:
            totals[service] += sum(int(f) for f in fields[11:15]) / TICK
    return totals


@dataclass
class CpuMeter:
    """CPU seconds used by one worker process and the services between two readings."""

    worker_pid: int

    def __post_init__(self) -> None:
        self._start = self._read()

    def _read(self) -> dict[str, float]:
        return {"worker": process_cpu_s(self.worker_pid), **services_cpu_s()}

    def ms_per_image(self, images: int) -> dict[str, float]:
        """CPU milliseconds per image since this meter was made, by process and in total."""
        end = self._read()
        used = {k: end[k] - self._start[k] for k in end}
        out = {k: round(1000.0 * v / max(images, 1), 2) for k, v in used.items()}
        out["total"] = round(sum(out.values()), 2)
        return out


def cpu_model() -> str:
    """The CPU's model name, as /proc/cpuinfo gives it (figures depend on the host)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()

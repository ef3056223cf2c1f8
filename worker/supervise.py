"""The per-GPU launcher's parent: start one child per launch, relay signals, report the worst exit.

`crackq worker` with several GPUs runs one Celery worker per GPU as children of this
process. A signal sent to the parent (SIGTERM from `docker stop` or systemd, Ctrl-C, SIGQUIT
for a cold shutdown) is sent on to every live child, so each drains its batch and exits as
a single worker would; the parent exits when all of them have.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
from collections.abc import Sequence
from types import FrameType

from worker.launch import Launch

log = logging.getLogger(__name__)

RELAYED = (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT, signal.SIGHUP)


def exit_code(returncode: int) -> int:
    """A child's return code as a shell reports it (killed by signal N: 128 + N)."""
    return 128 - returncode if returncode < 0 else returncode


def supervise(launches: Sequence[Launch]) -> int:
    """Run every launch as a child until all have exited; the worst exit code (0: all clean)."""
    procs: list[subprocess.Popen[bytes]] = []
    received: list[int] = []  # a child started after a signal gets it too

    def relay(signum: int, _frame: FrameType | None) -> None:
        received.append(signum)
        log.info("relaying %s to %d workers", signal.Signals(signum).name, len(procs))
        for p in procs:
            if p.poll() is None:
                p.send_signal(signum)

    previous = {s: signal.signal(s, relay) for s in RELAYED}
    try:
        for each in launches:
            procs.append(subprocess.Popen(each.argv, env={**os.environ, **each.env}))
            for signum in received:
                procs[-1].send_signal(signum)
        codes = []
        for p in procs:
            codes.append(exit_code(p.wait()))
            if codes[-1]:
                log.error("worker pid %d exited with %d", p.pid, codes[-1])
        return max(codes, default=0)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)

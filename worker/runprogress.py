"""A training run's progress to its row and Flower, and its cancel flag."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from db import runs

Report = Callable[[dict[str, Any]], None]


class RunTracker:
    """fine_tune's progress and should_stop callbacks for one run; batch steps and cancel
    checks throttled to a second, every other event written."""

    def __init__(self, run_id: str, sessions: sessionmaker[Session], report: Report) -> None:
        self.run_id, self.sessions, self.report = run_id, sessions, report
        self.last: dict[str, Any] = {}
        self._saved = self._checked = 0.0
        self._cancel = False

    def progress(self, info: dict[str, Any]) -> None:
        self.last = {k: v for k, v in info.items() if k != "bad"}
        now = time.monotonic()
        # only per-batch steps are throttled: an epoch end carries the validation metrics,
        # and a step of the run (shift_check, int8) may start within a second of it
        if info.get("event") != "step" or now - self._saved >= 1.0:
            self._saved = now
            with self.sessions() as session, session.begin():
                runs.update_run(
                    session, self.run_id, progress=json.loads(json.dumps(self.last, default=str))
                )
            self.report(self.last)

    def should_stop(self) -> bool:
        now = time.monotonic()
        if now - self._checked >= 1.0:
            self._checked = now
            with self.sessions() as session:
                self._cancel = runs.cancel_requested(session, self.run_id)
        return self._cancel

"""A training run's progress to its row and Flower, and its cancel flag, at most once a second."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from db import runs

Report = Callable[[dict[str, Any]], None]


class RunTracker:
    """fine_tune's progress and should_stop callbacks for one run, throttled to a second."""

    def __init__(self, run_id: str, sessions: sessionmaker[Session], report: Report) -> None:
        self.run_id, self.sessions, self.report = run_id, sessions, report
        self.last: dict[str, Any] = {}
        self._saved = self._checked = 0.0
        self._cancel = False

    def progress(self, info: dict[str, Any]) -> None:
        self.last = {k: v for k, v in info.items() if k != "bad"}
        now = time.monotonic()
        # every epoch end is written: it carries the validation metrics
        if info.get("event") == "epoch" or now - self._saved >= 1.0:
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

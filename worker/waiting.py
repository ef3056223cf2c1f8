"""Waiting, with a progress bar on stderr, for result rows or a training run to finish."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from sqlalchemy.orm import Session, sessionmaker
from tqdm import tqdm

from db import results as results_db
from db import runs
from db.tables import TrainingRun

T = TypeVar("T")
FINAL = ("succeeded", "failed", "cancelled")


def wait_rows(
    sessions: sessionmaker[Session],
    ids: Sequence[str],
    timeout: float,
    progress: bool = True,
) -> dict[str, int]:
    """Poll until every id has a final row (or `timeout`); returns the status counts."""
    # disable=None: a bar on a terminal only, so redirected output stays clean
    bar = _bar(total=len(ids), unit="img", disable=None if progress else True)

    def step() -> tuple[dict[str, int], bool]:
        with sessions() as session:
            counts = results_db.status_counts(session, ids)
        done = counts.get("succeeded", 0) + counts.get("failed", 0)
        bar.update(done - bar.n)
        bar.set_postfix(failed=counts.get("failed", 0), refresh=False)
        return counts, done >= len(ids)

    return _poll(bar, step, timeout, interval=0.25)


def wait_run(
    sessions: sessionmaker[Session], run_id: str, timeout: float = 24 * 3600
) -> TrainingRun:
    """Show a live progress bar (epoch, step, loss, images/s) until the run ends."""
    bar = _bar(total=1, unit="step", desc="queued", disable=None)

    def step() -> tuple[TrainingRun, bool]:
        with sessions() as session:
            run = runs.get_run(session, run_id)
        p = run.progress or {}
        if p.get("steps"):
            total = int(p["steps"]) * int(p.get("epochs", 1))
            done = (int(p.get("epoch", 1)) - 1) * int(p["steps"]) + int(p.get("step", 0))
            bar.total = total
            bar.n = min(done, total)
            bar.set_description(f"epoch {p.get('epoch')}/{p.get('epochs')}")
            bar.set_postfix(
                loss=f"{p.get('loss', 0):.4f}",
                img_s=f"{p.get('images_per_s', 0):.1f}",
                refresh=False,
            )
            bar.refresh()
        elif run.status == "running":
            bar.set_description("preparing data")
        return run, run.status in FINAL

    return _poll(bar, step, timeout, interval=0.5)


def _bar(**kwargs: Any) -> tqdm:
    return tqdm(file=sys.stderr, dynamic_ncols=True, **kwargs)


def _poll(bar: tqdm, step: Callable[[], tuple[T, bool]], timeout: float, interval: float) -> T:
    """Call `step` every `interval` s until it says done or `timeout` passes; its last value."""
    deadline = time.monotonic() + timeout
    try:
        while True:
            value, done = step()
            if done or time.monotonic() > deadline:
                return value
            time.sleep(interval)
    finally:
        bar.close()

"""`crackq rescore`: stored rows back through the queue with a chosen version, throttled.

A job (db.rescore, table rescore_jobs) is the rows of a range (created_at in [since,
until), optionally one asset) that are `succeeded` and not answered by the version yet.
Rows go out in id order, a chunk at a time, as `crackq.classify` messages naming the
version (`rescore_version`); the job's cursor moves past each chunk once it is sent, so
the same command run again after a kill goes on from there (a chunk sent just before the
kill may go again: workers skip rows the version already answers). Sending waits while
the inference queue (waiting + unacked, live messages included) holds
`window` messages or more, and keeps under `rate` photos/s: live photos never queue
behind a backlog; the first message goes alone, the rest once it is answered (a worker
loads the version then). Workers answer re-scores after live photos (worker.rescoring).
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from celery import Celery
from sqlalchemy.orm import Session, sessionmaker

from db import rescore as jobs
from db.tables import RescoreJob
from worker.app import CLASSIFY_TASK, INFERENCE_QUEUE


@dataclass(frozen=True)
class Throttle:
    """How hard a re-score may push: messages in the queue at most, photos/s at most."""

    window: int = 16
    rate: float = 0.0  # 0: no limit but the window
    poll_s: float = 0.2  # how often a full queue is looked at again
    drain_s: float = 600.0  # how long to wait for the last answers once all is sent


@dataclass
class Progress:
    """Where a job stands: sent by this run, answered, still to answer."""

    job_id: int
    version: str
    total: int
    remaining: int
    sent: int = 0  # messages sent, this run and runs before it
    sent_now: int = 0  # by this run
    done_at_start: int = 0
    started: float = field(default_factory=time.monotonic)
    resumed: bool = False

    @property
    def scored(self) -> int:
        return max(0, self.total - self.remaining)

    def rate(self) -> float:
        """Rows answered per second by this run."""
        elapsed = time.monotonic() - self.started
        return (self.scored - self.done_at_start) / elapsed if elapsed > 0 else 0.0

    def line(self) -> str:
        rate = self.rate()
        eta = f"{self.remaining / rate:.0f} s" if rate > 0 else "-"
        share = self.scored / self.total if self.total else 1.0
        return (
            f"rescore job {self.job_id} with {self.version}: sent {self.sent}/{self.total}, "
            f"scored {self.scored}/{self.total} ({share:.1%}), {rate:.1f}/s, ETA {eta}"
        )


def job_key(version: str, since: dt.datetime, until: dt.datetime | None, asset: str | None) -> str:
    """The same command names the same job (until as given: none means "when it started")."""
    return f"{version}|{since.isoformat()}|{until.isoformat() if until else ''}|{asset or ''}"


def open_job(
    sessions: sessionmaker[Session],
    version: str,
    since: dt.datetime,
    until: dt.datetime | None,
    asset: str | None,
    by: str,
) -> tuple[RescoreJob, bool]:
    """The running job of this command (resumed), else a new one; committed."""
    with sessions() as session, session.begin():
        end = until or dt.datetime.now(dt.timezone.utc)
        job, resumed = jobs.open_job(
            session,
            key=job_key(version, since, until, asset),
            version=version,
            since=since,
            until=end,
            asset_id=asset,
            by=by,
        )
        session.expunge(job)
    return job, resumed


def run_job(
    app: Celery,
    sessions: sessionmaker[Session],
    job: RescoreJob,
    depth: Callable[[], int],
    throttle: Throttle,
    report: Callable[[Progress], None],
    report_every_s: float = 2.0,
) -> Progress:
    """Send the job's rows, throttled; wait for their answers; mark it done. Progress at the end.

    `depth()` is the inference queue's messages waiting or unacked (worker.metrics).
    """
    with sessions() as session:
        left = jobs.remaining(session, job)
    progress = Progress(job.id, job.model_version, job.total, left, sent=job.sent)
    progress.done_at_start = progress.scored
    last_report = 0.0

    def tell(force: bool = False) -> None:
        nonlocal last_report
        if force or time.monotonic() - last_report >= report_every_s:
            with sessions() as session:
                progress.remaining = jobs.remaining(session, job)
            report(progress)
            last_report = time.monotonic()

    # One message until the first is answered: a worker loads a version when the first
    # re-score names it, and no backlog of re-scores should sit in its prefetch meanwhile.
    warm = False
    while True:
        outstanding = depth()
        warm = warm or (progress.sent_now > 0 and outstanding == 0)
        room = (throttle.window if warm else 1) - outstanding
        if room <= 0:
            tell()
            time.sleep(throttle.poll_s)
            continue
        with sessions() as session, session.begin():
            rows = jobs.next_rows(session, job, room)
            if not rows:
                break
            send(app, rows, job.model_version)  # then the cursor: a kill in between resends
            jobs.advance(session, job.id, rows[-1]["id"], len(rows))
        job.last_id = rows[-1]["id"]
        progress.sent += len(rows)
        progress.sent_now += len(rows)
        if throttle.rate > 0:
            ahead = progress.started + progress.sent_now / throttle.rate - time.monotonic()
            if ahead > 0:
                time.sleep(ahead)
        tell()
    wait_for_answers(sessions, job, depth, throttle, progress, tell)
    with sessions() as session, session.begin():
        jobs.finish(session, job.id)
    tell(force=True)
    return progress


def wait_for_answers(
    sessions: sessionmaker[Session],
    job: RescoreJob,
    depth: Callable[[], int],
    throttle: Throttle,
    progress: Progress,
    tell: Callable[..., None],
) -> None:
    """Until every row is answered, or the queue is empty twice in a row with nothing new
    answered (a photo unreadable now keeps its score), or `drain_s` passes."""
    deadline = time.monotonic() + throttle.drain_s
    before: int | None = None
    while time.monotonic() < deadline:
        with sessions() as session:
            left = jobs.remaining(session, job)
        if left == 0:
            return
        quiet = depth() == 0
        if quiet and before == left:
            return
        before = left if quiet else None
        tell()
        time.sleep(max(throttle.poll_s, 1.0))


def send(app: Celery, rows: Sequence[dict[str, Any]], version: str) -> None:
    """One `crackq.classify` message per stored row, naming the version to answer with."""
    with app.producer_or_acquire() as producer:
        for row in rows:
            kwargs = {
                "image_ref": row["image_ref"],
                "request_id": row["request_id"],
                "rescore_version": version,
            }
            if row.get("mode") in ("patch", "map"):  # answered the way it was live
                kwargs["mode"] = row["mode"]
            app.send_task(
                CLASSIFY_TASK,
                kwargs=kwargs,
                queue=INFERENCE_QUEUE,
                producer=producer,
                task_id=f"{row['request_id']}@{version}"[:255],
                ignore_result=True,
            )

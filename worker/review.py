"""The review queue's rules, run in the transaction that stores a batch's rows; never fails it."""

from __future__ import annotations

import logging
import time
from collections.abc import Collection

from sqlalchemy.orm import Session

from db import reviewrules
from worker import metrics
from worker.jobs import ReviewPolicy

log = logging.getLogger(__name__)


def enter_review(
    session: Session, request_ids: Collection[str], policy: ReviewPolicy | None
) -> dict[str, int]:
    """Put the photos of `request_ids` a rule picks in the review queue (db.reviewrules.enter).

    `session` holds the batch's rows, not yet committed: the entries commit with them,
    inside a savepoint, so an error here (logged, counted in crackq_review_failures_total)
    rolls back the entries only and the rows are stored as if there were no queue.
    """
    if policy is None or not request_ids:
        return {}
    t0 = time.perf_counter()
    try:
        with session.begin_nested():
            entered = reviewrules.enter(
                session,
                request_ids,
                band=policy.band,
                sample_rate=policy.sample_rate,
                sample_per_hour=policy.sample_per_hour,
            )
    except Exception:  # the queue is a side job: a bug or a timeout must not cost rows
        log.exception("review queue: rules failed for a batch of %d rows", len(request_ids))
        metrics.REVIEW_FAILURES.inc()
        return {}
    for reason, n in entered.items():
        metrics.REVIEW_ENTERED.labels(reason).inc(n)
    if entered:
        log.info(
            "review queue: %s entered in %.1f ms",
            ", ".join(f"{n} {reason}" for reason, n in sorted(entered.items())),
            (time.perf_counter() - t0) * 1000.0,
        )
    return entered

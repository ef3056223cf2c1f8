"""The review queue's rules run with a batch's write and can never cost its rows."""

from __future__ import annotations

import logging

import pytest
from sqlalchemy import select

from db.tables import Result, ReviewEntry
from worker import metrics
from worker.jobs import ReviewPolicy
from worker.pipeline import write_rows

pytestmark = pytest.mark.usefixtures("clean_tables")


def rows(*probabilities: float, prefix: str = "r") -> list[dict]:
    return [
        {
            "request_id": f"{prefix}{i}",
            "image_ref": f"/photos/{prefix}{i}.jpg",
            "status": "succeeded",
            "label": "crack" if p >= 0.5 else "no_crack",
            "confidence": max(p, 1 - p),
            "crack_probability": p,
            "mode": "patch",
        }
        for i, p in enumerate(probabilities)
    ]


def test_rules_enter_with_the_rows_and_their_failure_costs_no_row(sessions, caplog) -> None:
    write_rows(rows(0.45, 0.97, 0.02), sessions, ReviewPolicy(sample_rate=0.0))
    with sessions() as s:
        assert {e.request_id: e.reason for e in s.scalars(select(ReviewEntry))} == {
            "r0": "uncertain"
        }
    write_rows(rows(0.45, 0.97, prefix="q"), sessions, None)  # rules off: nothing enters
    with sessions() as s:
        assert s.get(ReviewEntry, "q0") is None

    failures = metrics.REVIEW_FAILURES._value.get()
    broken = ReviewPolicy(band="not a number")  # type: ignore[arg-type]  # PostgreSQL refuses it
    with caplog.at_level(logging.ERROR, logger="worker.review"):
        write_rows(rows(0.45, 0.55, prefix="b"), sessions, broken)
    assert "review queue: rules failed for a batch of 2 rows" in caplog.text
    assert metrics.REVIEW_FAILURES._value.get() == failures + 1
    with sessions() as s:
        stored = s.scalars(select(Result).where(Result.request_id.in_(["b0", "b1"]))).all()
        assert sorted(r.status for r in stored) == ["succeeded", "succeeded"]
        assert s.get(ReviewEntry, "b0") is None

"""The score history and re-score writes in PostgreSQL: live once, re-scores overwrite, jobs."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from sqlalchemy import select

from db import registry, results, scores
from db import rescore as jobs
from db.tables import Result, ResultScore

pytestmark = pytest.mark.usefixtures("clean_tables")

T0 = dt.datetime(2026, 12, 1, 9, 0, tzinfo=dt.timezone.utc)
T1 = T0 + dt.timedelta(seconds=2)


def _outcome(
    rid: str, label: str = "crack", p: float = 0.9, version: str = "v1", **extra: Any
) -> dict[str, Any]:
    row = {
        "request_id": rid,
        "image_ref": f"/p/{rid}.jpg",
        "status": "succeeded",
        "label": label,
        "confidence": p if label == "crack" else 1 - p,
        "crack_probability": p,
        "model_version": version,
        "mode": "patch",
        "submitted_at": T0,
        "started_at": T0,
        "finished_at": T1,
    }
    return {**row, **extra}


def _history(session, rid: str) -> list[tuple[str, str, str]]:
    return [(s.model_version, s.source, s.label) for s in scores.history(session, rid)]


def _stored(session, rid: str) -> tuple[Any, ...]:
    cols = (Result.status, Result.label, Result.model_version, Result.finished_at, Result.tiles)
    return tuple(session.execute(select(*cols).where(Result.request_id == rid)).one())


def _queue(session, *rids: str) -> None:
    results.insert_queued(session, [{"request_id": r, "image_ref": f"/p/{r}.jpg"} for r in rids])


def test_a_live_row_writes_its_history_once_and_a_redelivery_nothing(db_session) -> None:
    _queue(db_session, "a", "b")
    failed = {**_outcome("b"), "status": "failed", "label": None, "error_code": "decode_error"}
    assert results.upsert_outcomes(db_session, [_outcome("a"), failed]) == {"a", "b"}
    assert _history(db_session, "a") == [("v1", "live", "crack")]
    assert _history(db_session, "b") == []  # a failure is no score
    redelivered = _outcome("a", "no_crack", 0.1, "v9")
    assert results.upsert_outcomes(db_session, [redelivered]) == set()
    assert _history(db_session, "a") == [("v1", "live", "crack")]
    assert _stored(db_session, "a")[:3] == ("succeeded", "crack", "v1")


def test_a_rescore_overwrites_the_score_keeps_live_timings_and_both_answers(db_session) -> None:
    _queue(db_session, "a", "q")
    results.upsert_outcomes(db_session, [_outcome("a")])
    later = T1 + dt.timedelta(hours=1)
    mapped = {"mode": "map", "tiles": 4, "crack_tiles": 1, "crack_regions": 0}
    again = _outcome("a", "no_crack", 0.2, "v2", finished_at=later, **mapped)
    changed = scores.rescore_outcomes(db_session, [again, _outcome("q", version="v2")])
    assert changed == {"a"}  # a queued row is not a stored score: left alone
    assert _stored(db_session, "a") == ("succeeded", "no_crack", "v2", T1, 4)
    assert _stored(db_session, "q")[:3] == ("queued", None, None)
    assert _history(db_session, "a") == [("v1", "live", "crack"), ("v2", "rescore", "no_crack")]
    # the same re-score again (a redelivery) changes nothing and adds nothing
    assert scores.rescore_outcomes(db_session, [again]) == set()
    # a re-score that failed (the photo gone) keeps the stored score
    gone = {**_outcome("a", version="v3"), "status": "failed", "label": None}
    assert scores.rescore_outcomes(db_session, [gone]) == set()
    assert _stored(db_session, "a")[:3] == ("succeeded", "no_crack", "v2")
    rows = db_session.scalars(select(ResultScore).where(ResultScore.request_id == "a")).all()
    assert len(rows) == 2 and {r.mode for r in rows} == {"patch", "map"}
    # back to v1: the row takes v1's answer, the history keeps its first (live) v1 row
    assert scores.rescore_outcomes(db_session, [_outcome("a")]) == {"a"}
    assert _history(db_session, "a") == [("v1", "live", "crack"), ("v2", "rescore", "no_crack")]
    assert scores.rescored_ids(db_session, ["a", "q", "none"], "v1") == {"a", "q"}
    assert scores.rescored_ids(db_session, ["a", "q"], "v2") == {"q"}


def _add(session, rid: str, at: dt.datetime, **kw: Any) -> None:
    kw.setdefault("status", "succeeded")
    kw.setdefault("model_version", "v1")
    session.add(Result(request_id=rid, image_ref=f"/p/{rid}.jpg", created_at=at, **kw))
    session.flush()  # ids in this order


def test_a_job_counts_its_rows_moves_its_cursor_and_is_found_again(db_session) -> None:
    for v in ("v1", "v2"):
        registry.register(
            db_session, version=v, checkpoint_uri=f"/c/{v}.pt", sha256="0" * 64, architecture="r"
        )
    for i in range(5):
        _add(db_session, f"r{i}", T0 + dt.timedelta(minutes=i), asset_id="A" if i < 3 else None)
    _add(db_session, "failed", T0, status="failed", model_version=None)
    _add(db_session, "done", T0, model_version="v2")
    _add(db_session, "later", T0 + dt.timedelta(days=1))
    span = {"version": "v2", "since": T0, "until": T0 + dt.timedelta(hours=1), "by": "t"}
    job, resumed = jobs.open_job(db_session, key="k", asset_id=None, **span)
    assert not resumed and job.total == 5 and job.last_id == 0
    first = jobs.next_rows(db_session, job, 2)
    assert [r["request_id"] for r in first] == ["r0", "r1"]
    jobs.advance(db_session, job.id, first[-1]["id"], len(first))
    db_session.expire_all()
    same, resumed = jobs.open_job(db_session, key="k", asset_id=None, **span)
    assert resumed and same.id == job.id and (same.last_id, same.sent) == (first[-1]["id"], 2)
    assert [r["request_id"] for r in jobs.next_rows(db_session, same, 10)] == ["r2", "r3", "r4"]
    assert jobs.remaining(db_session, same) == 5  # sent is not answered
    asset, _ = jobs.open_job(db_session, key="k-A", asset_id="A", **span)
    assert asset.total == 3
    jobs.finish(db_session, job.id)
    db_session.expire_all()
    fresh, resumed = jobs.open_job(db_session, key="k", asset_id=None, **span)
    assert not resumed and fresh.id != job.id
    assert [j.id for j in jobs.recent_jobs(db_session)] == [fresh.id, asset.id, job.id]

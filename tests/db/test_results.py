"""Idempotent bulk writes to the results table."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import func, select

from db import registry, results
from db.tables import Result

pytestmark = pytest.mark.usefixtures("clean_tables")

NOW = dt.datetime(2026, 11, 25, tzinfo=dt.timezone.utc)


def outcome(rid: str, label: str = "crack", status: str = "succeeded") -> dict:
    return {
        "request_id": rid,
        "image_ref": f"/img/{rid}.jpg",
        "status": status,
        "label": label,
        "confidence": 0.9,
        "crack_probability": 0.9,
        "model_version": "v1",
        "finished_at": NOW,
    }


def test_first_final_outcome_wins_and_no_duplicate_rows(db_session) -> None:
    results.write_outcomes(db_session, [outcome("a"), outcome("b")])
    results.write_outcomes(db_session, [outcome("a", label="no_crack"), outcome("b")])
    rows = {r.request_id: r for r in db_session.scalars(select(Result))}
    assert len(rows) == 2
    assert rows["a"].label == "crack"


def test_queued_row_is_completed_in_place(db_session) -> None:
    inserted = results.insert_queued(
        db_session, [{"request_id": "q", "image_ref": "/x.jpg", "submitted_at": NOW}]
    )
    assert inserted == {"q"}
    assert results.insert_queued(db_session, [{"request_id": "q", "image_ref": "/x.jpg"}]) == set()
    assert results.finished_ids(db_session, ["q"]) == set()
    results.write_outcomes(db_session, [outcome("q")])
    row = db_session.scalar(select(Result).where(Result.request_id == "q"))
    assert row.status == "succeeded" and row.submitted_at == NOW
    assert results.finished_ids(db_session, ["q", "zz"]) == {"q"}
    assert db_session.scalar(select(func.count()).select_from(Result)) == 1


def test_bulk_write_of_many_rows_in_one_statement(db_session) -> None:
    n = results.write_outcomes(db_session, [outcome(f"r{i}") for i in range(2000)])
    assert n == 2000
    assert results.status_counts(db_session, [f"r{i}" for i in range(2000)]) == {"succeeded": 2000}


def test_registry_promote_and_rollback(db_session) -> None:
    for v in ("v1", "v2"):
        registry.register(
            db_session,
            version=v,
            checkpoint_uri=f"/c/{v}.pt",
            sha256="0" * 64,
            architecture="resnet50",
        )
    registry.promote(db_session, "v1")
    registry.promote(db_session, "v2")
    assert registry.promoted(db_session).version == "v2"
    assert registry.get(db_session, "v1").status == "retired"
    assert registry.rollback(db_session).version == "v1"
    assert registry.get(db_session, "v2").status == "retired"


def test_copy_keeps_awkward_text_empty_strings_and_nulls_exact(db_session) -> None:
    awkward = 'quote " comma , newline \n tab \t backslash \\N unicode é 裂缝 nul \x00 end'
    failed = {**outcome("odd", status="failed"), "label": None, "confidence": None}
    failed |= {"error_code": "", "error_message": awkward, "batch_size": 7, "decode_ms": 1e-9}
    assert results.write_outcomes(db_session, [failed]) == 1
    row = db_session.scalar(select(Result).where(Result.request_id == "odd"))
    assert row.error_message == awkward.replace("\x00", "\ufffd")
    assert row.error_code == "" and row.label is None and row.confidence is None
    assert row.batch_size == 7 and row.decode_ms == 1e-9 and row.finished_at == NOW


def test_two_writes_in_one_transaction_do_not_see_each_other(db_session) -> None:
    assert results.write_outcomes(db_session, [outcome("t1"), outcome("t2")]) == 2
    assert results.write_outcomes(db_session, [outcome("t3")]) == 1
    assert results.write_outcomes(db_session, [outcome("t4"), outcome("t4")]) == 1
    ids = ["t1", "t2", "t3", "t4"]
    assert results.status_counts(db_session, ids) == {"succeeded": 4}

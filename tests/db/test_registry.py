"""The registry's history: every promotion and rollback recorded; rollback walks back through it."""

from __future__ import annotations

import pytest

from db import registry
from db.registry import RegistryError


def add(session, *versions: str) -> None:
    for v in versions:
        registry.register(
            session, version=v, checkpoint_uri=f"/c/{v}.pt", sha256="0" * 64, architecture="r50"
        )


def test_each_rollback_goes_one_promotion_further_back(db_session) -> None:
    add(db_session, "A", "B", "C")
    for v in ("A", "B", "C"):
        registry.promote(db_session, v, by="ops")
    assert registry.rollback(db_session, by="ops", reason="C is bad").version == "B"
    # the bug this replaces: a second rollback flipped back to C, the version just left
    assert registry.rollback(db_session, by="ops").version == "A"
    with pytest.raises(RegistryError, match="no earlier promoted version"):
        registry.rollback(db_session)
    assert registry.promoted(db_session).version == "A"
    assert {registry.get(db_session, v).status for v in ("B", "C")} == {"retired"}


def test_a_promotion_after_rollbacks_rolls_back_to_where_it_started(db_session) -> None:
    add(db_session, "A", "B", "C", "D")
    for v in ("A", "B", "C"):
        registry.promote(db_session, v)
    registry.rollback(db_session)  # C -> B
    registry.promote(db_session, "D")  # stack A, B, D
    assert registry.rollback(db_session).version == "B"
    assert registry.rollback(db_session).version == "A"
    assert registry.promotion_stack(db_session) == ["A"]


def test_history_records_who_what_why_and_what_came_before(db_session) -> None:
    add(db_session, "A", "B")
    registry.promote(db_session, "A", by="run r1", reason="the first trained model")
    registry.promote(db_session, "B", by="alice", reason="better on site 7")
    registry.rollback(db_session, by="bob", reason="false alarms")
    events = [
        (e.action, e.version, e.previous_version, e.actor, e.reason)
        for e in registry.history(db_session)
    ]
    assert events == [
        ("rollback", "A", "B", "bob", "false alarms"),
        ("promote", "B", "A", "alice", "better on site 7"),
        ("promote", "A", None, "run r1", "the first trained model"),
    ]
    times = [e.at for e in registry.history(db_session)]
    assert times == sorted(times, reverse=True)


def test_a_load_error_is_an_event_and_the_rows_first_error(db_session) -> None:
    add(db_session, "A")
    registry.record_load_error(db_session, "A", "inf-1:42", "CheckpointError: sha256 differs")
    registry.record_load_error(db_session, "A", "inf-2:43", "OSError: gone")
    assert registry.get(db_session, "A").load_error == "CheckpointError: sha256 differs"
    failed = [(e.actor, e.reason) for e in registry.history(db_session)]
    assert failed == [
        ("inf-2:43", "OSError: gone"),
        ("inf-1:42", "CheckpointError: sha256 differs"),
    ]
    # a failed load is history, not a promotion: rolling back ignores it
    assert registry.promotion_stack(db_session) == []

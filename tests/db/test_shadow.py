"""The shadow setting, shadow scores and their comparison with live rows, in PostgreSQL."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from db import registry, shadow
from db.registry import RegistryError
from db.tables import Label, ModelEvent, Result, ShadowScore

pytestmark = pytest.mark.usefixtures("clean_tables")  # no other test's shadow or events


def _versions(session, *names: str) -> None:
    for v in names:
        registry.register(
            session, version=v, checkpoint_uri=f"/c/{v}.pt", sha256="0" * 64, architecture="r50"
        )


def _photo(session, rid: str, live: str, p: float, status: str = "succeeded") -> None:
    session.add(
        Result(
            request_id=rid,
            image_ref=f"/p/{rid}.jpg",
            status=status,
            label=live if status == "succeeded" else None,
            crack_probability=p if status == "succeeded" else None,
            model_version="live" if status == "succeeded" else None,
        )
    )


def test_one_shadow_at_a_time_with_events_and_a_checked_fraction(db_session) -> None:
    _versions(db_session, "live", "s1", "s2")
    assert shadow.active(db_session) is None
    assert shadow.start(db_session, "s1", 0.25, "alice").fraction == 0.25
    replaced = shadow.start(db_session, "s2", 1.0, "bob", "try s2")
    assert (replaced.version, replaced.fraction, replaced.started_by) == ("s2", 1.0, "bob")
    with pytest.raises(ValueError, match="fraction"):
        shadow.start(db_session, "s1", 0.0, "alice")
    with pytest.raises(RegistryError):
        shadow.start(db_session, "nope", 0.5, "alice")
    assert shadow.stop(db_session, "carol", "enough") == "s2"
    assert shadow.active(db_session) is None and shadow.stop(db_session, "carol") is None
    events = db_session.execute(
        select(ModelEvent.action, ModelEvent.version, ModelEvent.previous_version)
        .where(ModelEvent.action.like("shadow%"))
        .order_by(ModelEvent.id)
    ).all()
    assert [tuple(e) for e in events] == [
        ("shadow_on", "s1", None),
        ("shadow_on", "s2", "s1"),
        ("shadow_off", "s2", None),
    ]


def test_a_photo_keeps_its_first_shadow_score(db_session) -> None:
    _versions(db_session, "live", "s1")
    _photo(db_session, "r1", "crack", 0.9)
    db_session.flush()
    first = {"request_id": "r1", "version": "s1", "label": "crack", "crack_probability": 0.8}
    assert shadow.write_scores(db_session, [{**first, "mode": "patch"}]) == 1
    again = {**first, "label": "no_crack", "crack_probability": 0.1, "mode": "patch"}
    assert shadow.write_scores(db_session, [again]) == 0
    row = db_session.scalar(select(ShadowScore))
    assert (row.label, row.crack_probability, row.tiles) == ("crack", 0.8, None)


def test_counts_and_flips_against_live_rows_and_labels(db_session) -> None:
    _versions(db_session, "live", "s1", "other")
    # (live label, shadow label, operator label)
    planted = {
        "a": ("crack", "crack", "crack"),
        "b": ("crack", "no_crack", "no_crack"),  # a flip the shadow gets right
        "c": ("no_crack", "crack", "no_crack"),  # a flip the shadow gets wrong
        "d": ("no_crack", "crack", None),
        "e": ("no_crack", "no_crack", "no_crack"),
    }
    for rid, (live, _, _) in planted.items():
        _photo(db_session, rid, live, 0.9 if live == "crack" else 0.1)
    _photo(db_session, "failed", "crack", 0.0, status="failed")
    db_session.flush()
    for rid, (_, _, truth) in planted.items():
        if truth:
            db_session.add(Label(request_id=rid, label=truth, labelled_by="op"))
    scores = [
        {"request_id": rid, "version": "s1", "label": mine, "mode": "patch",
         "crack_probability": 0.7 if mine == "crack" else 0.3}
        for rid, (_, mine, _) in planted.items()
    ]  # fmt: skip
    scores.append(scores[0] | {"request_id": "failed"})  # a failed live row is not compared
    scores.append(scores[0] | {"version": "other"})  # another version's score is not counted
    shadow.write_scores(db_session, scores)
    c = shadow.counts(db_session, "s1")
    assert (c.shadowed, c.agree, c.to_crack, c.to_no_crack) == (5, 2, 2, 1)
    assert (c.live_crack, c.shadow_crack) == (2, 3)
    assert (c.labelled, c.live_correct, c.shadow_correct) == (4, 3, 3)
    assert c.mean_abs_dp == pytest.approx((0.2 + 0.6 * 3 + 0.2) / 5)
    assert c.live_versions == {"live": 5}
    assert shadow.flips(db_session, "s1", "crack", 10) == ["c", "d"]
    assert shadow.flips(db_session, "s1", "no_crack", 10) == ["b"]
    assert shadow.flips(db_session, "s1", "crack", 1) == ["c"]
    assert shadow.counts(db_session, "nothing").shadowed == 0

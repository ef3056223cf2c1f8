"""The review queue's rules, its sample cap, and a reviewer's answers and undo (db.review)."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select, text

from db import review, reviewrules, runs
from db.tables import CrackRegionRow, Label, Result, ReviewEntry

T0 = dt.datetime(2026, 11, 1, 9, tzinfo=dt.timezone.utc)
RULES = {"band": 0.15, "sample_rate": 0.0, "sample_per_hour": 0}


def photo(session, rid: str, p: float, regions: tuple[float, ...] = (), **kw) -> str:
    """A succeeded row with crack probability `p` (0.5 scale); a map's counted regions."""
    label = "crack" if p >= 0.5 else "no_crack"
    session.add(
        Result(
            request_id=rid, image_ref=f"/photos/{rid}.jpg", status="succeeded", label=label,
            confidence=max(p, 1 - p), crack_probability=p, **kw,
        )
    )  # fmt: skip
    session.flush()
    for i, q in enumerate(regions):
        session.add(
            CrackRegionRow(
                request_id=rid, region=i, x0=0, y0=0, x1=64, y1=64, tiles=2, max_probability=q
            )
        )
    session.flush()
    return rid


def reasons(session) -> dict[str, str]:
    return {e.request_id: e.reason for e in session.scalars(select(ReviewEntry))}


def test_each_rule_picks_its_photos_once(db_session) -> None:
    s = db_session
    ids = [
        photo(s, "unsure", 0.40),
        photo(s, "edge", 0.66),  # just outside 0.5 +- 0.15
        photo(s, "sure", 0.95),
        photo(s, "weak-map", 0.95, (0.95, 0.60), mode="map", crack_tiles=4, crack_regions=2),
        photo(s, "stray-map", 0.4999, mode="map", crack_tiles=1, crack_regions=0),
        photo(s, "strong-map", 0.97, (0.97,), mode="map", crack_tiles=3, crack_regions=1),
        # wall: clean, then a crack a month later (and a clean photo of that same visit)
        photo(s, "wall-1", 0.10, asset_id="wall", inspection_id="w1", captured_at=T0),
        photo(s, "wall-2", 0.90, asset_id="wall", inspection_id="w2", captured_at=T0 + dt.timedelta(days=30)),
        photo(s, "wall-2b", 0.10, asset_id="wall", inspection_id="w2", captured_at=T0 + dt.timedelta(days=30)),
        # pier: a crack, then a visit with none (its photo has no inspection id: a visit alone)
        photo(s, "pier-1", 0.90, asset_id="pier", inspection_id="p1", captured_at=T0),
        photo(s, "pier-2", 0.10, asset_id="pier", captured_at=T0 + dt.timedelta(days=9)),
        photo(s, "lone", 0.95, asset_id="new-asset", captured_at=T0),  # no earlier visit
    ]  # fmt: skip
    s.add(Result(request_id="failed", image_ref="/photos/x.jpg", status="failed"))
    s.flush()

    entered = reviewrules.enter(s, [*ids, "failed", "unknown"], **RULES)

    expected = {
        "unsure": "uncertain",
        "weak-map": "borderline_map",
        "stray-map": "borderline_map",  # a map rule before the probability's (0.4999)
        "wall-2": "asset_changed",
        "pier-2": "asset_changed",
    }
    assert reasons(s) == expected
    assert entered == {"uncertain": 1, "borderline_map": 2, "asset_changed": 2}
    assert reviewrules.enter(s, ids, **RULES) == {}  # a redelivered batch enters nothing twice
    # band 0: no photo is uncertain or borderline
    photo(s, "coin", 0.5, (0.5,), mode="map", crack_tiles=2, crack_regions=1)
    assert reviewrules.enter(s, ["coin"], band=0.0, sample_rate=0.0, sample_per_hour=0) == {}


def test_the_sample_cap_holds_per_hour(db_session) -> None:
    s = db_session
    ids = [photo(s, f"sure-{i}", 0.97 if i % 2 else 0.03) for i in range(10)]
    drawn = {"band": 0.15, "sample_rate": 1.0, "sample_per_hour": 4}
    assert reviewrules.enter(s, ids[:6], **drawn) == {"sample": 4}
    assert reviewrules.enter(s, ids[6:], **drawn) == {}  # this hour's 4 are taken
    assert reviewrules.enter(s, ids[6:], **{**drawn, "sample_rate": 0.0}) == {}
    s.execute(text("UPDATE review_queue SET entered_at = now() - interval '61 minutes'"))
    assert reviewrules.enter(s, ids[6:], **drawn) == {"sample": 4}  # an hour later: room again
    assert set(reasons(s).values()) == {"sample"} and len(reasons(s)) == 8


def test_an_answer_is_a_label_with_who_and_when_and_undo_reopens(db_session) -> None:
    s = db_session
    for rid in ("a", "b", "c"):
        photo(s, rid, 0.45)
    assert reviewrules.enter(s, ["a", "b", "c"], **RULES) == {"uncertain": 3}
    assert [e["request_id"] for e in review.open_entries(s)] == ["a", "b", "c"]

    entry = review.answer(s, "a", "crack", "alice")
    label = s.scalars(select(Label).where(Label.request_id == "a")).one()
    assert (label.label, label.labelled_by) == ("crack", "alice")
    assert (entry.state, entry.answer, entry.decided_by) == ("labelled", "crack", "alice")
    assert entry.decided_at == label.labelled_at
    review.answer(s, "b", "skip", "bob")
    assert s.scalars(select(Label).where(Label.request_id == "b")).first() is None
    assert [e["request_id"] for e in review.open_entries(s)] == ["c"]
    assert review.queue_counts(s) == {
        "open": {"uncertain": 1},
        "labelled": {"uncertain": 1},
        "skipped": {"uncertain": 1},
    }
    assert review.label_counts(s) == {"crack": 1, "no_crack": 0, "from_review": 1}
    assert review.reviewed_refs(s) == {"/photos/a.jpg"}

    with pytest.raises(ValueError, match="already labelled by alice"):
        review.answer(s, "a", "no_crack", "carol")
    with pytest.raises(LookupError):
        review.answer(s, "nobody", "crack", "alice")
    with pytest.raises(ValueError, match="answer must be one of"):
        review.answer(s, "c", "maybe", "alice")
    with pytest.raises(ValueError, match="is open"):
        review.undo(s, "c")

    review.undo(s, "a")
    assert s.scalars(select(Label).where(Label.request_id == "a")).first() is None
    review.undo(s, "b")
    assert len(review.open_entries(s)) == 3
    assert review.label_counts(s) == {"crack": 0, "no_crack": 0, "from_review": 0}

    # an operator who relabels after the answer keeps their label through an undo
    review.answer(s, "c", "crack", "alice")
    runs.set_label(s, "c", "no_crack", "dave")
    assert review.label_counts(s)["from_review"] == 0  # no longer the review's answer
    review.undo(s, "c")
    kept = s.scalars(select(Label).where(Label.request_id == "c")).one()
    assert (kept.label, kept.labelled_by) == ("no_crack", "dave")

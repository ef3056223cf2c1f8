"""Promotion gates against planted shadow scores and operator labels (real PostgreSQL)."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from db import registry, shadow
from db.tables import Label, ModelEvent, Result
from worker import gates
from worker.gates import GateRefused, Gates
from worker.shadowreport import compare, render

pytestmark = pytest.mark.usefixtures("clean_tables")  # no other test's shadow or events


@pytest.fixture
def planted(db_session):
    """live promoted; cand shadowed on 4 photos: 1 flip, 3 labelled (cand gets 1 wrong)."""
    for v in ("live", "cand"):
        registry.register(
            db_session, version=v, checkpoint_uri=f"/c/{v}.pt", sha256="0" * 64, architecture="r"
        )
    registry.promote(db_session, "live", by="test")
    shadow.start(db_session, "cand", 1.0, "test")
    # request id: (live label, shadow label, operator label)
    photos = {
        "p1": ("crack", "crack", "crack"),
        "p2": ("no_crack", "no_crack", "no_crack"),
        "p3": ("no_crack", "crack", "no_crack"),
        "p4": ("crack", "crack", None),
    }
    for rid, (live, _, _) in photos.items():
        db_session.add(
            Result(
                request_id=rid, image_ref=f"/{rid}.jpg", status="succeeded", label=live,
                crack_probability=0.9 if live == "crack" else 0.1, model_version="live",
            )
        )  # fmt: skip
    db_session.flush()
    for rid, (_, _, truth) in photos.items():
        if truth:
            db_session.add(Label(request_id=rid, label=truth, labelled_by="op"))
    shadow.write_scores(
        db_session,
        [
            {"request_id": rid, "version": "cand", "label": mine, "mode": "patch",
             "crack_probability": 0.8 if mine == "crack" else 0.2}
            for rid, (_, mine, _) in photos.items()
        ],
    )  # fmt: skip
    return db_session


def test_no_gates_by_default_and_none_for_a_first_promotion(db_session) -> None:
    assert not Gates().active
    registry.register(
        db_session, version="first", checkpoint_uri="/c", sha256="0" * 64, architecture="r"
    )
    strict = Gates(min_shadowed=10, max_flip_rate=0.0, labelled_accuracy=True)
    assert gates.check(db_session, "first", strict) == []  # nothing promoted to compare with


def test_each_gate_refuses_with_its_figures(planted) -> None:
    assert gates.check(planted, "cand", Gates(min_shadowed=4, max_flip_rate=0.25)) == []
    failed = gates.check(
        planted, "cand", Gates(min_shadowed=5, max_flip_rate=0.2, labelled_accuracy=True)
    )
    assert failed == [
        "4 shadowed photos, at least 5 required (CRACKQ_PROMOTE_MIN_SHADOWED)",
        "flip rate 0.2500 (1 of 4) above 0.2 (CRACKQ_PROMOTE_MAX_FLIP_RATE)",
        "accuracy on 3 labelled photos 0.6667 below live 1.0000 "
        "(CRACKQ_PROMOTE_REQUIRE_LABELLED_ACCURACY)",
    ]
    with pytest.raises(GateRefused, match="accuracy on 3 labelled photos 0.6667 below live"):
        gates.promote(planted, "cand", Gates(labelled_accuracy=True), by="bob")
    assert registry.promoted(planted).version == "live"


def test_force_needs_a_reason_is_recorded_and_ends_the_shadow(planted) -> None:
    strict = Gates(labelled_accuracy=True)
    with pytest.raises(ValueError, match="--force needs --reason"):
        gates.promote(planted, "cand", strict, by="bob", force=True)
    gates.promote(planted, "cand", strict, by="bob", reason="hotfix", force=True)
    assert registry.promoted(planted).version == "cand" and shadow.active(planted) is None
    events = planted.scalars(select(ModelEvent).order_by(ModelEvent.id.desc()).limit(2)).all()
    assert [(e.action, e.actor) for e in events] == [("shadow_off", "bob"), ("promote", "bob")]
    assert events[1].reason == (
        "FORCED past promotion gates (accuracy on 3 labelled photos 0.6667 below live 1.0000 "
        "(CRACKQ_PROMOTE_REQUIRE_LABELLED_ACCURACY)): hotfix"
    )


def test_the_comparison_report(planted) -> None:
    report = compare(planted, "cand", flip_ids=10)
    assert report["shadowing"] and report["fraction"] == 1.0 and report["shadowed"] == 4
    assert (report["agreement"], report["flip_rate"]) == (0.75, 0.25)
    assert report["flips"] == {
        "to_crack": {"count": 1, "request_ids": ["p3"]},
        "to_no_crack": {"count": 0, "request_ids": []},
    }
    assert report["crack_rate"] == {"live": 0.5, "shadow": 0.75, "change": 0.25}
    assert report["labelled"] == {
        "rows": 3, "live_correct": 3, "shadow_correct": 2,
        "live_accuracy": 1.0, "shadow_accuracy": 0.666667, "change": -0.333333,
    }  # fmt: skip
    text = render(report)
    assert "flip rate           25.00%" in text and "no_crack -> crack: p3" in text


@pytest.mark.slow
def test_a_fine_tuning_run_does_not_promote_itself_past_the_gates(
    sessions, tmp_path, synthetic_root
) -> None:
    import dataclasses

    from harness.colour_model import register_colour_models
    from tests.worker.finetuning import RECIPE, run
    from worker.settings import Settings
    from worker.trainingdata import DataSpec

    # The promoted model calls only red photos cracks: on grey synthetic photos it says
    # no_crack to all (AUC 0.5), which a run of a few epochs beats.
    register_colour_models(sessions, tmp_path, {"red-v0": "red"}, promote="red-v0")
    settings = Settings(data_dir=tmp_path / "state", int8="off", promote_min_shadowed=10)
    recipe = dataclasses.replace(RECIPE, epochs=3)
    outcome, row, _ = run(
        sessions, tmp_path, DataSpec(folders=[str(synthetic_root)]), recipe, settings=settings
    )
    assert outcome["status"] == "succeeded", row.message
    assert "did not beat" not in row.message, row.message  # the gate is what held it
    assert not row.promoted and "held back by promotion gates: 0 shadowed photos" in row.message
    with sessions() as s:
        assert registry.promoted(s).version == "red-v0"

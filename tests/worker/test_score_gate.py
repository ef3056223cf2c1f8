"""The score gate of a finished run: candidate vs the promoted model on the same photos."""

from __future__ import annotations

import pytest

from worker.gates import ScoreGate
from worker.settings import Settings


def _m(auc: float | None, accuracy: float = 0.9, worst: float | None = None) -> dict:
    m: dict = {"auc": auc, "accuracy": accuracy}
    if worst is not None:
        m["groups"] = {"worst_accuracy": worst, "worst": [{"group": "pier-7", "accuracy": worst}]}
    return m


def test_a_tie_promotes_with_margin_zero_and_a_margin_refuses_it() -> None:
    assert ScoreGate().refusals(_m(0.95), _m(0.95)) == []
    # float noise of the same AUC computed twice is a tie, not a loss
    assert ScoreGate().refusals(_m(0.95 - 1e-12), _m(0.95)) == []
    refused = ScoreGate(auc_margin=0.01).refusals(_m(0.95), _m(0.95))
    assert len(refused) == 1 and "CRACKQ_PROMOTE_AUC_MARGIN" in refused[0]
    assert "auc 0.9500 below the promoted model's 0.9500 + margin 0.01" in refused[0]
    assert ScoreGate(auc_margin=0.01).refusals(_m(0.961), _m(0.95)) == []


def test_a_lower_auc_is_refused_unless_a_negative_margin_tolerates_it() -> None:
    assert ScoreGate().refusals(_m(0.949), _m(0.95)) != []
    assert ScoreGate(auc_margin=-0.005).refusals(_m(0.949), _m(0.95)) == []
    assert ScoreGate(auc_margin=-0.005).refusals(_m(0.94), _m(0.95)) != []


def test_accuracy_decides_when_an_auc_is_undefined() -> None:
    assert ScoreGate().refusals(_m(None, 0.8), _m(None, 0.9)) != []
    assert ScoreGate().refusals(_m(None, 0.9), _m(0.99, 0.9)) == []
    assert "accuracy" in ScoreGate(auc_margin=0.05).refusals(_m(None, 0.9), _m(None, 0.9))[0]


def test_the_worst_group_gate_only_with_groups_on_both_sides_and_a_setting() -> None:
    new, old = _m(0.97, worst=0.70), _m(0.95, worst=0.80)
    assert ScoreGate().refusals(new, old) == []  # not set: not checked
    refused = ScoreGate(max_group_drop=0.05).refusals(new, old)
    assert len(refused) == 1 and "pier-7" in refused[0] and "MAX_GROUP_DROP" in refused[0]
    assert ScoreGate(max_group_drop=0.1).refusals(new, old) == []
    assert ScoreGate(max_group_drop=0.0).refusals(new, _m(0.95)) == []  # no groups before


def test_settings_carry_the_margins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRACKQ_PROMOTE_AUC_MARGIN", "0.002")
    monkeypatch.setenv("CRACKQ_PROMOTE_MAX_GROUP_DROP", "0.05")
    assert ScoreGate.from_settings(Settings()) == ScoreGate(0.002, 0.05)
    monkeypatch.delenv("CRACKQ_PROMOTE_AUC_MARGIN")
    monkeypatch.delenv("CRACKQ_PROMOTE_MAX_GROUP_DROP")
    assert ScoreGate.from_settings(Settings()) == ScoreGate(0.0, None)

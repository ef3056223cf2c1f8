"""Per-group figures: hand-computed accuracy and AUC, worst first, groups of one class."""

from __future__ import annotations

import pytest

from models.evaluation import group_metrics


def test_per_group_figures_against_hand_computed_values() -> None:
    groups = ["a", "a", "a", "a", "b", "b", "c", "c", None]
    labels = [1, 1, 0, 0, 1, 1, 0, 1, 1]
    p = [0.9, 0.4, 0.3, 0.6, 0.8, 0.7, 0.2, 0.1, 0.0]
    report = group_metrics(groups, labels, p, threshold=0.5)
    assert report is not None
    by = {r["group"]: r for r in report["worst"]}
    # a: right on 0.9 (crack) and 0.3 (clean), wrong on 0.4 and 0.6; AUC 3 of 4 pairs
    assert by["a"] == {"group": "a", "n": 4, "positives": 2, "accuracy": 0.5, "auc": 0.75}
    assert by["b"] == {"group": "b", "n": 2, "positives": 2, "accuracy": 1.0, "auc": None}
    # c: the crack scores below the clean photo
    assert by["c"]["accuracy"] == 0.5 and by["c"]["auc"] == 0.0
    assert [r["group"] for r in report["worst"]] == ["c", "a", "b"]  # accuracy, then AUC
    assert report["count"] == 3  # the sample without a group is left out
    assert report["worst_accuracy"] == 0.5 and report["worst_auc"] == 0.0
    assert report["mean_accuracy"] == pytest.approx(2 / 3)


def test_keep_caps_the_list_and_no_groups_gives_none() -> None:
    groups = [f"g{i}" for i in range(10)]
    report = group_metrics(groups, [1] * 10, [0.9] * 10, 0.5, keep=3)
    assert report is not None and report["count"] == 10 and len(report["worst"]) == 3
    assert report["worst_auc"] is None
    assert group_metrics([None, None], [0, 1], [0.2, 0.8], 0.5) is None

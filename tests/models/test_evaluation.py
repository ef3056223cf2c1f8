"""Metrics against hand-computed values, and evaluate() over a real loader."""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest
import torch
from torch import nn

from models.evaluation import best_f1_threshold, evaluate, metrics, roc_auc
from models.loop import make_loader
from models.numerics import resolve_numerics
from models.recipe import Recipe
from models.transforms import EvalPreset

Y = [1, 1, 0, 0, 1]
P = [0.9, 0.4, 0.6, 0.1, 0.5]


def test_auc_without_ties() -> None:
    assert roc_auc(np.array([0, 0, 1, 1]), np.array([0.1, 0.4, 0.35, 0.8])) == pytest.approx(0.75)


def test_auc_counts_a_tie_as_half() -> None:
    # pairs (pos, neg): (.5,.5)=1/2, (.5,.2)=1, (.9,.5)=1, (.9,.2)=1 -> 3.5 / 4
    assert roc_auc(np.array([0, 1, 0, 1]), np.array([0.5, 0.5, 0.2, 0.9])) == 0.875


def test_auc_matches_pairwise_counting_with_many_ties() -> None:
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 300)
    s = np.round(rng.random(300) * 0.5 + 0.3 * y, 1)  # coarse scores: lots of ties
    pos, neg = s[y == 1], s[y == 0]
    pairs = [1.0 if a > b else 0.5 if a == b else 0.0 for a, b in itertools.product(pos, neg)]
    assert roc_auc(y, s) == pytest.approx(sum(pairs) / len(pairs), abs=1e-12)


def test_auc_is_none_with_one_class() -> None:
    assert roc_auc(np.array([1, 1]), np.array([0.2, 0.9])) is None


def test_metrics_at_half_by_hand() -> None:
    m = metrics(Y, P)
    # pred at 0.5: [1, 0, 1, 0, 1] -> tp 2, fn 1, fp 1, tn 1
    assert m["confusion"] == [[1, 1], [1, 2]]
    assert m["accuracy"] == pytest.approx(3 / 5)
    assert m["precision"] == pytest.approx(2 / 3)
    assert m["recall"] == pytest.approx(2 / 3)
    assert m["f1"] == pytest.approx(2 / 3)
    expected_loss = -np.mean(np.log([0.9, 0.4, 0.4, 0.9, 0.5]))
    assert m["loss"] == pytest.approx(expected_loss)
    assert m["auc"] == pytest.approx(4 / 6)  # 4 of 6 (pos, neg) pairs ordered right
    assert (m["n"], m["positives"], m["threshold"]) == (5, 3, 0.5)


def test_chosen_threshold_maximises_f1() -> None:
    # Cracks at p >= 0.4 give tp 3, fp 1 (F1 6/7), the best; the cut sits midway to 0.1.
    m = metrics(Y, P)
    assert m["chosen_threshold"] == pytest.approx(0.25)
    assert m["at_chosen"]["confusion"] == [[1, 1], [0, 3]]
    assert m["at_chosen"]["f1"] == pytest.approx(6 / 7)
    assert best_f1_threshold(np.array(Y), np.array(P)) == pytest.approx(0.25)


def test_given_threshold_is_used_for_everything() -> None:
    m = metrics(Y, P, threshold=0.95)
    assert m["threshold"] == m["chosen_threshold"] == 0.95
    assert m["confusion"] == [[2, 0], [3, 0]]
    assert m["f1"] == 0.0


def test_metrics_are_strict_json_even_when_degenerate() -> None:
    m = metrics([1, 1, 1], [0.0, 1.0, 0.7])
    assert m["auc"] is None and math.isfinite(m["loss"])
    json.dumps(m, allow_nan=False)


class _Brightness(nn.Module):
    """Logit for crack grows with mean brightness: a fixed, checkable model."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = x.mean(dim=(1, 2, 3))
        return torch.stack([-m, m], dim=1)


def test_evaluate_drops_bad_images_and_keeps_order(tmp_path, make_image) -> None:
    samples = [
        (make_image(tmp_path / "dark.png", 30), 0),
        (str(tmp_path / "missing.jpg"), 1),
        (make_image(tmp_path / "bright.png", 220), 1),
    ]
    recipe = Recipe(num_workers=0, image_size=32)
    loader = make_loader(samples, EvalPreset(32), 2, False, recipe, False)
    result = evaluate(_Brightness(), loader, resolve_numerics("cpu", "fp32", True))
    assert result.indices.tolist() == [0, 2]
    assert result.labels.tolist() == [0, 1]
    assert result.p_crack[0] < 0.5 < result.p_crack[1]
    assert [b.path for b in result.bad] == [samples[1][0]]

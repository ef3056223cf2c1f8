"""The run's shift check: a per-class sample, clean first, every shift scored, limits kept."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from models.datasets import Sample
from models.imagedata import load_rgb
from models.network import build_model
from models.numerics import resolve_numerics
from models.shiftcheck import pick, shift_check
from models.shifts import SHIFTS

FP32 = resolve_numerics("cpu", "fp32", channels_last=False)


def test_pick_takes_at_most_n_per_class_the_same_way_each_time() -> None:
    samples = [(f"c{i}.jpg", 1) for i in range(10)] + [(f"n{i}.jpg", 0) for i in range(3)]
    picked = pick(samples, 4, seed=7)
    assert sum(1 for _, y in picked if y == 1) == 4
    assert sum(1 for _, y in picked if y == 0) == 3  # all there are
    assert picked == pick(list(reversed(samples)), 4, seed=7)
    assert picked != pick(samples, 4, seed=8) or len(samples) <= 8


def test_every_shift_is_scored_after_clean(synthetic: dict[str, list[Sample]]) -> None:
    torch.manual_seed(0)
    model = build_model().eval()
    samples = pick(synthetic["val"], 4)
    report = shift_check(model, samples, load_rgb, FP32, size=64, threshold=0.5, batch=8)
    assert [r["shift"] for r in report["shifts"]] == ["clean", *SHIFTS]
    assert report["photos"] == 8 and report["per_class"] == {"no_crack": 4, "crack": 4}
    assert all(0.0 <= r["accuracy"] <= 1.0 for r in report["shifts"])
    shifted = [r["accuracy"] for r in report["shifts"][1:]]
    assert report["mean_accuracy"] == pytest.approx(sum(shifted) / len(shifted), abs=1e-4)
    assert report["worst_accuracy"] == min(shifted)
    assert report["clean_accuracy"] == report["shifts"][0]["accuracy"]


def test_unreadable_photos_are_left_out_and_the_check_can_stop(
    synthetic: dict[str, list[Sample]], tmp_path: Path
) -> None:
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not a jpeg")
    samples = [*pick(synthetic["val"], 2), (str(bad), 1)]
    model = build_model().eval()
    shifts = [SHIFTS["blur"]]
    report = shift_check(model, samples, load_rgb, FP32, size=64, threshold=0.5, shifts=shifts)
    assert report["photos"] == 4 and [r["shift"] for r in report["shifts"]] == ["clean", "blur"]

    def stop() -> None:
        raise TimeoutError("deadline")

    with pytest.raises(TimeoutError):
        shift_check(model, samples, load_rgb, FP32, size=64, threshold=0.5, check=stop)
    assert (
        shift_check(model, [(str(bad), 1)], load_rgb, FP32, size=64, threshold=0.5)["photos"] == 0
    )

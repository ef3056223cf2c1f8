"""The fast inference numerics (bf16 + channels_last) agree with fp32 NCHW on real photos."""

from __future__ import annotations

import copy
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from models.classifier import CRACK_INDEX, Classifier, resolve_numerics
from models.datasets import Sample, load_rgb
from models.recipe import Recipe
from models.training import fine_tune
from models.transforms import EvalPreset, normalise, stack
from tests.conftest import real_data_or_skip

pytestmark = [pytest.mark.realdata, pytest.mark.slow]

SIZE = 224
TRAIN_PER_CLASS = 48  # 6 steps of 16: a CPU-sized run that still moves the weights away from init
# Random init, bf16 autocast where native (the real recipe's numerics), no loader processes.
RECIPE = Recipe(
    batch_size=16, epochs=1, image_size=SIZE, init="random", num_workers=0, lr=1e-3, seed=0
)


def _photos(data: Path, first: int, count: int) -> list[Sample]:
    """`count` photos per class from rank `first` in file-number order (Positive = 1)."""
    return [
        (str(path), label)
        for label, folder in ((0, "Negative"), (1, "Positive"))
        for path in sorted((data / folder).glob("*.jpg"))[first : first + count]
    ]


def _p_crack(clf: Classifier, pixels: list[np.ndarray]) -> np.ndarray:
    probs = [clf.predict(normalise(stack(pixels[i : i + 32]))) for i in range(0, len(pixels), 32)]
    return torch.cat(probs)[:, CRACK_INDEX].double().numpy()


def test_bf16_channels_last_matches_fp32_on_200_held_out_photos(tmp_path: Path) -> None:
    data = real_data_or_skip()
    # Held-out photos come from file numbers far from the training ones: the crack patches
    # were cut from few photos, and neighbouring numbers are near-duplicates.
    train, val = _photos(data, 0, TRAIN_PER_CLASS), _photos(data, 3000, 8)
    held_out = _photos(data, 6000, 100)
    started = time.perf_counter()
    result = fine_tune(train, val, RECIPE, out_dir=tmp_path, device="cpu")
    train_s = time.perf_counter() - started
    assert result.init == "random" and result.train_images == len(train)

    preset = EvalPreset(SIZE)
    pixels = [preset(load_rgb(path, SIZE)) for path, _ in held_out]
    fp32 = Classifier(
        copy.deepcopy(result.model), resolve_numerics("cpu", "fp32", False), "fp32", SIZE
    )
    fast = Classifier(
        copy.deepcopy(result.model), resolve_numerics("cpu", "bf16", True), "bf16", SIZE
    )
    assert fast.numerics.dtype == torch.bfloat16 and fast.numerics.channels_last
    p32, p16 = _p_crack(fp32, pixels), _p_crack(fast, pixels)

    # The comparison only means something if the model's outputs vary across photos.
    assert p32.max() - p32.min() > 0.1, f"degenerate model: p_crack in [{p32.min()}, {p32.max()}]"
    agreement = float(np.mean((p32 >= 0.5) == (p16 >= 0.5)))
    mean_abs = float(np.mean(np.abs(p32 - p16)))
    print(
        f"\nparity: trained {len(train)} photos in {train_s:.0f} s; agreement {agreement:.4f}, "
        f"mean |dp| {mean_abs:.5f}, max |dp| {np.abs(p32 - p16).max():.4f}, "
        f"fp32 accuracy {np.mean((p32 >= 0.5) == np.array([lab for _, lab in held_out])):.3f}"
    )
    assert agreement >= 0.995
    assert mean_abs <= 0.01

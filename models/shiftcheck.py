"""A run's robustness check: a sample of its validation photos under each shift of models.shifts."""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from models.datasets import Sample, class_counts
from models.evaluation import autocast, metrics, to_input
from models.imagedata import Loader
from models.network import CRACK_INDEX
from models.numerics import Numerics
from models.shifts import CLEAN, SHIFTS, Shift, rng_for
from models.transforms import EvalPreset, stack


def pick(samples: Sequence[Sample], per_class: int, seed: int = 0) -> list[Sample]:
    """Up to `per_class` samples of each label, drawn with `seed`, in a stable order."""
    picked: list[Sample] = []
    for label in sorted({lab for _, lab in samples}):
        mine = sorted(s for s in samples if s[1] == label)
        picked += sorted(random.Random(seed).sample(mine, min(per_class, len(mine))))
    return picked


def shift_check(
    model: nn.Module,
    samples: Sequence[Sample],
    load: Loader,
    numerics: Numerics,
    *,
    size: int,
    threshold: float,
    batch: int = 32,
    seed: int = 0,
    shifts: Iterable[Shift] | None = None,
    check: Callable[[], None] = lambda: None,
) -> dict[str, Any]:
    """Accuracy, F1 and ROC AUC at `threshold`, clean first, then under each shift.

    Photos are read by `load` as validation reads them, shifted (seeded per photo, as the
    robustness suite does), then resized by the eval preset. `check` runs before every
    batch (a run's deadline and cancel). Unreadable photos are left out of every row.
    """
    started = time.perf_counter()
    images = _readable(samples, load, size)
    if not images:
        return {"photos": 0, "shifts": [], "seconds": round(time.perf_counter() - started, 1)}
    rows = []
    for shift in [CLEAN, *(SHIFTS.values() if shifts is None else shifts)]:
        rows.append(_score(model, images, shift, numerics, size, threshold, batch, seed, check))
    shifted = rows[1:] or rows[:1]
    worst = min(shifted, key=lambda r: r["accuracy"])
    return {
        "photos": len(images),
        "per_class": class_counts([("", y) for _, y in images]),
        "threshold": round(threshold, 4),
        "shifts": rows,
        "clean_accuracy": rows[0]["accuracy"],
        "mean_accuracy": round(float(np.mean([r["accuracy"] for r in shifted])), 4),
        "worst_shift": worst["shift"],
        "worst_accuracy": worst["accuracy"],
        "seconds": round(time.perf_counter() - started, 1),
    }


def _readable(samples: Sequence[Sample], load: Loader, size: int) -> list[tuple[Any, int]]:
    """(decoded image, label) of every sample `load` can read, read once for every shift."""
    images = []
    for ref, label in samples:
        try:
            images.append((load(ref, size), label))
        except Exception:  # noqa: BLE001 - training skips unreadable photos the same way
            continue
    return images


def _score(
    model: nn.Module,
    images: Sequence[tuple[Any, int]],
    shift: Shift,
    numerics: Numerics,
    size: int,
    threshold: float,
    batch: int,
    seed: int,
    check: Callable[[], None],
) -> dict[str, Any]:
    preset = EvalPreset(size)
    probs = []
    model.eval()
    with torch.inference_mode(), autocast(numerics):
        for start in range(0, len(images), batch):
            check()
            pixels = [
                preset(shift(img, rng_for(seed, shift.name, i)))
                for i, (img, _) in enumerate(images[start : start + batch], start)
            ]
            logits = model(to_input(stack(pixels), numerics))
            probs.append(torch.softmax(logits.float(), dim=1)[:, CRACK_INDEX].double().cpu())
    labels = np.asarray([y for _, y in images])
    return shift_figures(shift, metrics(labels, torch.cat(probs).numpy(), threshold))


def shift_figures(shift: Shift, m: dict[str, Any]) -> dict[str, Any]:
    """One shift's figures as reports and the robustness suite print them (rounded)."""
    return {
        "shift": shift.name,
        "simulates": shift.simulates,
        "accuracy": round(m["accuracy"], 4),
        "f1": round(m["f1"], 4),
        "auc": None if m["auc"] is None else round(m["auc"], 4),
    }

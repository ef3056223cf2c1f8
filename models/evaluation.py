"""Validation: crack probabilities for a loader, and metrics computed with numpy alone."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from models.classifier import CRACK_INDEX, Numerics
from models.datasets import BadImage, Batch
from models.transforms import normalise

EPS = 1e-7  # clip probabilities so one confident mistake gives a large, finite loss


@dataclass
class EvalResult:
    """Per-sample crack probabilities and labels; `indices` point into the dataset's samples."""

    p_crack: np.ndarray
    labels: np.ndarray
    indices: np.ndarray
    bad: list[BadImage] = field(default_factory=list)


def to_input(images: torch.Tensor, numerics: Numerics) -> torch.Tensor:
    """uint8 NHWC batch -> normalised float NCHW on the device, channels_last if asked."""
    x = normalise(images.to(numerics.device, non_blocking=True))
    memory = torch.channels_last if numerics.channels_last else torch.contiguous_format
    return x.contiguous(memory_format=memory)


def autocast(numerics: Numerics) -> torch.autocast:
    """Mixed precision for numerics.dtype; a no-op context for fp32."""
    low = numerics.dtype != torch.float32
    return torch.autocast(numerics.device.type, dtype=numerics.dtype, enabled=low)


def evaluate(model: nn.Module, loader: Iterable[Batch], numerics: Numerics) -> EvalResult:
    """Run `model` in eval mode over `loader` (batches from collate_skip_bad).

    Weights stay fp32 and autocast supplies numerics.dtype, so this works mid-training.
    """
    was_training = model.training
    model.eval()
    probs, labels, indices, bad = [], [], [], []
    try:
        with torch.inference_mode(), autocast(numerics):
            for batch in loader:
                bad.extend(batch.bad)
                if not len(batch.labels):
                    continue
                logits = model(to_input(batch.images, numerics))
                probs.append(torch.softmax(logits.float(), dim=1)[:, CRACK_INDEX].cpu())
                labels.append(batch.labels)
                indices.append(batch.indices)
    finally:
        model.train(was_training)
    if not probs:
        empty = np.zeros(0)
        return EvalResult(empty, empty.astype(np.int64), empty.astype(np.int64), bad)
    return EvalResult(
        torch.cat(probs).double().numpy(),
        torch.cat(labels).numpy(),
        torch.cat(indices).numpy(),
        bad,
    )


def roc_auc(y_true: np.ndarray, score: np.ndarray) -> float | None:
    """Area under the ROC curve via the Mann-Whitney U statistic; ties count one half.

    None when only one class is present (the AUC is undefined).
    """
    y = np.asarray(y_true).astype(bool)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if not n_pos or not n_neg:
        return None
    ranks = _average_ranks(np.asarray(score, dtype=np.float64))
    u = ranks[y].sum() - n_pos * (n_pos + 1) / 2
    return float(u / (n_pos * n_neg))


def _average_ranks(x: np.ndarray) -> np.ndarray:
    order = np.argsort(x, kind="mergesort")
    sorted_x = x[order]
    # Tied values share the mean of the 1-based ranks their run occupies.
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_x)) + 1]
    ends = np.r_[starts[1:], len(x)]
    mean_rank = (starts + ends + 1) / 2.0
    ranks = np.empty(len(x))
    ranks[order] = np.repeat(mean_rank, ends - starts)
    return ranks


def confusion(y_true: np.ndarray, p_crack: np.ndarray, threshold: float) -> list[list[int]]:
    """[[tn, fp], [fn, tp]] with crack predicted when p_crack >= threshold."""
    y = np.asarray(y_true).astype(bool)
    pred = np.asarray(p_crack) >= threshold
    tp, fp = int((pred & y).sum()), int((pred & ~y).sum())
    fn, tn = int((~pred & y).sum()), int((~pred & ~y).sum())
    return [[tn, fp], [fn, tp]]


def rates(y_true: np.ndarray, p_crack: np.ndarray, threshold: float) -> dict[str, Any]:
    """Accuracy, precision, recall, F1 (crack = positive) and the confusion matrix."""
    (tn, fp), (fn, tp) = confusion(y_true, p_crack, threshold)
    n = tn + fp + fn + tp
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "accuracy": (tp + tn) / n if n else 0.0,
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "confusion": [[tn, fp], [fn, tp]],
    }


def best_f1_threshold(y_true: np.ndarray, p_crack: np.ndarray) -> float:
    """The threshold with the highest crack F1 on these data (ties: the one nearest 0.5).

    Candidates sit midway between consecutive distinct scores, so a new image scoring
    between two validation images is not decided by which side the boundary touched.
    """
    y = np.asarray(y_true).astype(bool)
    p = np.asarray(p_crack, dtype=np.float64)
    if not y.any() or y.all():
        return 0.5
    values = np.unique(p)[::-1]  # descending; predict crack for p >= values[k]
    cuts = np.r_[(values[:-1] + values[1:]) / 2, values[-1] / 2]
    order = np.argsort(-p, kind="mergesort")
    tp_cum, fp_cum = np.cumsum(y[order]), np.cumsum(~y[order])
    # Count of scores >= each distinct value, to read the cumulative sums at run ends.
    upto = np.searchsorted(-p[order], -values, side="right")
    tp, fp = tp_cum[upto - 1], fp_cum[upto - 1]
    f1 = 2 * tp / (tp + fp + y.sum())
    best = np.flatnonzero(np.isclose(f1, f1.max()))
    return float(cuts[best[np.argmin(np.abs(cuts[best] - 0.5))]])


def metrics(y_true: Any, p_crack: Any, threshold: float | None = None) -> dict[str, Any]:
    """Validation metrics as a JSON-friendly dict.

    Headline numbers (accuracy, precision, recall, f1, confusion) use `threshold`, or
    0.5 when none is given. `chosen_threshold` is the given threshold, else the one
    maximising crack F1 on these data (F1 rather than accuracy because cracks are the
    rare class in real inspections); `at_chosen` holds the numbers there. `loss` is the
    mean negative log-likelihood; `auc` is None when one class is absent.
    """
    y = np.asarray(y_true, dtype=np.int64)
    p = np.asarray(p_crack, dtype=np.float64)
    if y.shape != p.shape or y.ndim != 1:
        raise ValueError(f"labels {y.shape} and probabilities {p.shape} must be equal 1-d")
    clipped = np.clip(p, EPS, 1 - EPS)
    loss = -np.mean(np.where(y == 1, np.log(clipped), np.log1p(-clipped))) if len(y) else 0.0
    base = 0.5 if threshold is None else float(threshold)
    chosen = best_f1_threshold(y, p) if threshold is None else float(threshold)
    return {
        "n": len(y),
        "positives": int(y.sum()),
        "loss": float(loss),
        "auc": roc_auc(y, p),
        "threshold": base,
        **rates(y, p, base),
        "chosen_threshold": chosen,
        "at_chosen": rates(y, p, chosen),
    }

"""Validation: crack probabilities for a loader, and the metrics scikit-learn computes."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from sklearn.metrics import confusion_matrix, precision_recall_curve, roc_auc_score
from torch import nn

from models.imagedata import BadImage, Batch
from models.network import CRACK_INDEX
from models.numerics import Numerics
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
    """Area under the ROC curve, ties counting one half; None when one class is absent."""
    y = np.asarray(y_true).astype(bool)
    if y.all() or not y.any():
        return None  # undefined; scikit-learn would raise
    return float(roc_auc_score(y, np.asarray(score, dtype=np.float64)))


def confusion(y_true: np.ndarray, p_crack: np.ndarray, threshold: float) -> list[list[int]]:
    """[[tn, fp], [fn, tp]] with crack predicted when p_crack >= threshold."""
    y = np.asarray(y_true).astype(bool)
    pred = np.asarray(p_crack) >= threshold
    if not len(y):
        return [[0, 0], [0, 0]]  # every image failed to decode; scikit-learn refuses empty input
    # Both labels named, so a set with one class still gives the full 2x2 matrix.
    return confusion_matrix(y, pred, labels=[False, True]).tolist()


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
    precision, recall, scores = precision_recall_curve(y, p)
    # Descending scores, so equally good cuts equally far from 0.5 resolve to the higher one.
    precision, recall, scores = precision[-2::-1], recall[-2::-1], scores[::-1]
    total = precision + recall
    f1 = np.divide(2 * precision * recall, total, out=np.zeros_like(total), where=total > 0)
    values = np.unique(p)
    below = np.r_[0.0, values][np.searchsorted(values, scores)]  # next lower score, or 0
    cuts = (scores + below) / 2
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


def group_metrics(
    groups: Sequence[str | None], y_true: Any, p_crack: Any, threshold: float, keep: int = 100
) -> dict[str, Any] | None:
    """Per-group figures at `threshold`: n, positives, accuracy, AUC (None with one class).

    `worst` lists up to `keep` groups, lowest accuracy first (then lowest AUC); samples
    whose group is None are left out. None when no sample has a group.
    """
    y = np.asarray(y_true, dtype=np.int64)
    p = np.asarray(p_crack, dtype=np.float64)
    members: dict[str, list[int]] = {}
    for i, g in enumerate(groups):
        if g is not None:
            members.setdefault(g, []).append(i)
    if not members:
        return None
    rows: list[dict[str, Any]] = []
    for name, idx in members.items():
        yi, pi = y[idx], p[idx]
        correct = int(((pi >= threshold) == (yi == 1)).sum())
        rows.append(
            {"group": name, "n": len(idx), "positives": int(yi.sum()),
             "accuracy": correct / len(idx), "auc": roc_auc(yi, pi)}
        )  # fmt: skip
    rows.sort(key=lambda r: (r["accuracy"], 2.0 if r["auc"] is None else r["auc"], r["group"]))
    aucs: list[float] = [r["auc"] for r in rows if r["auc"] is not None]
    return {
        "count": len(rows),
        "threshold": float(threshold),
        "worst_accuracy": rows[0]["accuracy"],
        "mean_accuracy": float(np.mean([r["accuracy"] for r in rows])),
        "worst_auc": min(aucs) if aucs else None,
        "worst": rows[:keep],
    }

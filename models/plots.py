"""PNG reports of a training run: loss/AUC curves and a grid of validation predictions."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from models.datasets import Sample
from models.imagedata import load_rgb
from models.network import CLASSES

THUMB = 128


def _save(fig: Figure, path: Path) -> Path:
    # Figure + Agg canvas directly, not pyplot: no global state, safe in worker threads.
    FigureCanvasAgg(fig)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", dpi=100)
    return path


def training_chart(history: Sequence[dict[str, Any]], path: Path) -> Path:
    """Train and validation loss, and validation AUC, per epoch."""
    epochs = [h["epoch"] for h in history]
    fig = Figure(figsize=(9, 3.5), layout="constrained")
    loss_ax, auc_ax = fig.subplots(1, 2)
    loss_ax.plot(epochs, [h["train_loss"] for h in history], "o-", label="train")
    loss_ax.plot(epochs, [h["val"]["loss"] for h in history], "s-", label="validation")
    loss_ax.set(title="loss (cross-entropy)", xlabel="epoch")
    loss_ax.legend()
    aucs = [np.nan if h["val"]["auc"] is None else h["val"]["auc"] for h in history]
    auc_ax.plot(epochs, aucs, "o-", color="tab:green", label="AUC")
    auc_ax.plot(
        epochs, [h["val"]["accuracy"] for h in history], "s--", color="tab:gray", label="accuracy"
    )
    auc_ax.set(title="validation", xlabel="epoch", ylim=(0.0, 1.02))
    auc_ax.legend(loc="lower right")
    for ax in (loss_ax, auc_ax):
        ax.set_xticks(epochs)
        ax.grid(alpha=0.3)
    return _save(fig, path)


def predictions_grid(
    samples: Sequence[Sample],
    p_crack: Sequence[float] | np.ndarray,
    labels: Sequence[int] | np.ndarray,
    path: Path,
    threshold: float = 0.5,
    n: int = 32,
) -> Path:
    """Up to `n` validation photos titled with truth, prediction and confidence.

    Mistakes come first, then the least confident correct ones: the photos worth a look.
    """
    p = np.asarray(p_crack, dtype=np.float64)
    y = np.asarray(labels, dtype=np.int64)
    pred = (p >= threshold).astype(np.int64)
    confidence = np.where(pred == 1, p, 1.0 - p)
    wrong = pred != y
    order = display_order(p, y, threshold)[:n]
    cols = min(8, max(1, len(order)))
    rows = max(1, -(-len(order) // cols))
    fig = Figure(figsize=(cols * 1.6, rows * 1.9 + 0.4), layout="constrained")
    fig.suptitle(f"validation predictions (threshold {threshold:.2f}); mistakes first, in red")
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).ravel()
    for ax in axes:
        ax.axis("off")
    for ax, i in zip(axes, order, strict=False):
        ax.imshow(_thumbnail(samples[i][0]))
        ax.set_title(
            f"true {CLASSES[y[i]]}\npred {CLASSES[pred[i]]} {confidence[i]:.2f}",
            fontsize=7,
            color="tab:red" if wrong[i] else "tab:green",
        )
    return _save(fig, path)


def display_order(p_crack: np.ndarray, labels: np.ndarray, threshold: float) -> np.ndarray:
    """Indices: mistakes, most confident first, then correct ones, least confident first."""
    pred = np.asarray(p_crack) >= threshold
    confidence = np.where(pred, p_crack, 1.0 - np.asarray(p_crack))
    wrong = pred != np.asarray(labels).astype(bool)
    return np.lexsort((np.where(wrong, -confidence, confidence), ~wrong))


def _thumbnail(path: str) -> np.ndarray:
    try:
        img = load_rgb(path, THUMB)
        img.thumbnail((THUMB, THUMB))
        return np.asarray(img)
    except Exception:  # an unreadable file still gets its place in the grid
        return np.full((THUMB, THUMB, 3), 128, dtype=np.uint8)

"""Training reports: the loss/AUC chart and the validation predictions grid."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from models.plots import display_order, predictions_grid, training_chart


def _epoch(i: int, auc: float | None) -> dict:
    return {
        "epoch": i,
        "train_loss": 1.0 / i,
        "val": {"loss": 0.8 / i, "auc": auc, "accuracy": 0.5},
    }


def test_training_chart_is_a_png(tmp_path: Path) -> None:
    path = training_chart([_epoch(1, None), _epoch(2, 0.7), _epoch(3, 0.9)], tmp_path / "c.png")
    with Image.open(path) as img:
        assert img.format == "PNG" and img.size == (900, 350)


def test_predictions_grid_tolerates_unreadable_files(tmp_path: Path, make_image) -> None:
    samples = [(make_image(tmp_path / f"{i}.png", 20 * i), i % 2) for i in range(10)]
    samples[3] = (str(tmp_path / "gone.jpg"), 1)
    p = np.linspace(0.05, 0.95, 10)
    path = predictions_grid(samples, p, [y for _, y in samples], tmp_path / "g.png", n=9)
    with Image.open(path) as img:
        assert img.format == "PNG"
        assert img.size[0] > img.size[1]  # 8 columns, 2 rows


def test_display_order_puts_confident_mistakes_first() -> None:
    p = np.array([0.9, 0.2, 0.6, 0.45, 0.99, 0.01])
    y = np.array([0, 0, 0, 1, 1, 0])
    # wrong: 0 (conf .9), 2 (.6), 3 (.55); right: 1 (.8), 4 (.99), 5 (.99)
    assert display_order(p, y, 0.5).tolist()[:4] == [0, 2, 3, 1]

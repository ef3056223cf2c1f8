"""Arguments of `crackq demo`, the whole loop on a small data set."""

from __future__ import annotations

from pathlib import Path

from worker.cli import demo
from worker.cli.parsers import Add


def add_demo(add: Add) -> None:
    p = add(
        "demo",
        demo.run_demo,
        help="the whole loop: train a first model, promote it, classify "
        "held-out photos through the queue, report accuracy",
    )
    p.add_argument(
        "--data",
        type=Path,
        help="folder with Positive/Negative photos (default: "
        "synthetic images the demo draws itself)",
    )
    p.add_argument("--train-images", type=int, default=640, help="photos to train on (default 640)")
    p.add_argument("--epochs", type=int, default=2, help="training epochs (default 2)")
    p.add_argument(
        "--classify", type=int, default=200, help="held-out photos to classify (default 200)"
    )

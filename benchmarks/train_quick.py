"""Quick fine-tuning measurement on real photos; prints one JSON line.

Trains on up to 2,000 ozgenel photos and validates on ~1,000 from other file-number
ranges (grouped_split holds out whole 200-number blocks per class), one epoch by default.
Run: .venv/bin/python -m benchmarks.run --suite train [--data DIR] [--epochs 1] ...
[--augment card|robust] [--checkpoint PATH] (a checkpoint the robustness and maps suites take)
"""

from __future__ import annotations

import argparse
import json
import os
import random
import time
from pathlib import Path
from typing import Any

import torch

from harness.procs import ROOT
from models.datasets import class_counts, from_manifest, grouped_split
from models.progress import TrainingCancelled
from models.recipe import AUGMENTS, Recipe
from models.training import fine_tune, save_trained

DEFAULT_DATA = os.environ.get("CRACKQ_TEST_DATA", str(ROOT.parent / "shared" / "data" / "ozgenel"))


def parse_args(argv: list[str], prog: str) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog=prog, description=__doc__)
    ap.add_argument("--data", type=Path, default=Path(DEFAULT_DATA))
    ap.add_argument("--train", type=int, default=2000)
    ap.add_argument("--val", type=int, default=1000)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--precision", default="bf16")
    ap.add_argument("--init", default="random")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--time-limit", type=float, default=570.0)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--augment", choices=AUGMENTS, default=Recipe.augment)
    ap.add_argument("--seed", type=int, default=Recipe.seed)
    ap.add_argument("--checkpoint", type=Path, help="also save the model here (and a .sha256)")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out" / "train_quick")
    return ap.parse_args(argv)


def main(argv: list[str], prog: str) -> int:
    """The train suite: one quick fine-tuning run; one JSON line."""
    args = parse_args(argv, prog)
    samples = from_manifest(args.data / "manifest.csv")
    parts = grouped_split(samples, val_fraction=0.2, seed=0)
    val = random.Random(1).sample(parts.val, min(args.val, len(parts.val)))
    recipe = Recipe(
        batch_size=args.batch,
        epochs=args.epochs,
        init=args.init,
        precision=args.precision,
        num_workers=args.workers,
        max_train_images=args.train,
        time_limit_s=args.time_limit,
        augment=args.augment,
        seed=args.seed,
    )
    started = time.perf_counter()
    line: dict[str, object] = {
        "benchmark": "train_quick",
        "recipe": recipe.to_dict(),
        "val_counts": class_counts(val),
        "torch_threads": torch.get_num_threads(),
    }
    try:
        result = fine_tune(parts.train, val, recipe, out_dir=args.out, device=args.device)
    except TrainingCancelled as exc:
        line.update(status="cancelled", reason=exc.reason, history=exc.history)
        line["wall_s"] = round(time.perf_counter() - started, 1)
        print(json.dumps(line))
        return 1
    line.update(status="ok", **figures(result))
    if args.checkpoint:
        save_trained(result, args.checkpoint, version=args.checkpoint.stem)
        line["checkpoint"] = str(args.checkpoint)
    print(json.dumps(line))
    return 0


def figures(result: Any) -> dict[str, Any]:
    """What a finished run measured, rounded for one JSON line."""
    m = result.metrics
    return dict(
        numerics=result.numerics,
        init=result.init,
        train_images=result.train_images,
        val_images=result.val_images,
        skipped=len(result.skipped),
        accuracy=round(m["accuracy"], 4),
        f1=round(m["f1"], 4),
        auc=None if m["auc"] is None else round(m["auc"], 4),
        loss=round(m["loss"], 4),
        confusion=m["confusion"],
        chosen_threshold=round(m["chosen_threshold"], 4),
        accuracy_at_chosen=round(m["at_chosen"]["accuracy"], 4),
        f1_at_chosen=round(m["at_chosen"]["f1"], 4),
        train_images_per_s=round(result.images_per_s, 2),
        wall_s=round(result.wall_s, 1),
        chart=str(result.chart_path),
        grid=str(result.grid_path),
    )
